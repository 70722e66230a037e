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
import { readAll, type UpstreamResponse, upstreamRequest } from './upstream-http.ts';

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
    const res = await this.call(
      '/models',
      'GET',
      this.headers(),
      null,
      signal ?? AbortSignal.timeout(10_000),
    );
    let body: { data?: { id?: unknown }[] } | null = null;
    try {
      body = JSON.parse(await readAll(res.body));
    } catch {}
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
    const headers = { ...this.headers(), 'content-type': 'application/json' };
    const res = await this.call(path, 'POST', headers, JSON.stringify(body), signal);
    if (res.status >= 400) throw await engineError(res, signal);
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
    res: UpstreamResponse,
    req: InferenceRequest,
    signal: AbortSignal,
  ): AsyncGenerator<string, TokenUsage, void> {
    const decoder = new SseDecoder();
    let usage: TokenUsage | null = null;
    let done = false;
    try {
      for await (const bytes of res.body as AsyncIterable<Buffer>) {
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
    const fast = this.rewriteWithoutParsing(data, req);
    if (fast !== null) return fast;
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

  /**
   * Most chunks are plain content deltas in vLLM's compact JSON: for those, the two edits we make (our
   * model name, dropping `"usage":null` when the caller did not ask for usage) are done on the text. Any
   * chunk that may carry usage or an error, or is not in the exact compact form, takes the parsing path.
   * Safe because an unescaped `"` cannot occur inside a JSON string, so these literals only match keys.
   */
  private rewriteWithoutParsing(data: string, req: InferenceRequest): string | null {
    if (data.includes('"usage":{') || data.includes('"error"')) return null;
    let out = data;
    const upstream = this.opts.upstreamModel?.[req.model] ?? req.model;
    if (upstream !== req.model) {
      const from = `"model":${JSON.stringify(upstream)}`;
      if (!out.includes(from)) return null;
      out = out.replace(from, `"model":${JSON.stringify(req.model)}`);
    } else if (!out.includes(`"model":${JSON.stringify(req.model)}`)) {
      return null;
    }
    if (!req.includeUsage && out.includes('"usage"')) {
      if (!out.includes(',"usage":null')) return null;
      out = out.replace(',"usage":null', '');
    }
    return out;
  }

  private headers(): Record<string, string> {
    return this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {};
  }

  private async call(
    path: string,
    method: 'GET' | 'POST',
    headers: Record<string, string>,
    body: string | null,
    signal: AbortSignal,
  ): Promise<UpstreamResponse> {
    try {
      return await upstreamRequest(new URL(`${this.base}${path}`), method, headers, body, signal);
    } catch (err) {
      throw mapFetchError(err, signal, this.base);
    }
  }

  private async readText(res: UpstreamResponse, signal: AbortSignal): Promise<string> {
    try {
      return await readAll(res.body);
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
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const why = e.code ?? e.cause?.code ?? e.cause?.message ?? e.message;
  return new BadGatewayError(`cannot reach engine at ${base}: ${why}`, 'engine_unreachable');
}

/** The engine's error body (vLLM old: {object:'error',message}, new: {error:{message}}, or text) → CocoonError. */
async function engineError(res: UpstreamResponse, signal: AbortSignal): Promise<CocoonError> {
  const text = signal.aborted ? '' : await readAll(res.body).catch(() => '');
  let message = text.slice(0, 2000) || res.body.statusMessage || `HTTP ${res.status}`;
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
