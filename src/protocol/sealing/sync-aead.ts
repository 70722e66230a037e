import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { type AeadEncryptionContext, AeadId, type AeadInterface } from '@hpke/core';
import { toArrayBuffer, toBuffer } from './bytes.ts';
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES } from './suite.ts';

/**
 * AES-GCM for `@hpke/core` on node:crypto's synchronous cipher, in place of the library's `Aes256Gcm`, whose
 * every seal and open is an asynchronous WebCrypto call. This is the library's public extension point (an
 * `AeadInterface`, as its ChaCha20-Poly1305 module is one): the HPKE context still computes each nonce and
 * counts the sequence; this only runs the AEAD. Both are OpenSSL's AES-GCM. AES-128-GCM is here only so the
 * tests can check it against RFC 9180's own vector (A.1.1); the suite uses AES-256-GCM.
 */
class SyncAesGcmContext implements AeadEncryptionContext {
  readonly #key: KeyObject;
  readonly #cipher: 'aes-128-gcm' | 'aes-256-gcm';

  constructor(key: ArrayBufferLike | ArrayBufferView, cipher: 'aes-128-gcm' | 'aes-256-gcm') {
    const raw = toBuffer(key);
    this.#key = createSecretKey(raw);
    this.#cipher = cipher;
    raw.fill(0); // as the library's own context does, once its key is imported
  }

  async seal(
    iv: ArrayBufferLike | ArrayBufferView,
    data: ArrayBufferLike | ArrayBufferView,
    aad: ArrayBufferLike | ArrayBufferView,
  ): Promise<ArrayBuffer> {
    const cipher = createCipheriv(this.#cipher, this.#key, nonce(iv), { authTagLength: AEAD_TAG_BYTES });
    cipher.setAAD(toBuffer(aad));
    const body = cipher.update(toBuffer(data));
    cipher.final(); // GCM: no bytes held back
    return toArrayBuffer(Buffer.concat([body, cipher.getAuthTag()]));
  }

  async open(
    iv: ArrayBufferLike | ArrayBufferView,
    data: ArrayBufferLike | ArrayBufferView,
    aad: ArrayBufferLike | ArrayBufferView,
  ): Promise<ArrayBuffer> {
    const sealed = toBuffer(data);
    if (sealed.length < AEAD_TAG_BYTES) throw new Error('ciphertext shorter than its tag');
    const tagAt = sealed.length - AEAD_TAG_BYTES;
    const decipher = createDecipheriv(this.#cipher, this.#key, nonce(iv), { authTagLength: AEAD_TAG_BYTES });
    decipher.setAAD(toBuffer(aad));
    decipher.setAuthTag(sealed.subarray(tagAt));
    const body = decipher.update(sealed.subarray(0, tagAt));
    decipher.final(); // throws on a wrong tag; the library makes it an OpenError
    return toArrayBuffer(body);
  }
}

function nonce(iv: ArrayBufferLike | ArrayBufferView): Buffer {
  const n = toBuffer(iv);
  if (n.length !== AEAD_NONCE_BYTES) throw new Error(`AES-GCM nonce of ${n.length} bytes`);
  return n;
}

export class SyncAesGcm implements AeadInterface {
  readonly id: AeadId;
  readonly keySize: number;
  readonly nonceSize = AEAD_NONCE_BYTES;
  readonly tagSize = AEAD_TAG_BYTES;
  readonly #cipher: 'aes-128-gcm' | 'aes-256-gcm';

  constructor(bits: 128 | 256 = 256) {
    this.id = bits === 256 ? AeadId.Aes256Gcm : AeadId.Aes128Gcm;
    this.keySize = bits / 8;
    this.#cipher = `aes-${bits}-gcm`;
  }

  createEncryptionContext(key: ArrayBufferLike | ArrayBufferView): AeadEncryptionContext {
    if (key.byteLength !== this.keySize) throw new Error(`AES-GCM key of ${key.byteLength} bytes`);
    return new SyncAesGcmContext(key, this.#cipher);
  }
}
