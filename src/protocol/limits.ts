/**
 * Limits every hop shares. The client checks them at its edge and answers the caller with a 400; the proxy
 * and worker check the same definitions again, so a peer that skips the edge gains nothing and no hop
 * refuses what an earlier hop accepted.
 */

/** Longest model name, in characters (a request's `model`, a worker's announced models). */
export const MAX_MODEL_NAME_CHARS = 300;

/**
 * Deepest nesting of arrays and objects in a request body or call header. JSON.parse copes with any depth,
 * but JSON.stringify (every hop re-serializes) recurses and overflows the stack at a few thousand levels.
 * Tool parameter schemas, the deepest thing a real request carries, nest a dozen levels or so.
 */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * Whether JSON text nests arrays and objects deeper than `limit`. A scan of the bytes before parsing (no
 * tree is walked, no recursion): brackets inside strings do not count. Malformed text is left for the
 * parser to refuse.
 */
export function jsonNestsDeeperThan(text: Buffer, limit: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const b = text[i]!;
    if (b === QUOTE) {
      // Skip the string: to the next quote not escaped by a backslash.
      i++;
      while (i < n) {
        const c = text[i]!;
        if (c === BACKSLASH) i += 2;
        else if (c === QUOTE) break;
        else i++;
      }
    } else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
      if (++depth > limit) return true;
    } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
      depth--;
    }
    i++;
  }
  return false;
}
