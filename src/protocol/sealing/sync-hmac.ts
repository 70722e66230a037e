import { createHmac, hkdfSync } from 'node:crypto';

/**
 * `@hpke/core` runs its HKDF on WebCrypto's HMAC: every call an asynchronous hop to a thread pool, and the
 * key schedule of one HPKE context makes about twenty (≈1.2 ms a side here). This gives the library's own
 * HKDF code (`HkdfNative`: extract, expand, extract-and-expand, unchanged) node:crypto's synchronous HMAC
 * and HKDF instead, through the three SubtleCrypto calls it makes. Only the HMAC primitive changes hands:
 * both are OpenSSL's; a test shows it interoperates with the library on WebCrypto, both ways.
 */
interface RawKey {
  raw: Buffer;
}

const api = {
  async importKey(_format: 'raw', keyData: ArrayBuffer | ArrayBufferView): Promise<RawKey> {
    return { raw: toBuffer(keyData) };
  },
  async sign(_algorithm: 'HMAC', key: RawKey, data: ArrayBuffer | ArrayBufferView): Promise<ArrayBuffer> {
    return toArrayBuffer(createHmac('sha256', key.raw).update(toBuffer(data)).digest());
  },
  async deriveBits(
    p: { name: 'HKDF'; hash: string; salt: ArrayBuffer; info: ArrayBuffer },
    key: RawKey,
    bits: number,
  ): Promise<ArrayBuffer> {
    if (p.name !== 'HKDF' || p.hash !== 'SHA-256')
      throw new Error(`unsupported derivation ${p.name}/${p.hash}`);
    return hkdfSync('sha256', key.raw, toBuffer(p.salt), toBuffer(p.info), bits / 8);
  },
};

function toBuffer(b: ArrayBuffer | ArrayBufferView): Buffer {
  return ArrayBuffer.isView(b) ? Buffer.from(b.buffer, b.byteOffset, b.byteLength) : Buffer.from(b);
}

function toArrayBuffer(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** Gives an `@hpke/core` KDF (`HkdfSha256`, or a KEM's own, `kem._kdf`) the synchronous HMAC. */
export function withSyncHmac<T extends object>(kdf: T): T {
  (kdf as { _api?: unknown })._api = api;
  return kdf;
}
