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

/** Levels a call header wraps a request body in (`{request: {body: …}}`). */
export const CALL_HEADER_NESTING = 2;

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
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const b = text[i]!;
    if (b === QUOTE) i = stringEnd(text, i + 1);
    else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
      if (++depth > limit) return true;
    } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) depth--;
  }
  return false;
}

/** Where the string whose text starts at `from` ends: its closing quote (memchr-fast over long text). */
function stringEnd(text: Buffer, from: number): number {
  for (;;) {
    const q = text.indexOf(QUOTE, from);
    if (q < 0) return text.length;
    let backslashes = 0;
    while (text[q - 1 - backslashes] === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return q;
    from = q + 1;
  }
}
