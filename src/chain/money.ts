/**
 * TON amounts as text. Money is nanoton in a `bigint` everywhere; these two functions are the only place
 * it becomes (or stops being) a decimal string for people. No floating point anywhere.
 */
import { BadRequestError } from '../errors.ts';

export const NANO_PER_TON = 1_000_000_000n;
/** The largest `coins` value TON can carry (VarUInteger 16: 15 bytes). */
export const MAX_COINS = (1n << 120n) - 1n;

export class InvalidAmountError extends BadRequestError {
  constructor(message: string, param: string | null = 'amount') {
    super(message, param, 'invalid_amount');
  }
}

/** 1500000000n → "1.500000000" (always exactly 9 decimals; a leading "-" for negative values). */
export function formatTon(nano: bigint): string {
  const negative = nano < 0n;
  const abs = negative ? -nano : nano;
  const whole = abs / NANO_PER_TON;
  const frac = (abs % NANO_PER_TON).toString().padStart(9, '0');
  return `${negative ? '-' : ''}${whole}.${frac}`;
}

const TON_TEXT = /^(\d+)(?:\.(\d+))?$/;

/**
 * "1.5" → 1500000000n. Accepts a non-negative decimal number of TON with at most 9 decimals
 * ("2", "0.000000001", "1.500000000"); refuses negatives, exponents, separators, more than 9 decimals and
 * anything above the largest amount TON can carry.
 */
export function parseTon(text: string): bigint {
  if (typeof text !== 'string') throw new InvalidAmountError('A TON amount must be given as text.');
  const t = text.trim();
  if (t === '') throw new InvalidAmountError('A TON amount is required (for example "1.5").');
  if (t.startsWith('-')) throw new InvalidAmountError(`Negative TON amounts are not allowed: "${text}".`);
  const m = TON_TEXT.exec(t);
  if (!m) {
    throw new InvalidAmountError(
      `Not a TON amount: "${text}". Use a plain decimal number such as "1.5" or "0.000000001".`,
    );
  }
  const whole = m[1]!;
  const frac = m[2] ?? '';
  if (frac.length > 9) {
    throw new InvalidAmountError(`Too many decimals in "${text}": TON has 9 (1 nanoton = 0.000000001 TON).`);
  }
  const nano = BigInt(whole) * NANO_PER_TON + BigInt(frac.padEnd(9, '0'));
  if (nano > MAX_COINS) throw new InvalidAmountError(`TON amount too large: "${text}".`);
  return nano;
}

/** A whole number of nanoton written as decimal digits ("1500000000"), as JSON APIs carry it. */
export function parseNano(text: string, param = 'amount'): bigint {
  if (typeof text !== 'string' || !/^\d+$/.test(text)) {
    throw new InvalidAmountError(
      `${param} must be a decimal string of nanoton (digits only, e.g. "1500000000"), got ${JSON.stringify(text)}.`,
      param,
    );
  }
  const nano = BigInt(text);
  if (nano > MAX_COINS) throw new InvalidAmountError(`${param} is too large: ${text}.`, param);
  return nano;
}
