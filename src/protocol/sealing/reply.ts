import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { E2EOpenError } from '../../errors.ts';
import { pad, REPLY_PAD_STEP, unpad } from './padding.ts';
import { AEAD_KEY_BYTES, AEAD_NONCE_BYTES, AEAD_TAG_BYTES } from './suite.ts';

/**
 * Reply parts. The worker seals every part of its reply (each stream part, or a whole reply as one part):
 *
 *   first part:  u8 flags ‖ 32-byte response nonce ‖ AES-256-GCM(padded part) ‖ 16-byte tag
 *   later parts: u8 flags ‖ AES-256-GCM(padded part) ‖ 16-byte tag
 *
 * flags: bit 0 = last part, the other bits zero. The header (flags, and the response nonce on the first part)
 * is the AEAD's AAD.
 *
 * Keys, as Oblivious HTTP derives its responses' (RFC 9458 §4.4): secret = HPKE Export("cocoon-e2e-reply-v1",
 * 32) of the request's context, then HKDF-SHA256(secret, salt = enc ‖ response nonce) = key ‖ nonce base.
 * The worker's random response nonce keeps a reply's key fresh even if the proxy replays one sealed request
 * to it twice: two different replies under one key and the same nonces would break GCM outright.
 *
 * Nonce of part i = nonce base XOR (0x000000 ‖ u8 last ‖ u64 BE i), counting as TLS 1.3 and HPKE do: a part
 * opens only at its own position and with its own last flag, so parts cannot be reordered, dropped, replayed
 * or taken from another reply, and a stream cut before its last part is seen as cut (`finished` stays false).
 * Each part costs one synchronous node:crypto AEAD call (µs), no HPKE and no WebCrypto.
 */

/** Bytes exported from the HPKE context for the reply. */
export const REPLY_SECRET_BYTES = 32;
const RESPONSE_NONCE_BYTES = 32;
const KEYS_INFO = Buffer.from('cocoon-e2e-reply-v1 key nonce');
const LAST = 0x01;
/** Far beyond any reply; keeps the counter in 32 bits and GCM's per-key limits distant. */
const MAX_PARTS = 2 ** 32;
const AEAD = 'aes-256-gcm';

interface ReplyKeys {
  key: KeyObject;
  nonceBase: Buffer;
}

function replyKeys(secret: Buffer, enc: Buffer, responseNonce: Buffer): ReplyKeys {
  const okm = Buffer.from(
    hkdfSync(
      'sha256',
      secret,
      Buffer.concat([enc, responseNonce]),
      KEYS_INFO,
      AEAD_KEY_BYTES + AEAD_NONCE_BYTES,
    ),
  );
  return { key: createSecretKey(okm.subarray(0, AEAD_KEY_BYTES)), nonceBase: okm.subarray(AEAD_KEY_BYTES) };
}

function partNonce(keys: ReplyKeys, index: number, last: boolean): Buffer {
  const nonce = Buffer.from(keys.nonceBase);
  if (last) nonce[3]! ^= LAST;
  // The u64's high half is zero: index < MAX_PARTS.
  nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ index) >>> 0, 8);
  return nonce;
}

const headerBytes = (index: number) => (index === 0 ? 1 + RESPONSE_NONCE_BYTES : 1);

/** Worker side: seals the parts of one reply, in order. */
export class ReplySealer {
  readonly #keys: ReplyKeys;
  readonly #responseNonce = randomBytes(RESPONSE_NONCE_BYTES);
  #next = 0;
  #finished = false;

  /** Made by `openRequest`, from the request's HPKE context. */
  constructor(secret: Buffer, enc: Buffer) {
    this.#keys = replyKeys(secret, enc, this.#responseNonce);
  }

  /** True once a part was sealed with `last`; nothing can be sealed after it. */
  get finished(): boolean {
    return this.#finished;
  }

