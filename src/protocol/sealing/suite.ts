/**
 * The end-to-end encryption suite: HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256
 * and AES-256-GCM, for the request; reply parts under keys exported from the same HPKE context, sealed
 * with AES-256-GCM by node:crypto. The request's HPKE is `@hpke/core`'s, run on node:crypto's synchronous
 * primitives rather than WebCrypto (sync-suite.ts).
 *
 * Why AES-256-GCM rather than ChaCha20-Poly1305: AES-256-GCM is OpenSSL's (node:crypto here, WebCrypto in
 * the stock library), while ChaCha20-Poly1305 needs `@hpke/chacha20poly1305`, pure JavaScript (noble): one
 * more dependency and about 3× slower on a 1 MiB request body (seal + open: 19 ms against 4 ms, measured
 * with the library's WebCrypto AES). One AEAD for both directions keeps one construction to review.
 * ChaCha's edge, constant time without AES instructions, is moot: TDX hosts have AES-NI, and OpenSSL uses
 * constant-time vector AES where a client lacks it. GCM's weakness, nonce reuse, is designed out: every key
 * is fresh per request (and per reply, see reply.ts), and nonces are counters under it.
 *
 * This file holds only names and sizes, so the certificate claims can name the suite without loading HPKE.
 */

/** The suite id a worker's certificate claims name (`claims.e2e.suite`). */
export const E2E_SUITE = 'x25519-hkdf-sha256-aes256gcm';
/** Every suite id a node understands; the claims schema refuses others. */
export const E2E_SUITES = [E2E_SUITE] as const;
export type E2ESuiteId = (typeof E2E_SUITES)[number];

/** First byte of a sealed request: names the suite and this envelope's layout. */
export const SEALED_REQUEST_VERSION = 1;

/** X25519 public keys and HPKE `enc` (Npk = Nenc = 32). */
export const X25519_KEY_BYTES = 32;
export const AEAD_KEY_BYTES = 32;
export const AEAD_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;
