import {
  BadGatewayError,
  BadRequestError,
  CancelledError,
  CocoonError,
  GatewayTimeoutError,
  ModelNotFoundError,
  RateLimitError,
} from '../../../errors.ts';
import { type InferenceRequest, type TokenUsage, usageFromOpenAI } from '../../../protocol/inference.ts';
import type { InferenceBackend } from '../../backend.ts';
import { SseDecoder } from './sse-decoder.ts';

export interface OpenAICompatibleOptions {
  /** Engine base URL including `/v1`, e.g. http://127.0.0.1:8000/v1 */
  baseUrl: string;
  /** Model names we serve. */
  models: string[];
  /** Our model name → the engine's served model name (default: the same). */
  upstreamModel?: Record<string, string>;
  apiKey?: string;
}

/**
 * Forwards requests to any engine with an OpenAI-compatible HTTP API (vLLM, SGLang, llama.cpp server,
 * Ollama). Streams always ask the engine for usage (`stream_options.include_usage`), because the final
 * token counts are what the request is billed on; the usage chunk reaches the caller only if asked for.
 */
export class OpenAICompatibleBackend implements InferenceBackend {
  readonly kind = 'openai-compatible';
  private readonly base: string;

  constructor(private readonly opts: OpenAICompatibleOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, '');
  }

  models(): string[] {
    return this.opts.models;
  }

  /** The engine's own model list (start-up diagnostics). */
  async probe(signal?: AbortSignal): Promise<string[]> {
    const res = await this.fetch('/models', {
      method: 'GET',
      headers: this.headers(),
      signal: signal ?? null,
    });
    const body = (await res.json().catch(() => null)) as { data?: { id?: unknown }[] } | null;
    return (body?.data ?? []).map((m) => String(m.id));
  }

  async *infer(req: InferenceRequest, signal: AbortSignal): AsyncGenerator<string, TokenUsage, void> {
    if (!this.opts.models.includes(req.model)) throw new ModelNotFoundError(req.model);
    const body: Record<string, unknown> = {
      ...req.body,
      model: this.opts.upstreamModel?.[req.model] ?? req.model,
    };
    if (req.stream) {
      body.stream = true;
      body.stream_options = { ...((req.body.stream_options as object) ?? {}), include_usage: true };
    }
    const path = req.kind === 'chat' ? '/chat/completions' : '/completions';
    const res = await this.fetch(path, {
      method: 'POST',
      headers: { ...this.headers(), 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal,
    });
    if (!res.ok) throw await engineError(res);
    if (!req.stream) {
      const text = await this.readText(res, signal);
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(text);
      } catch {
        throw new BadGatewayError(`engine at ${this.base} returned invalid JSON`, 'engine_bad_response');
      }
      const usage = usageFromOpenAI(obj.usage);
      if (!usage) throw new BadGatewayError(`engine at ${this.base} reported no usage`, 'engine_no_usage');
      obj.model = req.model;
      yield JSON.stringify(obj);
      return usage;
    }
    return yield* this.relayStream(res, req, signal);
  }

  private async *relayStream(
    res: Response,
    req: InferenceRequest,
    signal: AbortSignal,
  ): AsyncGenerator<string, TokenUsage, void> {
    if (!res.body) throw new BadGatewayError(`engine at ${this.base} sent no body`, 'engine_bad_response');
    const decoder = new SseDecoder();
    let usage: TokenUsage | null = null;
    let done = false;
    try {
      for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
        for (const data of decoder.push(bytes)) {
          if (data === '[DONE]') {
            done = true;
            continue;
          }
          const out = this.rewriteChunk(data, req, (u) => {
            usage = maxUsage(usage, u);
          });
          if (out !== null) yield out;
        }
      }
      for (const data of decoder.end()) {
        if (data === '[DONE]') done = true;
      }
    } catch (err) {
      throw mapFetchError(err, signal, this.base);
    }
    if (!done && !usage)
      throw new BadGatewayError(`engine at ${this.base} ended the stream early`, 'engine_stream_cut');
    // Billing needs real counts; an engine that will not report them cannot be billed fairly, so the
    // request fails rather than guessing (vLLM, SGLang, llama.cpp and Ollama all report usage when asked).
    if (!usage) throw new BadGatewayError(`engine at ${this.base} reported no usage`, 'engine_no_usage');
    return usage;
  }

  /** Returns the chunk text to forward (or null to drop it); throws on an engine error event. */
  private rewriteChunk(data: string, req: InferenceRequest, onUsage: (u: TokenUsage) => void): string | null {
    let chunk: Record<string, unknown>;
    try {
      chunk = JSON.parse(data);
    } catch {
      throw new BadGatewayError(`engine at ${this.base} streamed invalid JSON`, 'engine_bad_response');
    }
    if (chunk.error || chunk.object === 'error') {
      const e = (chunk.error ?? chunk) as { message?: unknown };
      throw new BadGatewayError(`engine error: ${String(e.message ?? 'unknown error')}`, 'engine_error');
    }
    const u = chunk.usage ? usageFromOpenAI(chunk.usage) : null;
    if (u) onUsage(u);
    const choices = chunk.choices;
    const usageOnly = Array.isArray(choices) && choices.length === 0;
    if (usageOnly && !req.includeUsage) return null;
    if (!req.includeUsage) delete chunk.usage;
    chunk.model = req.model;
    return JSON.stringify(chunk);
  }

  private headers(): Record<string, string> {
    return this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {};
  }

  private async fetch(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${this.base}${path}`, init);
    } catch (err) {
      throw mapFetchError(err, init.signal ?? undefined, this.base);
    }
  }

  private async readText(res: Response, signal: AbortSignal): Promise<string> {
    try {
      return await res.text();
    } catch (err) {
      throw mapFetchError(err, signal, this.base);
    }
  }
}

function maxUsage(a: TokenUsage | null, b: TokenUsage): TokenUsage {
  if (!a) return b;
  return {
    promptTokens: Math.max(a.promptTokens, b.promptTokens),
    cachedTokens: Math.max(a.cachedTokens, b.cachedTokens),
    completionTokens: Math.max(a.completionTokens, b.completionTokens),
    reasoningTokens: Math.max(a.reasoningTokens, b.reasoningTokens),
  };
}

function mapFetchError(err: unknown, signal: AbortSignal | undefined, base: string): CocoonError {
  if (err instanceof CocoonError) return err;
  if (signal?.aborted) {
    const reason = signal.reason;
    if (reason instanceof CocoonError) return reason;
    if ((reason as Error)?.name === 'TimeoutError')
      return new GatewayTimeoutError(`engine at ${base} timed out`);
    return new CancelledError();
  }
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err as Error).message;
  return new BadGatewayError(`cannot reach engine at ${base}: ${why}`, 'engine_unreachable');
}

/** The engine's error body (vLLM old: {object:'error',message}, new: {error:{message}}, or text) → CocoonError. */
async function engineError(res: Response): Promise<CocoonError> {
  const text = await res.text().catch(() => '');
  let message = text.slice(0, 2000) || res.statusText;
  try {
    const j = JSON.parse(text) as { message?: unknown; error?: { message?: unknown } | string };
    const m = typeof j.error === 'string' ? j.error : (j.error?.message ?? j.message);
    if (m !== undefined) message = String(m);
  } catch {}
  const s = res.status;
  if (s === 429) return new RateLimitError(`engine is overloaded: ${message}`, 'engine_rate_limited');
  // The caller asked for a model we serve; if the engine does not know it, the worker is misconfigured.
  if (s === 404)
    return new BadGatewayError(`engine does not serve the model: ${message}`, 'engine_model_missing');
  if (s >= 400 && s < 500) return new BadRequestError(message, null, 'engine_rejected');
  return new BadGatewayError(`engine error ${s}: ${message}`, 'engine_error');
}