  /** The sealed part to send; `last` marks the reply's end, so the client can tell a cut stream. */
  seal(part: Uint8Array, last = false): Buffer {
    if (this.#finished) throw new Error('this reply already sealed its last part');
    if (this.#next >= MAX_PARTS) throw new Error('this reply has too many parts');
    const index = this.#next;
    const header = Buffer.allocUnsafe(headerBytes(index));
    header[0] = last ? LAST : 0;
    if (index === 0) this.#responseNonce.copy(header, 1);
    const cipher = createCipheriv(AEAD, this.#keys.key, partNonce(this.#keys, index, last), {
      authTagLength: AEAD_TAG_BYTES,
    });
    cipher.setAAD(header);
    const body = cipher.update(pad(part, REPLY_PAD_STEP));
    cipher.final(); // GCM: no bytes held back
    this.#next++;
    this.#finished = last;
    return Buffer.concat([header, body, cipher.getAuthTag()]);
  }
}

/** Client side: opens the parts of the reply to one sealed request, in order. Throws E2EOpenError. */
export class ReplyOpener {
  readonly #secret: Buffer;
  readonly #enc: Buffer;
  readonly #maxPartBytes: number;
  #keys: ReplyKeys | undefined;
  #next = 0;
  #state: 'open' | 'finished' | 'failed' = 'open';

  /** Made by `sealRequest`, from the request's HPKE context. */
  constructor(secret: Buffer, enc: Buffer, maxPartBytes: number) {
    this.#secret = secret;
    this.#enc = enc;
    this.#maxPartBytes = maxPartBytes;
  }

  /** True only after the part sealed as last was opened: a reply without it was cut short. */
  get finished(): boolean {
    return this.#state === 'finished';
  }

  /**
   * The plaintext of the next part. A part that fails ends the reply (later parts fail too): what came after
   * a forged, lost or reordered part cannot be trusted to be the worker's reply.
   */
  open(sealedPart: Uint8Array): Buffer {
    if (this.#state === 'finished') throw new E2EOpenError('reply part after the last one');
    if (this.#state === 'failed') throw new E2EOpenError('reply already failed to open');
    try {
      return this.#open(Buffer.from(sealedPart.buffer, sealedPart.byteOffset, sealedPart.byteLength));
    } catch (err) {
      this.#state = 'failed';
      throw err;
    }
  }

  #open(sealed: Buffer): Buffer {
    const index = this.#next;
    const hb = headerBytes(index);
    if (sealed.length > this.#maxPartBytes) {
      throw new E2EOpenError(`sealed reply part of ${sealed.length} bytes, more than ${this.#maxPartBytes}`);
    }
    // At least the padding marker: a sealed part never has an empty plaintext.
    if (sealed.length < hb + 1 + AEAD_TAG_BYTES)
      throw new E2EOpenError(`sealed reply part ${index} is truncated`);
    const flags = sealed[0]!;
    if ((flags & ~LAST) !== 0)
      throw new E2EOpenError(`sealed reply part ${index} has unknown flags ${flags}`);
    const last = flags === LAST;
    if (index === 0) this.#keys = replyKeys(this.#secret, this.#enc, sealed.subarray(1, hb));
    const keys = this.#keys!;
    const tagAt = sealed.length - AEAD_TAG_BYTES;
    const decipher = createDecipheriv(AEAD, keys.key, partNonce(keys, index, last), {
      authTagLength: AEAD_TAG_BYTES,
    });
    decipher.setAAD(sealed.subarray(0, hb));
    decipher.setAuthTag(sealed.subarray(tagAt));
    const padded = decipher.update(sealed.subarray(hb, tagAt));
    try {
      decipher.final();
    } catch {
      throw new E2EOpenError(
        `sealed reply part ${index} did not open (wrong key, position or a changed byte)`,
      );
    }
    const plaintext = unpad(padded);
    if (!plaintext) throw new E2EOpenError(`sealed reply part ${index} has no padding marker`);
    this.#next++;
    if (last) this.#state = 'finished';
    return plaintext;
  }
}
