/**
 * The inference request as it travels client → proxy → worker, and the token usage that comes back.
 * The OpenAI body is carried as the caller sent it (minus Cocoon's own extras); each hop only reads the
 * few normalized fields it needs, so engines see every OpenAI field we do not interpret ourselves.
 */

import { z } from 'zod';
import { MAX_MODEL_NAME_CHARS } from './limits.ts';

/** Most choices (`n`) one request may ask for: every choice costs a full completion on the worker. */
export const MAX_CHOICES = 8;

/** Most completion tokens one choice may ask for: bounds every reservation, so no hop overflows on it. */
export const MAX_TOKENS_LIMIT = 1_000_000;

/** The trust tiers a worker can prove, lowest first (src/attest/types.ts ranks them). */
export const trustTierSchema = z.enum(['dev', 'tee-cpu', 'tee-gpu']);

/**
 * The call as it travels client → proxy → worker, parsed once at each hop (a peer's message). Its
 * normalized fields (`maxTokens`, `n`, `stream`) are the request's one source of truth: the proxy
 * reserves and bounds by them, and the worker sends its engine exactly these values, whatever the body says.
 */
export const inferenceRequestSchema = z.object({
  kind: z.enum(['chat', 'completion']),
  /** Base model name as the caller asked for it (routing key). */
  model: z.string().min(1).max(MAX_MODEL_NAME_CHARS),
  /** Validated OpenAI request body, Cocoon extras removed; `max_tokens`/`max_completion_tokens` filled in. */
  body: z.record(z.string(), z.unknown()),
  stream: z.boolean(),
  /** Did the caller ask for the usage chunk at the end of a stream (`stream_options.include_usage`)? */
  includeUsage: z.boolean(),
  /** Upper bound on completion tokens per choice (the reservation basis for payments). */
  maxTokens: z.number().int().nonnegative().max(MAX_TOKENS_LIMIT),
  /** Choices asked for. */
  n: z.number().int().min(1).max(MAX_CHOICES),
  /** Time budget left for this request in ms; each hop shrinks it. */
  timeoutMs: z.number().int().positive(),
  /** Highest worker price coefficient (1000 = 1×) the caller accepts. */
  maxCoefficient: z.number().int().nonnegative(),
  /** Lowest trust tier of the worker the caller accepts (`dev` accepts any). */
  minTier: trustTierSchema.default('dev'),
});
export type InferenceRequest = z.infer<typeof inferenceRequestSchema>;
export type InferenceKind = InferenceRequest['kind'];

/** Largest request body a call may declare, sealed or not: it travels as one session frame. */
export const MAX_CALL_BODY_BYTES = 8 * 1024 * 1024 - 64 * 1024;

/**
 * What the proxy sees of a request: its routing and billing metadata, never its body. The body follows
 * as one DATA part once the client has checked the worker the proxy offers, sealed to that worker's
 * attested key (`sealed`) unless the caller turned end-to-end encryption off.
 */
export const inferenceCallSchema = inferenceRequestSchema.omit({ body: true }).extend({
  /** Exact size of the body part (sealed or not): it bounds prompt tokens, so it is reserved up front. */
  bodyBytes: z.number().int().positive().max(MAX_CALL_BODY_BYTES),
  sealed: z.boolean(),
  /** The caller wants the worker's signed receipt (off only by the client's explicit, labelled choice). */
  receipt: z.boolean().default(true),
});
export type InferenceCall = z.infer<typeof inferenceCallSchema>;

/**
 * Does the reply to this call carry the worker's receipt? Unless the client turned receipts off, which it
 * may only with E2E off: the proxy bounds a sealed prompt by nothing else, so a sealed call always gets one.
 */
export function receiptRequired(call: Pick<InferenceCall, 'receipt' | 'sealed'>): boolean {
  return call.receipt || call.sealed;
}

/** Raw token counts of one finished request, as the engine reported them. */
export interface TokenUsage {
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  reasoningTokens: number;
}

export const ZERO_USAGE: TokenUsage = {
  promptTokens: 0,
  cachedTokens: 0,
  completionTokens: 0,
  reasoningTokens: 0,
};

/** Reads OpenAI-style `usage` (as vLLM, SGLang, llama.cpp and Ollama emit it) into TokenUsage. */
export function usageFromOpenAI(usage: unknown): TokenUsage | null {
  if (!usage || typeof usage !== 'object') return null;
  const u = usage as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0);
  const details = (u.prompt_tokens_details ?? {}) as Record<string, unknown>;
  const cdetails = (u.completion_tokens_details ?? {}) as Record<string, unknown>;
  return {
    promptTokens: num(u.prompt_tokens),
    cachedTokens: num(details?.cached_tokens),
    completionTokens: num(u.completion_tokens),
    reasoningTokens: Math.max(num(cdetails?.reasoning_tokens), num(u.reasoning_tokens)),
  };
}

/** Completion tokens a request may produce in all: what it is reserved and bounded by at every hop. */
export function maxCompletionTokens(r: Pick<InferenceRequest, 'maxTokens' | 'n'>): number {
  return r.maxTokens * r.n;
}

/**
 * Prompts in a body: a completion's `prompt` may be a batch (strings or token-id arrays), each of which
 * gets `n` choices (as OpenAI does); chat has one. The call's `n` counts the choices of the whole batch.
 */
export function promptCount(kind: InferenceKind, body: Record<string, unknown>): number {
  if (kind !== 'completion') return 1;
  const p = body.prompt;
  if (!Array.isArray(p) || p.length === 0) return 1;
  // An array of token ids is one prompt; an array of strings or of token-id arrays is a batch.
  return typeof p[0] === 'number' ? 1 : p.length;
}
