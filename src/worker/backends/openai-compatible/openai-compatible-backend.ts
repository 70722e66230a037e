import {
  BadGatewayError,
  BadRequestError,
  CancelledError,
  CocoonError,
  GatewayTimeoutError,
  ModelNotFoundError,
  RateLimitError,
} from '../../../errors.ts';
import { type Logger, silentLogger } from '../../../ops/log.ts';
import {
  type InferenceRequest,
  type TokenUsage,
  usageFromOpenAI,
  ZERO_USAGE,
} from '../../../protocol/inference.ts';
import { openAIUsage } from '../../../protocol/openai-shapes.ts';
import type { EngineGuardStats, InferenceBackend, ReplyPart } from '../../backend.ts';
import { checkReply, StreamGuard } from '../output-guard.ts';
import { boundUsage, engineBody } from '../request-bounds.ts';
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
  logger?: Logger;
}

/**
 * A whole response travels to the proxy in one DATA frame. A frame over the session's limit (8 MiB) would
 * get this worker cut off with every stream it carries, so a reply that cannot fit is refused here instead
 * (502, the proxy may try another worker).
 */
const MAX_FRAME_BYTES = 8 * 1024 * 1024;
/** Room in that frame for what the worker wraps around a reply (encryption, padding). */
const FRAME_ROOM = 64 * 1024;
/** Most bytes of one stream event: a chunk is one token of one choice (with log-probabilities at most). */
const MAX_EVENT_CHARS = 1024 * 1024;

/** Refuses a reply that would not fit in one frame. */
function checkReplyFits(reply: string, base: string): void {
  const bytes = Buffer.byteLength(reply);
  if (bytes > MAX_FRAME_BYTES - FRAME_ROOM) {
    throw new BadGatewayError(
      `engine at ${base} replied with ${bytes} bytes, more than one reply may carry`,
      'engine_reply_too_large',
    );
  }
}

/**
 * Forwards requests to any engine with an OpenAI-compatible HTTP API (vLLM, SGLang, llama.cpp server,
 * Ollama). The engine gets the call's bounds, not the body's (`engineBody`: max_tokens, n, stream, usage
 * always asked for when streaming, because the final token counts are what the request is billed on), and
 * its output is held to them (`StreamGuard`, `checkReply`): an engine that goes past them is stopped, its
 * output cut at the bound, and the usage reported never exceeds the bound nor what the caller received.
 */
export class OpenAICompatibleBackend implements InferenceBackend {
  readonly kind = 'openai-compatible';
  private readonly base: string;
  private log: Logger;
  private readonly guard: EngineGuardStats = { engineOverruns: 0, usageClamped: 0 };

