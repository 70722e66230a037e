import { createHmac } from 'node:crypto';
import { toArrayBuffer, toBuffer } from './bytes.ts';

/**
 * `@hpke/core` runs its HKDF on WebCrypto's HMAC: every call an asynchronous hop to a thread pool, and the
 * key schedule of one HPKE context makes about twenty (≈1.2 ms a side, measured before this file). This
 * gives the library's own HKDF code (`HkdfNative`: labels, extract, expand, extract-and-expand, unchanged)
 * node:crypto's synchronous HMAC instead, through the three SubtleCrypto calls it makes (importKey, sign,
 * and deriveBits for its one-call HKDF). Only the primitive changes hands, OpenSSL's in both cases; tests
 * check it against the library on WebCrypto both ways, against RFC 9180's vector, and `hkdfSha256` against
 * node's `hkdfSync`. Used by sync-suite.ts, on that suite's instances only.
 */

const HASH_BYTES = 32;
const ZERO_SALT = Buffer.alloc(HASH_BYTES);

/**
 * HKDF-SHA256 (RFC 5869) on createHmac: two HMACs for the ≤ 32 bytes HPKE asks. node's `hkdfSync` computes
 * the same but costs about twice as much per call (a KeyObject and an OpenSSL HKDF context each time).
 */
export function hkdfSha256(ikm: Buffer, salt: Buffer, info: Buffer, length: number): Buffer {
  if (!Number.isInteger(length) || length < 1 || length > 255 * HASH_BYTES) {
    throw new Error(`HKDF-SHA256 cannot give ${length} bytes`);
  }
  const prk = createHmac('sha256', salt.length === 0 ? ZERO_SALT : salt)
    .update(ikm)
    .digest();
  const blocks: Buffer[] = [];
  let t = Buffer.alloc(0);
  for (let i = 1; i <= Math.ceil(length / HASH_BYTES); i++) {
    t = createHmac('sha256', prk).update(t).update(info).update(Buffer.of(i)).digest();
    blocks.push(t);
  }
  return Buffer.concat(blocks).subarray(0, length);
}

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
    return toArrayBuffer(hkdfSha256(key.raw, toBuffer(p.salt), toBuffer(p.info), bits / 8));
  },
};

/** Gives an `@hpke/core` KDF (`HkdfSha256`, or a KEM's own, `kem._kdf`) the synchronous HMAC. */
export function withSyncHmac<T extends object>(kdf: T): T {
  (kdf as { _api?: unknown })._api = api;
  return kdf;
}
