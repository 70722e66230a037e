import type { InferenceBackend } from '../backend.ts';
import { BuiltinBackend } from './builtin/index.ts';
import { OpenAICompatibleBackend } from './openai-compatible/index.ts';

export type BackendConfig =
  | { backend: 'builtin'; models: string[]; tokenDelayMs?: number }
  | {
      backend: 'openai-compatible';
      models: string[];
      upstream: string;
      upstreamModel?: string;
      upstreamApiKey?: string;
    };

/** The one place a backend is chosen by name. */
export function createBackend(c: BackendConfig): InferenceBackend {
  switch (c.backend) {
    case 'builtin':
      return new BuiltinBackend({ models: c.models, tokenDelayMs: c.tokenDelayMs ?? 0 });
    case 'openai-compatible':
      return new OpenAICompatibleBackend({
        baseUrl: c.upstream,
        models: c.models,
        ...(c.upstreamModel
          ? { upstreamModel: Object.fromEntries(c.models.map((m) => [m, c.upstreamModel!])) }
          : {}),
        ...(c.upstreamApiKey ? { apiKey: c.upstreamApiKey } : {}),
      });
  }
}
