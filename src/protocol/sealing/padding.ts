/**
 * Padding against length side channels. Encrypted LLM streams leak each token's length through each part's
 * size (Weiss et al., "What Was Your Prompt? A Remote Keylogging Attack on AI Assistants", USENIX Security
 * 2024), and a request's size leaks its prompt's. Every plaintext is padded before sealing:
 *
 *   plaintext ‖ 0x80 ‖ 0x00 … up to the bucket   (ISO/IEC 7816-4: unambiguous for any plaintext)
 *
 * Buckets: a multiple of `minStep` for small sizes, and Padmé (Nikitin et al., "Reducing Metadata Leakage
 * from Encrypted Files and Communication with PURBs", PETS 2019) above, which shows only O(log log L) bits of
 * a length L for at most 12 % overhead. The trade-off: a fixed step costs at most `minStep − 1` bytes per
 * part but leaks L / step exactly; powers of two leak only log L but cost up to 100 %; Padmé sits between,
 * and the fixed step keeps it from being too fine for small parts (Padmé alone pads 100 bytes to 104).
 * Reply parts use 32 bytes, so a stream part carrying one token (1 to 31 bytes) seals to one size; requests
 * use 512 (a short chat and a one-word prompt look alike). What padding cannot hide: how many parts a
 * reply has and when each one leaves, nor token counts, which the proxy bills.
 */

/** Reply parts: at most 31 bytes of padding for small parts. */
export const REPLY_PAD_STEP = 32;
/** Requests: coarser, a request is sealed once. */
export const REQUEST_PAD_STEP = 512;

const MARKER = 0x80;

/** The size `n` bytes of plaintext pad to (the marker included): a multiple of `minStep`, a power of two. */
export function paddedLength(n: number, minStep: number): number {
  const withMarker = n + 1;
  const e = 31 - Math.clz32(withMarker); // floor(log2)
  const s = 32 - Math.clz32(e); // floor(log2 e) + 1
  const step = Math.max(minStep, 2 ** Math.max(0, e - s));
  return Math.ceil(withMarker / step) * step;
}

/** `plaintext` padded to its bucket, written into `out` at `offset` (which must have room for it). */
export function padInto(plaintext: Uint8Array, out: Buffer, offset: number, padded: number): void {
  out.set(plaintext, offset);
  out[offset + plaintext.length] = MARKER;
  out.fill(0, offset + plaintext.length + 1, offset + padded);
}

export function pad(plaintext: Uint8Array, minStep: number): Buffer {
  const padded = paddedLength(plaintext.length, minStep);
  const out = Buffer.allocUnsafe(padded);
  padInto(plaintext, out, 0, padded);
  return out;
}

/** The plaintext inside `padded` (a view, no copy), or undefined when it carries no marker. */
export function unpad(padded: Buffer): Buffer | undefined {
  let i = padded.length - 1;
  while (i >= 0 && padded[i] === 0) i--;
  return i >= 0 && padded[i] === MARKER ? padded.subarray(0, i) : undefined;
}