  constructor(private readonly opts: OpenAICompatibleOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, '');
    this.log = opts.logger ?? silentLogger;
  }

  models(): string[] {
    return this.opts.models;
  }

  setLogger(log: Logger): void {
    this.log = log;
  }

  guardStats(): EngineGuardStats {
    return { ...this.guard };
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
      body = JSON.parse(await readAll(res.body, MAX_FRAME_BYTES));
    } catch {}
    return (body?.data ?? []).map((m) => String(m.id));
  }

  async *infer(req: InferenceRequest, signal: AbortSignal): AsyncGenerator<ReplyPart, void, void> {
    if (!this.opts.models.includes(req.model)) throw new ModelNotFoundError(req.model);
    const body = engineBody(req, this.opts.upstreamModel?.[req.model] ?? req.model);
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
      if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
        throw new BadGatewayError(
          `engine at ${this.base} returned no response object`,
          'engine_bad_response',
        );
      }
      const reported = usageFromOpenAI(obj.usage);
      if (!reported) throw new BadGatewayError(`engine at ${this.base} reported no usage`, 'engine_no_usage');
      const check = checkReply(obj, req, reported.completionTokens);
      if (check.violations.length > 0) this.overran(req, check.violations.join('; '), false);
      const usage = this.report(req, reported, check.completionCap);
      obj.usage = openAIUsage(usage, obj.usage);
      obj.model = req.model;
      const reply = JSON.stringify(obj);
      checkReplyFits(reply, this.base);
      yield { type: 'final', usage, json: reply };
      return;
    }
    yield* this.relayStream(res, req, signal);
  }

  /**
   * Relays the engine's stream through the guard. The engine's usage chunk is held and goes out last, with
   * the reported counts written in (only if the caller asked for usage).
   */
  private async *relayStream(
    res: UpstreamResponse,
    req: InferenceRequest,
    signal: AbortSignal,
  ): AsyncGenerator<ReplyPart, void, void> {
    const decoder = new SseDecoder(MAX_EVENT_CHARS);
    const guard = new StreamGuard(req);
    let engineUsage: TokenUsage | null = null;
    let usageChunk: Record<string, unknown> | null = null;
    let done = false;
    try {
      outer: for await (const bytes of res.body as AsyncIterable<Buffer>) {
        for (const data of decoder.push(bytes)) {
          if (data === '[DONE]') {
            done = true;
            continue;
          }
          const chunk = this.parseChunk(data);
          const u = chunk.usage ? usageFromOpenAI(chunk.usage) : null;
          if (u) engineUsage = maxUsage(engineUsage, u);
          const usageOnly = u !== null && Array.isArray(chunk.choices) && chunk.choices.length === 0;
          const verdict = guard.admit(chunk);
          if (usageOnly) {
            if (!guard.violation) usageChunk = chunk;
          } else if (verdict === 'as-is') {
            yield {
              type: 'chunk',
              json: this.rewriteWithoutParsing(data, req) ?? this.serialize(chunk, req),
            };
          } else {
            for (const c of verdict) yield { type: 'chunk', json: this.serialize(c, req) };
          }
          if (guard.violation) break outer;
        }
      }
      if (!guard.violation) {
        for (const data of decoder.end()) {
          if (data === '[DONE]') done = true;
        }
      }
    } catch (err) {
      throw mapFetchError(err, signal, this.base);
    }
    let usage: TokenUsage;
    if (guard.violation) {
      // Stopped: the engine sees its client go away and stops generating. What it would have reported
      // is lost with it, so the caller is billed what it was delivered, one token per output part (as the
      // proxy counts a stream cut short), and the prompt only if the engine reported it already.
      res.body.destroy();
      this.overran(req, guard.violation, true);
      for (const c of guard.closingChunks()) yield { type: 'chunk', json: JSON.stringify(c) };
      const delivered = guard.deliveredParts;
      usage = this.report(req, { ...(engineUsage ?? ZERO_USAGE), completionTokens: delivered }, delivered);
    } else {
      if (!done && !engineUsage)
        throw new BadGatewayError(`engine at ${this.base} ended the stream early`, 'engine_stream_cut');
      // Billing needs real counts; an engine that will not report them cannot be billed fairly, so the
      // request fails rather than guessing (vLLM, SGLang, llama.cpp and Ollama all report usage when asked).
      if (!engineUsage)
        throw new BadGatewayError(`engine at ${this.base} reported no usage`, 'engine_no_usage');
      // The engine's count is believed within what the caller received (one token per output part per
      // choice, plus a few silent tokens per choice) and the call's bounds; above that it cannot be true.
      usage = this.report(req, engineUsage, guard.completionCap());
    }
    let json: string | null = null;
    if (req.includeUsage) {
      const envelope = usageChunk ?? guard.envelope(guard.lastChunk, []);
      const chunk = { ...envelope, model: req.model, choices: [], usage: openAIUsage(usage, envelope.usage) };
      json = JSON.stringify(chunk);
    }
    yield { type: 'final', usage, json };
  }

  /** The engine's usage brought within the call's bounds; a clamp is logged and counted. */
  private report(req: InferenceRequest, engine: TokenUsage, completionCap: number): TokenUsage {
    const b = boundUsage(engine, req, completionCap);
    if (b.clamped.length > 0) {
      this.guard.usageClamped++;
      this.log.warn(
        { model: req.model, reported: engine, usage: b.usage, why: b.clamped },
        'engine reported usage beyond what the request allows or received; reporting the bound',
      );
    }
    return b.usage;
  }

  private overran(req: InferenceRequest, why: string, stopped: boolean): void {
    this.guard.engineOverruns++;
    this.log.warn(
      { model: req.model, maxTokens: req.maxTokens, n: req.n, why, engine: this.base },
      stopped
        ? 'engine went past the request bounds; stopped it and cut its output at the bound'
        : 'engine reply went past the request bounds; cut it at the bound',
    );
  }

  /** Parses one stream event; throws on invalid JSON and on an engine error event. */
  private parseChunk(data: string): Record<string, unknown> {
    let chunk: Record<string, unknown>;
    try {
      chunk = JSON.parse(data);
    } catch {
      throw new BadGatewayError(`engine at ${this.base} streamed invalid JSON`, 'engine_bad_response');
    }
    if (!chunk || typeof chunk !== 'object' || Array.isArray(chunk)) {
      throw new BadGatewayError(`engine at ${this.base} streamed a non-object`, 'engine_bad_response');
    }
    if (chunk.error || chunk.object === 'error') {
      const e = (chunk.error ?? chunk) as { message?: unknown };
      throw new BadGatewayError(`engine error: ${String(e.message ?? 'unknown error')}`, 'engine_error');
    }
    return chunk;
  }

  /** A content chunk as the caller sees it: our model name; `usage` null (if asked for) or absent. */
  private serialize(chunk: Record<string, unknown>, req: InferenceRequest): string {
    const out: Record<string, unknown> = { ...chunk, model: req.model };
    if (req.includeUsage) out.usage = null;
    else delete out.usage;
    return JSON.stringify(out);
  }

  /**
   * Most chunks are plain content deltas in vLLM's compact JSON: for those, the two edits we make (our
   * model name, dropping `"usage":null` when the caller did not ask for usage) are done on the text. Any
   * chunk that may carry usage or an error, or is not in the exact compact form, is re-serialized.
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
      return await readAll(res.body, MAX_FRAME_BYTES);
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

/**
 * The engine's error body (vLLM old: {object:'error',message,param}, new: {error:{message,param}}, or text)
 * → CocoonError. A 400 keeps the engine's message and, when it names one, the field it refused.
 */
