import { BadRequestError } from '../../errors.ts';
import { TEMPLATE_SLACK_TOKENS } from '../../pay/pricing.ts';
import {
  type InferenceRequest,
  MAX_CHOICES,
  maxCompletionTokens,
  promptCount,
  type TokenUsage,
} from '../../protocol/inference.ts';
import { SILENT_TOKENS_PER_CHOICE } from '../../protocol/observed-output.ts';

/**
 * A request's bounds have one source of truth: its normalized fields (`maxTokens`, `n`, `stream`), which the
 * proxy reserves money by and bounds the worker's report by. The body travels as the caller wrote it, and a
 * caller may write anything there; nothing in this file trusts it over the call.
 */

/** Chat templates' tokens the body's bytes do not show: the very slack the proxy and the client allow. */
export const PROMPT_SLACK_TOKENS = TEMPLATE_SLACK_TOKENS;

/** Tokens per choice that print nothing: the allowance the proxy and the client give a bill. */
export { SILENT_TOKENS_PER_CHOICE };

/**
 * Body fields that would make an engine generate more, or more choices, than the call's bounds: they are
 * never forwarded. The output bound (`max_tokens`) and the choices (`n`) are then set from the call.
 * - `max_completion_tokens`: OpenAI's newer name for the bound; vLLM and SGLang let it win over max_tokens.
 * - `n_predict` (llama.cpp, read before max_tokens), `max_new_tokens` (SGLang/TGI), `num_predict` (Ollama).
 * - `best_of`, `use_beam_search`: more sequences generated than returned (work the bound does not cover).
 * - `prompt_logprobs` (vLLM), `n_probs` (llama.cpp): output that grows with the prompt × a caller's number.
 */
const WORK_MULTIPLIERS = [
  'max_completion_tokens',
  'n_predict',
  'max_new_tokens',
  'num_predict',
  'best_of',
  'use_beam_search',
  'prompt_logprobs',
  'n_probs',
] as const;

/** OpenAI's limits on the log-probabilities a caller may ask for (completions: 0..5; chat: 0..20). */
const MAX_COMPLETION_LOGPROBS = 5;
const MAX_TOP_LOGPROBS = 20;

/**
 * Choices to ask the engine for per prompt, so that the whole reply has exactly `req.n` choices. A batch
 * of k prompts gives k × n choices (as OpenAI does), so it fits the call's bounds only if the call's `n`
 * counts the whole batch; otherwise the reply would hold more choices than were paid for, and it is refused.
 */
export function choicesPerPrompt(req: InferenceRequest): number {
  checkChoices(req.n);
  const k = promptCount(req.kind, req.body);
  if (k === 1) return req.n;
  const asked = typeof req.body.n === 'number' && Number.isInteger(req.body.n) ? req.body.n : 1;
  if (asked * k !== req.n) {
    throw new BadRequestError(
      `A batch of ${k} prompts asks for ${k * asked} choices, but this request is bounded (and paid) for ${req.n}. ` +
        'Send one prompt per request.',
      'prompt',
      'invalid_value',
    );
  }
  return asked;
}

/**
 * `best_of` above `n` asks the engine for candidates nobody receives: work no bill covers (a bill is bounded
 * by what reached the caller). Dropping it would ignore a valid OpenAI field silently, so it is refused.
 */
function refuseUnpaidCandidates(bestOf: unknown, n: number): void {
  if (bestOf === undefined || bestOf === null || (typeof bestOf === 'number' && bestOf <= n)) return;
  throw new BadRequestError(
    `Invalid value for 'best_of': Cocoon serves no candidates beyond the ${n} choice(s) returned (best_of ≤ n), but got ${JSON.stringify(bestOf)}. Ask for more choices with 'n' instead.`,
    'best_of',
    'unsupported_value',
  );
}

function checkChoices(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_CHOICES) {
    throw new BadRequestError(`n must be an integer between 1 and ${MAX_CHOICES}.`, 'n', 'invalid_value');
  }
}

