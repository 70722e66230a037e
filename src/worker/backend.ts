import type { Logger } from '../ops/log.ts';
import type { InferenceRequest, TokenUsage } from '../protocol/inference.ts';

/**
 * One typed piece of a reply, as a backend yields it. `json` is an OpenAI JSON text exactly as the caller
 * should see it (what follows `data: ` in SSE, or the whole response); its `model` is `req.model`.
 * - `chunk`: one `chat.completion.chunk` / `text_completion` chunk of a stream, in order;
 * - `final`, always last and exactly once: the token usage the request is billed on, with the part that
 *   carries it: the whole response of a non-stream call, the usage chunk of a stream when
 *   `req.includeUsage` is set (null otherwise).
 */
export type ReplyPart =
  | { type: 'chunk'; json: string }
  | { type: 'final'; usage: TokenUsage; json: string | null };

/**
 * One inference engine behind a worker. Implementations live in `backends/<name>/`.
 *
 * `infer` yields the reply's parts (`ReplyPart`). Engine errors are thrown as CocoonError (also
 * mid-stream). When `signal` aborts, the engine request is aborted and the generator ends promptly.
 *
 * Bounds: the request's normalized fields are its one source of truth, never its body. A backend produces
 * at most `req.n` choices (indexes 0..n−1) of at most `req.maxTokens` completion tokens each, streams iff
 * `req.stream`, and reports a usage within `maxCompletionTokens(req)` and within what the output it yielded
 * can account for (src/worker/backends/output-guard.ts), so the proxy's `usageBeyondBound` always passes.
 */
export interface InferenceBackend {
  readonly kind: string;
  /** Base model names served by this backend. */
  models(): string[];
  infer(req: InferenceRequest, signal: AbortSignal): AsyncGenerator<ReplyPart, void, void>;
  close?(): Promise<void>;
  /** Where the backend logs (the worker's logger). */
  setLogger?(log: Logger): void;
  /** For a backend in front of an engine it does not control: how often the engine went past the bounds. */
  guardStats?(): EngineGuardStats;
}

export interface EngineGuardStats {
  /** Replies or streams that went past the request's bounds: stopped (streams) and cut at the bound. */
  engineOverruns: number;
  /** Usage reports brought down to the bound or to what was delivered. */
  usageClamped: number;
}
