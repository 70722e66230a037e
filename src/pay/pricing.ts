import type { TokenUsage } from '../protocol/inference.ts';

/**
 * What a request costs, from the final token counts the worker reports (reference §2.5), in nanoton.
 * Tokens of each class are scaled by the worker's price coefficient (1000 = 1×) and the class multiplier
 * (10000 = 1×), rounded down once, then priced per adjusted token. All integer arithmetic.
 */

/** The root's prices (part of its parameters). */
export interface PriceList {
  /** Nanoton per token the client pays, before the multipliers. */
  pricePerToken: bigint;
  /** Nanoton per token the worker receives; at most `pricePerToken`. */
  workerFeePerToken: bigint;
  /** Multipliers in 1/10000 (10 000 = 1×, at most 1 000 000 = 100×). */
  promptMult: number;
  cachedMult: number;
  completionMult: number;
  reasoningMult: number;
}

export interface RequestCost {
  /** Adjusted tokens, all classes. */
  adjustedTokens: bigint;
  promptCost: bigint;
  completionCost: bigint;
  totalCost: bigint;
  /** The worker's share (adjusted tokens × worker fee) … */
  workerPart: bigint;
  /** … and the proxy's commission (the rest). */
  proxyPart: bigint;
}

const COEFFICIENT_SCALE = 1000n;
const MULTIPLIER_SCALE = 10_000n;

/** floor(n × coefficient/1000 × multiplier/10000), rounded once, exactly. */
export function adjustTokens(n: number, coefficient: number, multiplier: number): bigint {
  return (BigInt(n) * BigInt(coefficient) * BigInt(multiplier)) / (COEFFICIENT_SCALE * MULTIPLIER_SCALE);
}

export function requestCost(usage: TokenUsage, coefficient: number, prices: PriceList): RequestCost {
  const cached = Math.min(usage.cachedTokens, usage.promptTokens);
  const reasoning = Math.min(usage.reasoningTokens, usage.completionTokens);
  const prompt =
    adjustTokens(usage.promptTokens - cached, coefficient, prices.promptMult) +
    adjustTokens(cached, coefficient, prices.cachedMult);
  const completion =
    adjustTokens(usage.completionTokens - reasoning, coefficient, prices.completionMult) +
    adjustTokens(reasoning, coefficient, prices.reasoningMult);
  return costOf(prompt, completion, prices);
}

function costOf(promptTokens: bigint, completionTokens: bigint, prices: PriceList): RequestCost {
  const adjustedTokens = promptTokens + completionTokens;
  const totalCost = adjustedTokens * prices.pricePerToken;
  const workerPart = adjustedTokens * prices.workerFeePerToken;
  return {
    adjustedTokens,
    promptCost: promptTokens * prices.pricePerToken,
    completionCost: completionTokens * prices.pricePerToken,
    totalCost,
    workerPart,
    proxyPart: totalCost - workerPart,
  };
}

/** Chat templates add a few tokens per message that the body's bytes do not show. */
export const TEMPLATE_SLACK_TOKENS = 64;

/**
 * The most a request can cost before it runs: every prompt byte a token (a BPE token covers at least one
 * byte), `n` full completions, at the highest coefficient the caller accepts and the dearest multiplier of
 * each class. The proxy reserves this much credit before dispatch and never bills more.
 */
export function worstCaseCost(
  bodyBytes: number,
  maxCompletionTokens: number,
  maxCoefficient: number,
  prices: PriceList,
): RequestCost {
  const promptMult = Math.max(prices.promptMult, prices.cachedMult);
  const completionMult = Math.max(prices.completionMult, prices.reasoningMult);
  return costOf(
    adjustTokens(bodyBytes + TEMPLATE_SLACK_TOKENS, maxCoefficient, promptMult),
    adjustTokens(maxCompletionTokens, maxCoefficient, completionMult),
    prices,
  );
}

/**
 * Why a worker's usage report cannot be true for this request (more tokens than its worst case allows,
 * or sub-counts above their totals); null if it can. The same bounds as the reservation.
 */
export function usageBeyondBound(
  usage: TokenUsage,
  bodyBytes: number,
  maxCompletionTokens: number,
): string | null {
  const promptBound = bodyBytes + TEMPLATE_SLACK_TOKENS;
  if (usage.promptTokens > promptBound) {
    return `reported ${usage.promptTokens} prompt tokens for a ${bodyBytes}-byte request (at most ${promptBound})`;
  }
  if (usage.completionTokens > maxCompletionTokens) {
    return `reported ${usage.completionTokens} completion tokens, above the request's bound of ${maxCompletionTokens}`;
  }
  if (usage.cachedTokens > usage.promptTokens || usage.reasoningTokens > usage.completionTokens) {
    return 'reported more cached or reasoning tokens than prompt or completion tokens';
  }
  return null;
}

/** What a request may be billed for at most, from what both the proxy and the client can see. */
export interface UsageBound {
  /** Bytes of the call as it crossed the wire (its OPEN header): every prompt token covers one at least. */
  callBytes: number;
  /** n × max_tokens: what the request was reserved for. */
  maxCompletionTokens: number;
  /** What the delivered output accounts for (`OutputObserver.completionTokens`). */
  observedCompletionTokens: number;
}

/**
 * The most of `usage` that can be billed: prompt tokens within the call's bytes, completion tokens within
 * both the request's bound and what was delivered, sub-counts within their totals. The proxy bills exactly
 * this; the client signs a bill only if its usage is already within it.
 */
export function boundUsage(usage: TokenUsage, bound: UsageBound): TokenUsage {
  const promptTokens = Math.min(usage.promptTokens, bound.callBytes + TEMPLATE_SLACK_TOKENS);
  const completionTokens = Math.min(
    usage.completionTokens,
    bound.maxCompletionTokens,
    bound.observedCompletionTokens,
  );
  return {
    promptTokens,
    cachedTokens: Math.min(usage.cachedTokens, promptTokens),
    completionTokens,
    reasoningTokens: Math.min(usage.reasoningTokens, completionTokens),
  };
}

export function sameUsage(a: TokenUsage, b: TokenUsage): boolean {
  return (
    a.promptTokens === b.promptTokens &&
    a.cachedTokens === b.cachedTokens &&
    a.completionTokens === b.completionTokens &&
    a.reasoningTokens === b.reasoningTokens
  );
}

/** Caps a bill at the reservation, splitting it as the uncapped bill was split. */
export function capCost(cost: RequestCost, cap: bigint): RequestCost {
  if (cost.totalCost <= cap) return cost;
  const ratio = (x: bigint) => (cost.totalCost === 0n ? 0n : (x * cap) / cost.totalCost);
  const workerPart = ratio(cost.workerPart);
  const promptCost = ratio(cost.promptCost);
  return {
    adjustedTokens: cost.adjustedTokens,
    promptCost,
    completionCost: cap - promptCost,
    totalCost: cap,
    workerPart,
    proxyPart: cap - workerPart,
  };
}