async function engineError(res: UpstreamResponse, signal: AbortSignal): Promise<CocoonError> {
  const text = signal.aborted ? '' : await readAll(res.body, 64 * 1024).catch(() => '');
  let message = text.slice(0, 2000) || res.body.statusMessage || `HTTP ${res.status}`;
  let param: string | null = null;
  try {
    type Detail = { message?: unknown; param?: unknown };
    const j = JSON.parse(text) as Detail & { error?: Detail | string };
    const detail: Detail = typeof j.error === 'object' && j.error !== null ? j.error : j;
    const m = typeof j.error === 'string' ? j.error : detail.message;
    if (m !== undefined) message = String(m);
    if (typeof detail.param === 'string' && detail.param.length <= 256) param = detail.param;
  } catch {}
  const s = res.status;
  if (s === 429) return new RateLimitError(`engine is overloaded: ${message}`, 'engine_rate_limited');
  // The caller asked for a model we serve; if the engine does not know it, the worker is misconfigured.
  if (s === 404)
    return new BadGatewayError(`engine does not serve the model: ${message}`, 'engine_model_missing');
  if (s >= 400 && s < 500) return new BadRequestError(message, param, 'engine_rejected');
  return new BadGatewayError(`engine error ${s}: ${message}`, 'engine_error');
}
