import { createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { type Address, beginCell, type Cell } from '@ton/core';

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
  return sign(null, cell.hash(), key);
}

export function verifyCell(cell: Cell, signature: Buffer, key: KeyObject): boolean {
  return signature.length === 64 && verify(null, cell.hash(), key, signature);
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
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || !jwk.x) throw new Error('not an Ed25519 public key');
  return BigInt(`0x${Buffer.from(jwk.x, 'base64url').toString('hex')}`);
}

/** The inverse of `publicKeyToUint`, for keys read back from a contract. */
export function uintToPublicKey(n: bigint): KeyObject {
  const raw = Buffer.from(n.toString(16).padStart(64, '0'), 'hex');
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') },
    format: 'jwk',
  });
}
