import { createHash, type KeyObject, sign, verify } from 'node:crypto';
import { type Address, BitBuilder, beginCell, type Cell } from '@ton/core';
import { rawPublicKeyFromHex, rawPublicKeyHex } from '../attest/identity.ts';

/**
 * The two signed payloads of the payment scheme (docs/payments.md). Both are cumulative, name the one
 * contract that may accept them and the network (`global_id`), and carry a sequence number; the signature
 * is Ed25519 over the payload cell's hash, which is exactly what the contracts check.
 */

export const CLIENT_AUTH_TAG = 0x63617574; // "caut"
export const WORKER_PAYOUT_TAG = 0x77706179; // "wpay"

/** `global_id` (config param 19) of the networks we know; the local sandbox reports mainnet's. */
export const GLOBAL_ID = { mainnet: -239, testnet: -3 } as const;

/** The client's promise: the proxy may take up to `total` nanoton in all from `contract`. */
export interface ClientAuth {
  globalId: number;
  contract: Address;
  seqno: bigint;
  total: bigint;
}

/** The proxy's promise to one worker: `workerTotal` to the worker owner, `proxyTotal` as commission. */
export interface WorkerPayout {
  globalId: number;
  contract: Address;
  seqno: bigint;
  workerTotal: bigint;
  proxyTotal: bigint;
}

export interface Signed<T> {
  payload: T;
  /** The payload as a cell, kept so it is built and hashed once. */
  cell: Cell;
  signature: Buffer;
}

export function clientAuthCell(a: ClientAuth): Cell {
  return beginCell()
    .storeUint(CLIENT_AUTH_TAG, 32)
    .storeInt(a.globalId, 32)
    .storeAddress(a.contract)
    .storeUint(a.seqno, 64)
    .storeCoins(a.total)
    .endCell();
}

export function workerPayoutCell(p: WorkerPayout): Cell {
  return beginCell()
    .storeUint(WORKER_PAYOUT_TAG, 32)
    .storeInt(p.globalId, 32)
    .storeAddress(p.contract)
    .storeUint(p.seqno, 64)
    .storeCoins(p.workerTotal)
    .storeCoins(p.proxyTotal)
    .endCell();
}

/**
 * The hash of a payload cell computed straight from its bits with node's SHA-256: exactly `cell.hash()`
 * for these ref-less cells, without building a Cell (the hot path signs and verifies one per request).
 */
function leafHash(bits: BitBuilder): Buffer {
  const len = bits.length;
  const d2 = Math.floor(len / 8) + Math.ceil(len / 8);
  if (len % 8 !== 0) {
    bits.writeBit(1); // completion tag, then zeros to the byte boundary
    while (bits.length % 8 !== 0) bits.writeBit(0);
  }
  return createHash('sha256')
    .update(Buffer.from([0, d2]))
    .update(bits.buffer())
    .digest();
}

export function clientAuthHash(a: ClientAuth): Buffer {
  const b = new BitBuilder(1023);
  b.writeUint(CLIENT_AUTH_TAG, 32);
  b.writeInt(a.globalId, 32);
  b.writeAddress(a.contract);
  b.writeUint(a.seqno, 64);
  b.writeCoins(a.total);
  return leafHash(b);
}

export function workerPayoutHash(p: WorkerPayout): Buffer {
  const b = new BitBuilder(1023);
  b.writeUint(WORKER_PAYOUT_TAG, 32);
  b.writeInt(p.globalId, 32);
  b.writeAddress(p.contract);
  b.writeUint(p.seqno, 64);
  b.writeCoins(p.workerTotal);
  b.writeCoins(p.proxyTotal);
  return leafHash(b);
}

export function parseClientAuth(cell: Cell): ClientAuth {
  const s = cell.beginParse();
  if (s.loadUint(32) !== CLIENT_AUTH_TAG) throw new Error('not a client authorisation (wrong tag)');
  const a = {
    globalId: s.loadInt(32),
    contract: s.loadAddress(),
    seqno: s.loadUintBig(64),
    total: s.loadCoins(),
  };
  s.endParse();
  return a;
}

export function parseWorkerPayout(cell: Cell): WorkerPayout {
  const s = cell.beginParse();
  if (s.loadUint(32) !== WORKER_PAYOUT_TAG) throw new Error('not a worker payout (wrong tag)');
  const p = {
    globalId: s.loadInt(32),
    contract: s.loadAddress(),
    seqno: s.loadUintBig(64),
    workerTotal: s.loadCoins(),
    proxyTotal: s.loadCoins(),
  };
  s.endParse();
  return p;
}

export function signCell(cell: Cell, key: KeyObject): Buffer {
  return signHash(cell.hash(), key);
}

export function verifyCell(cell: Cell, signature: Buffer, key: KeyObject): boolean {
  return verifyHash(cell.hash(), signature, key);
}

export function signHash(hash: Buffer, key: KeyObject): Buffer {
  return sign(null, hash, key);
}

export function verifyHash(hash: Buffer, signature: Buffer, key: KeyObject): boolean {
  return signature.length === 64 && verify(null, hash, key, signature);
}

/** Is `signature` the client's (key `key`) over this cumulative authorisation? */
export function verifyClientAuth(a: ClientAuth, signature: Buffer, key: KeyObject): boolean {
  return verifyHash(clientAuthHash(a), signature, key);
}

export function signClientAuth(a: ClientAuth, key: KeyObject): Signed<ClientAuth> {
  const cell = clientAuthCell(a);
  return { payload: a, cell, signature: signCell(cell, key) };
}

export function signWorkerPayout(p: WorkerPayout, key: KeyObject): Signed<WorkerPayout> {
  const cell = workerPayoutCell(p);
  return { payload: p, cell, signature: signCell(cell, key) };
}

/** An Ed25519 public key as the contracts store it (`uint256`). */
export function publicKeyToUint(key: KeyObject): bigint {
  return BigInt(`0x${rawPublicKeyHex(key)}`);
}

/** The inverse of `publicKeyToUint`, for keys read back from a contract. */
export function uintToPublicKey(n: bigint): KeyObject {
  return rawPublicKeyFromHex(n.toString(16).padStart(64, '0'));
}
