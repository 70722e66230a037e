import { decode, encode } from 'gpt-tokenizer/encoding/cl100k_base';

/**
 * Real BPE tokenization (cl100k_base), so the built-in model counts and bills tokens like a real engine.
 * Text that looks like a control token ('<|endoftext|>') is counted as plain text: callers' text never
 * becomes a special token, and the library would otherwise throw on it.
 */
const PLAIN_TEXT = { allowedSpecial: new Set<string>(), disallowedSpecial: new Set<string>() };

export function encodeText(text: string): number[] {
  return text.length === 0 ? [] : encode(text, PLAIN_TEXT);
}

export function countTokens(text: string): number {
  return text.length === 0 ? 0 : encode(text, PLAIN_TEXT).length;
}

/** Throws on ids that are not in the vocabulary. */
export function decodeTokens(ids: readonly number[]): string {
  return decode(ids);
}
