import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type JsonWebKey,
  KeyObject,
  timingSafeEqual,
  type webcrypto,
} from 'node:crypto';
import { toArrayBuffer, toBuffer } from './bytes.ts';
import { X25519_KEY_BYTES } from './suite.ts';

/**
 * `@hpke/core`'s DHKEM(X25519) primitive (`kem._prim`, class `X25519`) runs every step on WebCrypto: key
 * generation, import and export, and the DH itself, each an asynchronous hop to a thread pool. As
 * sync-hmac.ts does for HMAC, this gives that primitive's own code (length checks, PKCS#8 wrapping,
 * DeriveKeyPair; the KEM's encap/decap and the key schedule above it are untouched) node:crypto's
 * synchronous X25519 instead, through the SubtleCrypto subset it calls. Both are OpenSSL's.
 *
 * The library has no public hook for this (its `Dhkem` base class is not exported by @hpke/core), so this
 * sets the primitive's private `_api`, the SubtleCrypto it would otherwise load. `withSyncX25519` refuses a
 * KEM of another shape, and a test (sealing-interop) fails if a sealing or an opening makes any WebCrypto
 * call, which is what a renamed field would cause.
 *
 * Keys this hands the library are node KeyObjects. It also takes WebCrypto CryptoKeys (the worker's E2E key
 * is one), converted once each and cached, honouring their `extractable` flag and `deriveBits` usage.
 */

type Key = KeyObject | webcrypto.CryptoKey;
const X25519 = 'X25519';
const BITS = X25519_KEY_BYTES * 8;
const ZERO = Buffer.alloc(X25519_KEY_BYTES);
const fromCryptoKey = new WeakMap<webcrypto.CryptoKey, KeyObject>();

/** `key` as an X25519 KeyObject (of `type`, when given); a CryptoKey is converted once and cached. */
function keyObject(key: Key, type?: 'public' | 'private'): KeyObject {
  let k = key instanceof KeyObject ? key : fromCryptoKey.get(key);
  if (!k) {
    k = KeyObject.from(key as webcrypto.CryptoKey);
    fromCryptoKey.set(key as webcrypto.CryptoKey, k);
  }
  return checked(k, type);
}

function checked(key: KeyObject, type?: 'public' | 'private'): KeyObject {
  if (key.asymmetricKeyType !== 'x25519' || (type && key.type !== type)) {
    throw new Error(`not an X25519 ${type ?? ''} key`);
  }
  return key;
}

function algorithmName(alg: string | { name: string }): string {
  return typeof alg === 'string' ? alg : alg.name;
}

function requireX25519(alg: string | { name: string }): void {
  if (algorithmName(alg) !== X25519) throw new Error(`unsupported algorithm ${algorithmName(alg)}`);
}

/** The raw public key: JWK `x` (node's JWK export is some 40× faster than its DER one). */
function rawPublic(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url');
}

const api = {
  async generateKey(
    alg: string | { name: string },
    _extractable: boolean,
    _usages: readonly string[],
  ): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
    requireX25519(alg);
    return generateKeyPairSync('x25519');
  },

  async importKey(
    format: 'raw' | 'pkcs8' | 'jwk',
    keyData: ArrayBufferLike | ArrayBufferView | JsonWebKey,
    alg: string | { name: string },
    _extractable: boolean,
    _usages: readonly string[],
  ): Promise<KeyObject> {
    requireX25519(alg);
    if (format === 'raw') {
      const x = toBuffer(keyData as ArrayBufferLike | ArrayBufferView).toString('base64url');
      return checked(createPublicKey({ key: { kty: 'OKP', crv: X25519, x }, format: 'jwk' }));
    }
    if (format === 'pkcs8') {
      const der = toBuffer(keyData as ArrayBufferLike | ArrayBufferView);
      return checked(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
    }
    if (format === 'jwk') {
      const jwk = keyData as JsonWebKey;
      const key =
        jwk.d === undefined ? createPublicKey({ key: jwk, format }) : createPrivateKey({ key: jwk, format });
      return checked(key);
    }
    throw new Error(`unsupported key format ${String(format)}`);
  },

  async exportKey(format: 'raw' | 'jwk', key: Key): Promise<ArrayBuffer | JsonWebKey> {
    if (!(key instanceof KeyObject) && !key.extractable) throw new Error('key is not extractable');
    if (format === 'raw') return toArrayBuffer(rawPublic(keyObject(key, 'public')));
    if (format === 'jwk') return keyObject(key).export({ format: 'jwk' });
    throw new Error(`unsupported key format ${String(format)}`);
  },

  async deriveBits(alg: { name: string; public: Key }, key: Key, bits: number): Promise<ArrayBuffer> {
    requireX25519(alg);
    if (bits !== BITS) throw new Error(`X25519 gives ${BITS} bits, not ${bits}`);
    if (!(key instanceof KeyObject) && !key.usages.includes('deriveBits')) {
      throw new Error('key may not derive bits');
    }
    const shared = diffieHellman({
      privateKey: keyObject(key, 'private'),
      publicKey: keyObject(alg.public, 'public'),
    });
    // RFC 9180 §7.1.4: an all-zero DH output (a low-order public key) must be refused. OpenSSL refuses it
    // already; checked again here (in constant time) so the guard does not rest on that.
    if (timingSafeEqual(shared, ZERO)) throw new Error('X25519 output is all zero');
    return toArrayBuffer(shared);
  },
};

/** The primitive's shape this relies on; checked so a library update cannot quietly undo the swap. */
interface X25519Primitive {
  _api: unknown;
  _nDh: number;
  dh(sk: unknown, pk: unknown): Promise<ArrayBuffer>;
  serializePublicKey(key: unknown): Promise<ArrayBuffer>;
  deserializePublicKey(key: ArrayBuffer): Promise<unknown>;
}

/** Gives an `@hpke/core` `DhkemX25519HkdfSha256` (this instance only) the synchronous X25519. */
export function withSyncX25519<T extends object>(kem: T): T {
  const prim = (kem as { _prim?: Partial<X25519Primitive> })._prim;
  if (
    typeof prim !== 'object' ||
    prim === null ||
    !('_api' in prim) ||
    prim._nDh !== X25519_KEY_BYTES ||
    typeof prim.dh !== 'function' ||
    typeof prim.serializePublicKey !== 'function' ||
    typeof prim.deserializePublicKey !== 'function'
  ) {
    throw new Error('@hpke/core changed its X25519 KEM: sync-x25519.ts needs updating');
  }
  prim._api = api;
  return kem;
}
