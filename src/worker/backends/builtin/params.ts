import { BadRequestError } from '../../../errors.ts';
import type { InferenceRequest } from '../../../protocol/inference.ts';
import { choicesPerPrompt } from '../request-bounds.ts';

/**
 * The OpenAI sampling fields the built-in model honours, read and checked once per request. The bounds
 * (`maxTokens`, `n`) come from the call's normalized fields, never from the body: they are what the request
 * is reserved and bounded by.
 */
export interface SamplingParams {
  maxTokens: number;
  /** Choices per prompt (the whole reply has `req.n`). */
  n: number;
  /** null when the caller gave none: the output is still deterministic (as if seed were absent = one seed). */
  seed: number | null;
  temperature: number;
  topP: number;
  stop: string[];
  echo: boolean;
}

const MAX_STOPS = 4;

function optionalNumber(body: Record<string, unknown>, key: string, min: number, max: number): number | null {
  const v = body[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new BadRequestError(`${key} must be a number between ${min} and ${max}.`, key);
  }
  return v;
}

function optionalInteger(
  body: Record<string, unknown>,
  key: string,
  min: number,
  max: number,
): number | null {
  const v = optionalNumber(body, key, min, max);
  if (v !== null && !Number.isInteger(v)) throw new BadRequestError(`${key} must be an integer.`, key);
  return v;
}

function readStop(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > MAX_STOPS || !list.every((s) => typeof s === 'string')) {
    throw new BadRequestError(`stop must be a string or an array of up to ${MAX_STOPS} strings.`, 'stop');
  }
  return list.filter((s) => s.length > 0);
}

export function readSamplingParams(req: InferenceRequest): SamplingParams {
  const b = req.body;
  if (!Number.isInteger(req.maxTokens) || req.maxTokens < 0) {
    throw new BadRequestError('max_tokens must be a non-negative integer.', 'max_tokens');
  }
  return {
    maxTokens: req.maxTokens,
    n: choicesPerPrompt(req),
    seed: optionalInteger(b, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
    temperature: optionalNumber(b, 'temperature', 0, 2) ?? 1,
    topP: optionalNumber(b, 'top_p', 0, 1) ?? 1,
    stop: readStop(b.stop),
    echo: req.kind === 'completion' && b.echo === true,
  };
}
