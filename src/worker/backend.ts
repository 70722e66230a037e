import type { InferenceRequest, TokenUsage } from '../protocol/inference.ts';

/**
 * One inference engine behind a worker. Implementations live in `backends/<name>/`.
 *
 * `infer` yields OpenAI JSON texts exactly as the caller should see them:
 * - stream: each `chat.completion.chunk` / `text_completion` chunk (what follows `data: ` in SSE), in order;
 *   the usage-only chunk only when `req.includeUsage` is set;
 * - non-stream: exactly one complete response object, with `usage`.
 * The `model` field of every object is `req.model`. The generator returns the final token usage, which is
 * what the request is billed on. Engine errors are thrown as CocoonError (also mid-stream). When `signal`
 * aborts, the engine request is aborted and the generator ends promptly.
 */
export interface InferenceBackend {
  readonly kind: string;
  /** Base model names served by this backend. */
  models(): string[];
  infer(req: InferenceRequest, signal: AbortSignal): AsyncGenerator<string, TokenUsage, void>;
  close?(): Promise<void>;
}
