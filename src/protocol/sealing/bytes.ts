/** Byte conversions between what `@hpke/core` hands its primitives and what node:crypto takes. */

/** A Buffer over the same bytes (no copy). */
export function toBuffer(b: ArrayBufferLike | ArrayBufferView): Buffer {
  return ArrayBuffer.isView(b) ? Buffer.from(b.buffer, b.byteOffset, b.byteLength) : Buffer.from(b);
}

/**
 * An ArrayBuffer holding exactly `b`'s bytes, as the library expects its primitives to return. Copies when
 * `b` is a view into a larger buffer: small Buffers share node's pool, whose other bytes must not leak out.
 */
export function toArrayBuffer(b: Buffer): ArrayBuffer {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength
    ? (b.buffer as ArrayBuffer)
    : (b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
}
