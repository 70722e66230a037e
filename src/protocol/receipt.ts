import { createHash, type Hash, type KeyObject, sign, verify } from 'node:crypto';
import { Address } from '@ton/core';
import { z } from 'zod';
import { type NodeKey, rawPublicKeyFromHex } from '../attest/identity.ts';
import { ProtocolError } from '../errors.ts';
import { MAX_MODEL_NAME_CHARS } from './limits.ts';

/**
 * Receipts (docs/receipts.md): for every response the worker signs, with its attested node key, what it
 * served — to whom (network, proxy contract, proxy), which request and reply (their hashes), which model
 * in which image at which tier under which certificate, the tokens and what they cost. The client checks
 * the signature, keeps the receipt in its log and serves it; anyone can check it offline.
 *
 * The signature is Ed25519 over the canonical bytes themselves, not over a hash of them: Ed25519 hashes
 * its message anyway (SHA-512), so a pre-hash adds nothing, and the same node key signs 32-byte cell
 * hashes for payments (src/pay/signed-messages.ts) — a receipt's signed bytes start with the domain tag
 * and are longer than 32 bytes, so no receipt signature can ever be read as one of those, or vice versa.
 */

export const RECEIPT_TAG = 'cocoon-receipt-v1';
export const RECEIPT_VERSION = 1;

const U64_MAX = (1n << 64n) - 1n;
const U128_MAX = (1n << 128n) - 1n;

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 32 bytes in lowercase hex');
/** Decimal text with no leading zeros, so each amount has exactly one textual form (and one encoding). */
const decimal = (digits: number, max: bigint, what: string) =>
  z
    .string()
    .regex(new RegExp(`^(0|[1-9]\\d{0,${digits - 1}})$`), `expected ${what} as a decimal string`)
    .refine((s) => BigInt(s) <= max, `${what} out of range`);
const nanoton = decimal(39, U128_MAX, 'nanoton');
/** Header-safe and never escaped in JSON: a receipt's id goes in a response header and in file scans. */
export const requestIdSchema = z.string().regex(/^[A-Za-z0-9._~:+/=-]{1,100}$/, 'expected a request id');
/** A lone surrogate would encode to U+FFFD, so two strings would share one signature. */
const wellFormed = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !/[\uD800-\uDFFF]/u.test(s), 'expected well-formed text');
const tokens = z.number().int().nonnegative();
const tonAddress = z
  .string()
  .max(70)
  .refine((a) => Address.isFriendly(a) || Address.isRaw(a), 'expected a TON address');

const usageSchema = z.strictObject({
  promptTokens: tokens,
  cachedTokens: tokens,
  completionTokens: tokens,
  reasoningTokens: tokens,
});
const costSchema = z.strictObject({ prompt: nanoton, completion: nanoton, total: nanoton });

const fieldShape = {
  /** The chain's `global_id` (-239 mainnet, -3 testnet; the sandbox reports -239); null without payments. */
  network: z
    .number()
    .int()
    .min(-(2 ** 31))
    .max(2 ** 31 - 1)
    .nullable(),
  proxyContract: tonAddress.nullable(),
  /** The proxy's Ed25519 public key. */
  proxy: hex32,
  /** The worker's receipt counter, monotonic per worker key: one receipt, one seqno. */
  seqno: decimal(20, U64_MAX, 'seqno'),
  requestId: requestIdSchema,
  /** SHA-256 of the request as the client sent it. */
  requestHash: hex32,
  /** SHA-256 over the reply parts, each framed u32be(length) ‖ bytes (ReplyHasher). */
  replyHash: hex32,
  model: wellFormed(MAX_MODEL_NAME_CHARS),
  image: hex32,
  tier: z.enum(['dev', 'tee-cpu', 'tee-gpu']),
  /** The worker's Ed25519 public key: the signer, and the key its certificate's claims name. */
  worker: hex32,
  /** SHA-256 of the worker's certificate (DER). */
  certificate: hex32,
  usage: usageSchema,
  /** The worker's price coefficient, 1000 = 1×. */
  coefficient: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1),
  /** Nanoton; null when the worker does not know prices. */
  cost: costSchema.nullable(),
  /** Unix ms, by the worker's clock. */
  time: z.number().int().nonnegative(),
};