/**
 * The body an OpenAI-compatible engine receives: the caller's, with its bounds overwritten from the call.
 * `max_tokens` = maxTokens, `n` = n (per prompt), `stream` = stream, and when streaming, usage always asked
 * for (what the request is billed on); fields that multiply work or output are dropped, log-probabilities
 * kept within OpenAI's limits, `echo` only as a completion's boolean.
 */
export function engineBody(req: InferenceRequest, model: string): Record<string, unknown> {
  const n = choicesPerPrompt(req);
  refuseUnpaidCandidates(req.body.best_of, n);
  const body: Record<string, unknown> = { ...req.body, model };
  for (const k of WORK_MULTIPLIERS) delete body[k];
  body.max_tokens = req.maxTokens;
  body.n = n;
  body.stream = req.stream;
  if (req.stream) body.stream_options = { include_usage: true };
  else delete body.stream_options;
  if (req.kind === 'completion') {
    if (body.echo !== true) delete body.echo;
    const lp = body.logprobs;
    if (lp !== undefined && lp !== null) {
      if (typeof lp === 'number' && Number.isInteger(lp)) {
        body.logprobs = Math.min(Math.max(lp, 0), MAX_COMPLETION_LOGPROBS);
      } else delete body.logprobs;
    }
    delete body.top_logprobs;
  } else {
    delete body.echo;
    if (body.logprobs !== true) {
      delete body.logprobs;
      delete body.top_logprobs;
    } else if (body.top_logprobs !== undefined && body.top_logprobs !== null) {
      const t = body.top_logprobs;
      if (typeof t === 'number' && Number.isInteger(t)) {
        body.top_logprobs = Math.min(Math.max(t, 0), MAX_TOP_LOGPROBS);
      } else delete body.top_logprobs;
    }
  }
  return body;
}

/**
 * The most prompt tokens the proxy accepts for this call: every prompt token covers at least one byte of
 * the call, and the body is part of the call (its OPEN header), so the body's bytes bound it from below.
 */
export function promptTokenBound(req: InferenceRequest): number {
  return Buffer.byteLength(JSON.stringify(req.body)) + PROMPT_SLACK_TOKENS;
}

/** A usage report brought within the call's bounds, and what had to be cut (empty when nothing). */
export interface BoundedUsage {
  usage: TokenUsage;
  clamped: string[];
}

/**
 * What the worker reports: the engine's counts, never above the call's bounds nor above what the caller
 * was delivered (`completionCap`: what the delivered output can account for, ≤ maxTokens × n). So the
 * report always passes the proxy's `usageBeyondBound`, and an engine's error never gets the worker cut off.
 */
export function boundUsage(engine: TokenUsage, req: InferenceRequest, completionCap: number): BoundedUsage {
  const clamped: string[] = [];
  let promptTokens = engine.promptTokens;
  // Cheap first: a prompt within the slack alone needs no look at the body's size.
  if (promptTokens > PROMPT_SLACK_TOKENS) {
    const bound = promptTokenBound(req);
    if (promptTokens > bound) {
      clamped.push(`prompt tokens ${promptTokens} > ${bound} (the call's bytes)`);
      promptTokens = bound;
    }
  }
  const cap = Math.min(completionCap, maxCompletionTokens(req));
  let completionTokens = engine.completionTokens;
  if (completionTokens > cap) {
    clamped.push(`completion tokens ${completionTokens} > ${cap} (bound and delivered output)`);
    completionTokens = cap;
  }
  if (engine.cachedTokens > promptTokens) clamped.push('cached tokens above prompt tokens');
  if (engine.reasoningTokens > completionTokens) clamped.push('reasoning tokens above completion tokens');
  return {
    usage: {
      promptTokens,
      cachedTokens: Math.min(engine.cachedTokens, promptTokens),
      completionTokens,
      reasoningTokens: Math.min(engine.reasoningTokens, completionTokens),
    },
    clamped,
  };
}
