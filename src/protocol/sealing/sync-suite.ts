import { type AeadInterface, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { SyncAesGcm } from './sync-aead.ts';
import { withSyncHmac } from './sync-hmac.ts';
import { withSyncX25519 } from './sync-x25519.ts';

/**
 * The library's HPKE (`CipherSuite`: KEM encap/decap, key schedule, nonces, exporter, all its own code) over
 * node:crypto's synchronous primitives instead of WebCrypto's asynchronous ones: HMAC/HKDF (sync-hmac.ts),
 * X25519 (sync-x25519.ts) and AES-GCM (sync-aead.ts). The swaps touch only the instances made here; other
 * `@hpke/core` suites in the process stay on WebCrypto. The tests check it against an unmodified suite both
 * ways and against RFC 9180's vector.
 */
export function syncCipherSuite(aead: AeadInterface = new SyncAesGcm()): CipherSuite {
  const kem = withSyncX25519(new DhkemX25519HkdfSha256());
  withSyncHmac((kem as unknown as { _kdf: object })._kdf);
  return new CipherSuite({ kem, kdf: withSyncHmac(new HkdfSha256()), aead });
}