/** A receipt as it travels and as the log keeps it: strict, so nothing unsigned can ride along. */
export const receiptSchema = z.strictObject({
  v: z.literal(RECEIPT_VERSION),
  ...fieldShape,
  signature: z.string().regex(/^[0-9a-f]{128}$/, 'expected a 64-byte signature in lowercase hex'),
});
export type Receipt = z.infer<typeof receiptSchema>;

/** What the worker fills in; `v`, `worker` (its own key) and `signature` are added by signReceipt. */
export type ReceiptFields = Omit<Receipt, 'v' | 'worker' | 'signature'>;
const fieldsSchema = z.strictObject(fieldShape).omit({ worker: true });

/**
 * Receipts this process parsed (or signed) already, so in their one accepted form: a receipt is checked
 * at several places of one client (bill, reply, log), and parsing it again each time would cost more
 * than the rest of the check.
 */
const parsedReceipts = new WeakSet<Receipt>();

/** Parses a receipt from a peer or a file, once; anything malformed is a ProtocolError. */
export function parseReceipt(value: unknown): Receipt {
  if (typeof value === 'object' && value !== null && parsedReceipts.has(value as Receipt))
    return value as Receipt;
  const r = receiptSchema.safeParse(value);
  if (!r.success) throw new ProtocolError(`malformed receipt: ${z.prettifyError(r.error)}`, 'bad_receipt');
  parsedReceipts.add(r.data);
  return r.data;
}

/**
 * Builds the signed bytes field by field in a fixed order (docs/receipts.md has the layout), into one
 * buffer: a receipt is built on every hop of every request, so no small buffer per field.
 */
