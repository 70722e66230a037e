import type { webcrypto } from 'node:crypto';
import { E2EOpenError, ProtocolError } from '../../errors.ts';
import { pad, paddedLength, REQUEST_PAD_STEP, unpad } from './padding.ts';
import { REPLY_SECRET_BYTES, ReplyOpener, ReplySealer } from './reply.ts';
import { AEAD_TAG_BYTES, SEALED_REQUEST_VERSION, X25519_KEY_BYTES } from './suite.ts';
import { syncCipherSuite } from './sync-suite.ts';

/**
 * A sealed request body:
 *
 *   u8        version (1: the suite in suite.ts)
 *   32 bytes  enc, the sender's ephemeral X25519 public key (HPKE)
 *   …         HPKE ciphertext of the padded body, its 16-byte tag last
 *
 * HPKE base mode, info = `cocoon-e2e-v1`, aad = the caller's (see `requestAad`). The worker's static key
 * is bound in by HPKE's KEM context (enc ‖ pkR). Another version byte would name another suite or layout
 * (and its own info string); this one refuses all but 1.
 */

/** HPKE on node:crypto's synchronous primitives (sync-suite.ts): about half the cost of it on WebCrypto. */
const suite = syncCipherSuite();
const INFO = Buffer.from('cocoon-e2e-v1');
/** HPKE exporter context for the reply's secret: a label of its own, so it is no key used elsewhere. */
const REPLY_EXPORTER_CONTEXT = Buffer.from('cocoon-e2e-reply-v1');
const AAD_TAG = Buffer.from('cocoon-e2e-request-v1');
const HEADER_BYTES = 1 + X25519_KEY_BYTES;
/** The smallest sealed request: the header, one byte (the padding marker) and the tag. */
const MIN_SEALED_BYTES = HEADER_BYTES + 1 + AEAD_TAG_BYTES;

export interface RequestAadFields {
  requestId: string;
  /** The model the request names (as routed). */
  model: string;
  /** Hash of the DER certificate of the worker the client sealed to. */
  workerCertHash: Uint8Array;
}

/**
 * Canonical AAD of a sealed request, so the proxy cannot move a sealed body to another request, model or
 * worker: the domain tag, then each field as u32 BE length ‖ bytes (UTF-8 for strings), in this order.
 */
export function requestAad(fields: RequestAadFields): Buffer {
  const parts = [AAD_TAG, Buffer.from(fields.requestId), Buffer.from(fields.model), fields.workerCertHash];
  const out = Buffer.allocUnsafe(parts.reduce((n, p) => n + 4 + p.length, 0));
  let at = 0;
  for (const p of parts) {
    at = out.writeUInt32BE(p.length, at);
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The `enc` of a sealed request (the client's ephemeral X25519 key): its reply's keys derive from it. */
export function sealedRequestEnc(sealed: Uint8Array): Buffer {
  return Buffer.from(sealed.subarray(1, HEADER_BYTES));
}

/** The size a body of `n` bytes seals to: known before sealing, so a call can declare it up front. */
export function sealedRequestBytes(n: number): number {
  return HEADER_BYTES + paddedLength(n, REQUEST_PAD_STEP) + AEAD_TAG_BYTES;
}

export interface SealRequestOptions {
  /** The worker's X25519 public key, raw hex, from its verified certificate's `claims.e2e.publicKey`. */
  recipientPublicKey: string;
  plaintext: Uint8Array;
  aad: Uint8Array;
  /** Largest sealed reply part the client accepts; a larger one fails to open. */
  maxReplyPartBytes: number;
}

/**
 * Client side: seals a request body to the worker, and keeps what opens its reply: the opener, and the
 * secret it derives from (it opens this reply only; the client reveals it to dispute a bill).
 */
export async function sealRequest(
  opts: SealRequestOptions,
): Promise<{ sealed: Buffer; reply: ReplyOpener; secret: Buffer }> {
  if (!/^[0-9a-f]{64}$/.test(opts.recipientPublicKey)) {
    throw new ProtocolError('worker E2E public key is not 32 bytes of hex', 'e2e_bad_recipient_key');
  }
  let sender: Awaited<ReturnType<typeof suite.createSenderContext>>;
  try {
    const recipientPublicKey = await suite.kem.deserializePublicKey(
      Buffer.from(opts.recipientPublicKey, 'hex'),
    );
    sender = await suite.createSenderContext({ recipientPublicKey, info: INFO });
  } catch {
    // A low-order point makes X25519 all zero, which the KEM refuses (RFC 9180 §7.1.4).
    throw new ProtocolError('worker E2E public key is unusable', 'e2e_bad_recipient_key');
  }
  const ciphertext = Buffer.from(await sender.seal(pad(opts.plaintext, REQUEST_PAD_STEP), opts.aad));
  const enc = Buffer.from(sender.enc);
  const secret = Buffer.from(await sender.export(REPLY_EXPORTER_CONTEXT, REPLY_SECRET_BYTES));
  const sealed = Buffer.concat([Buffer.of(SEALED_REQUEST_VERSION), enc, ciphertext]);
  return { sealed, reply: new ReplyOpener(secret, enc, opts.maxReplyPartBytes), secret };
}

export interface OpenRequestOptions {
  /** The worker's E2E key pair (`E2EKey.keyPair`). */
  key: webcrypto.CryptoKeyPair;
  sealed: Uint8Array;
  /** The AAD the worker builds itself from what it was asked (`requestAad`), never one it was sent. */
  aad: Uint8Array;
  /** Largest sealed request accepted; checked before any work. */
  maxBytes: number;
}

/** Worker side: opens a sealed request body and returns what seals its reply. Throws E2EOpenError. */
export async function openRequest(
  opts: OpenRequestOptions,
): Promise<{ plaintext: Buffer; reply: ReplySealer }> {
  const sealed = Buffer.from(opts.sealed.buffer, opts.sealed.byteOffset, opts.sealed.byteLength);
  if (sealed.length > opts.maxBytes) {
    throw new E2EOpenError(`sealed request of ${sealed.length} bytes, more than ${opts.maxBytes}`);
  }
  if (sealed.length < MIN_SEALED_BYTES)
    throw new E2EOpenError(`sealed request of ${sealed.length} bytes is truncated`);
  if (sealed[0] !== SEALED_REQUEST_VERSION)
    throw new E2EOpenError(`sealed request version ${sealed[0]} is unknown`);
  const enc = sealed.subarray(1, HEADER_BYTES);
  let padded: Buffer;
  let secret: Buffer;
  try {
    const recipient = await suite.createRecipientContext({ recipientKey: opts.key, enc, info: INFO });
    padded = Buffer.from(await recipient.open(sealed.subarray(HEADER_BYTES), opts.aad));
    secret = Buffer.from(await recipient.export(REPLY_EXPORTER_CONTEXT, REPLY_SECRET_BYTES));
  } catch {
    throw new E2EOpenError('sealed request did not open (wrong key, AAD or a changed byte)');
  }
  const plaintext = unpad(padded);
  if (!plaintext) throw new E2EOpenError('sealed request has no padding marker');
  return { plaintext, reply: new ReplySealer(secret, Buffer.from(enc)) };
}