class ByteWriter {
  private buf = Buffer.allocUnsafe(512);
  private at = 0;

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }
  raw(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
    return this;
  }
  u8(n: number): this {
    this.room(1);
    this.at = this.buf.writeUInt8(n, this.at);
    return this;
  }
  uint(n: bigint | number, bytes: 4 | 8 | 16): this {
    this.room(bytes);
    if (bytes === 4) this.at = this.buf.writeUInt32BE(Number(n), this.at);
    else {
      const v = BigInt(n);
      if (bytes === 16) this.at = this.buf.writeBigUInt64BE(v >> 64n, this.at);
      this.at = this.buf.writeBigUInt64BE(v & 0xffff_ffff_ffff_ffffn, this.at);
    }
    return this;
  }
  i32(n: number): this {
    this.room(4);
    this.at = this.buf.writeInt32BE(n, this.at);
    return this;
  }
  hex(h: string): this {
    this.room(h.length >> 1);
    this.at += this.buf.write(h, this.at, 'hex');
    return this;
  }
  str(s: string): this {
    const n = Buffer.byteLength(s, 'utf8');
    this.uint(n, 4).room(n);
    this.at += this.buf.write(s, this.at, 'utf8');
    return this;
  }
  /** A nullable field: 0 for null, else 1 then the value. */
  opt<T>(v: T | null, write: (w: ByteWriter, v: T) => void): this {
    if (v === null) return this.u8(0);
    write(this.u8(1), v);
    return this;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

/**
 * The canonical bytes of a receipt, everything but its signature: what is signed and what the log's
 * entry hashes cover. Strings are u32be(length) ‖ UTF-8, hex fields their raw bytes, integers big-endian.
 * Every textual field has one accepted form (lowercase hex, decimals without leading zeros), so
 * re-encoding a parsed receipt gives exactly the bytes that were signed.
 */
const RECEIPT_TAG_BYTES = Buffer.from(RECEIPT_TAG, 'ascii');

export function receiptBytes(r: Omit<Receipt, 'signature'>): Buffer {
  return new ByteWriter()
    .raw(RECEIPT_TAG_BYTES)
    .u8(r.v)
    .opt(r.network, (w, n) => w.i32(n))
    .opt(r.proxyContract, (w, a) => w.str(a))
    .hex(r.proxy)
    .uint(BigInt(r.seqno), 8)
    .str(r.requestId)
    .hex(r.requestHash)
    .hex(r.replyHash)
    .str(r.model)
    .hex(r.image)
    .str(r.tier)
    .hex(r.worker)
    .hex(r.certificate)
    .uint(r.usage.promptTokens, 8)
    .uint(r.usage.cachedTokens, 8)
    .uint(r.usage.completionTokens, 8)
    .uint(r.usage.reasoningTokens, 8)
    .uint(r.coefficient, 4)
    .opt(r.cost, (w, c) =>
      w.uint(BigInt(c.prompt), 16).uint(BigInt(c.completion), 16).uint(BigInt(c.total), 16),
    )
    .uint(r.time, 8)
    .bytes();
}

/**
 * The worker signs what it served with its node key. The fields are checked against the schema first: a
 * worker must never sign a receipt its peers would refuse to parse.
 */
export function signReceipt(fields: ReceiptFields, nodeKey: NodeKey): Receipt {
  const checked = fieldsSchema.safeParse(fields);
  if (!checked.success) throw new Error(`receipt fields out of bounds: ${z.prettifyError(checked.error)}`);
  const unsigned = { v: RECEIPT_VERSION, ...checked.data, worker: nodeKey.publicKeyHex } as const;
  const signature = sign(null, receiptBytes(unsigned), nodeKey.privateKey).toString('hex');
  const receipt = { ...unsigned, signature };
  parsedReceipts.add(receipt);
  return receipt;
}

/**
 * Is this receipt signed by `workerPublicKeyHex`, and does it name that key as its worker? A receipt
 * naming another worker is refused even if the key signed it: it would claim another worker served it.
 */
export function verifyReceiptSignature(receipt: Receipt, workerPublicKeyHex: string): boolean {
  if (receipt.worker !== workerPublicKeyHex) return false;
  const { signature, ...unsigned } = receipt;
  const bytes = receiptBytes(unsigned);
  // A node checks one receipt more than once (its bill, then its reply): the same bytes under the same
  // signature verified already, so the second check is a comparison.
  if (verified.get(signature)?.equals(bytes)) return true;
  let ok: boolean;
  try {
    ok = verify(null, bytes, workerKey(workerPublicKeyHex), Buffer.from(signature, 'hex'));
  } catch {
    return false; // not a valid Ed25519 public key
  }
  if (ok) {
    if (verified.size >= 1024) verified.delete(verified.keys().next().value!);
    verified.set(signature, bytes);
  }
  return ok;
}

/** Receipts verified lately: signature → the bytes it signs (the worker key is among them). */
const verified = new Map<string, Buffer>();

/** Workers' keys, made once each (a KeyObject from hex costs tens of µs; a network has few workers). */
const workerKeys = new Map<string, KeyObject>();
function workerKey(hex: string): KeyObject {
  let k = workerKeys.get(hex);
  if (!k) {
    k = rawPublicKeyFromHex(hex);
    if (workerKeys.size >= 1024) workerKeys.delete(workerKeys.keys().next().value!);
    workerKeys.set(hex, k);
  }
  return k;
}

/** SHA-256 hex of some bytes: a request as sent, a certificate's DER. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * The reply hash, computed part by part as the reply streams: SHA-256 over u32be(length) ‖ bytes of each
 * part, in order. The framing keeps part boundaries in the hash, so ["ab", "c"] and ["a", "bc"] differ.
 * Worker and client both use this, so their hashes agree exactly when the parts do.
 */
export class ReplyHasher {
  private readonly hash: Hash = createHash('sha256');
  private readonly length = Buffer.alloc(4);
  private done = false;

  update(part: Uint8Array): this {
    if (this.done) throw new Error('ReplyHasher: update after digest');
    this.length.writeUInt32BE(part.length);
    this.hash.update(this.length).update(part);
    return this;
  }

  /** The hex digest; the hasher is finished after it. */
  digest(): string {
    this.done = true;
    return this.hash.digest('hex');
  }
}
