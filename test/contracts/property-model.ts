import { createPrivateKey, createPublicKey } from 'node:crypto';
import { ExitCode } from '../../src/chain/contracts/opcodes.ts';
import { publicKeyToUint } from '../../src/pay/signed-messages.ts';
import type { Keys } from './helpers.ts';

/**
 * The off-chain half of the randomized contract test (property.test.ts): a seeded PRNG, keys derived from
 * it, and a bigint model of what the client, worker and proxy contracts must do with each message
 * (docs/payments.md), written from the spec, not from the Tolk sources.
 */

/** mulberry32: a tiny, fast, seeded PRNG; the whole test is a function of its seed. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Integer in [lo, hi] (64 random bits reduced modulo the span; the bias does not matter here). */
  big(lo: bigint, hi: bigint): bigint {
    const word = () => BigInt(Math.floor(this.next() * 4_294_967_296));
    return lo + (((word() << 32n) | word()) % (hi - lo + 1n));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from an empty list');
    return xs[Math.floor(this.next() * xs.length)]!;
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as [K, number][];
    let x = this.next() * entries.reduce((s, [, w]) => s + w, 0);
    for (const [k, w] of entries) {
      x -= w;
      if (x < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }

  bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => Math.floor(this.next() * 256)));
  }
}

/** PKCS#8 DER header of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** An Ed25519 key pair from the PRNG (Ed25519 signatures are deterministic, so the whole run is). */
export function keysFrom(rng: Rng): Keys {
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, rng.bytes(32)]),
    format: 'der',
    type: 'pkcs8',
  });
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, uint: publicKeyToUint(publicKey) };
}

// ---------------------------------------------------------------------------------------------------------
// The model: the tracked fields of each contract, and what each message does to them.

export interface ClientModel {
  state: number;
  balance: bigint;
  stake: bigint;
  charged: bigint;
  seqno: bigint;
  unlockAt: number;
}

export interface WorkerModel {
  deployed: boolean;
  seqno: bigint;
  paidWorker: bigint;
  paidProxy: bigint;
}

export interface ProxyModel {
  state: number;
  stake: bigint;
  pool: bigint;
  commission: bigint;
  unlockAt: number;
}

export const OPEN = 0;
export const CLOSING = 1;
export const CLOSED = 2;

/** A refusal: the contract throws with this code, bounces, and changes nothing. */
export interface Refused {
  refused: number;
}
export const refused = (code: number): Refused => ({ refused: code });
export const isRefused = (x: object): x is Refused => 'refused' in x;
/** The outcomes of `xs` that are not refusals. */
export const acceptedOf = <T extends object>(xs: (Refused | T)[]): T[] =>
  xs.filter((x): x is T => !isRefused(x));

export function minOf(a: bigint, b: bigint): bigint {
  if (a < b) return a;
  return b;
}

/** `charge` with an authorisation for `total` at `seqno`: the proceeds land in the proxy's pool, or, if the
 * proxy contract is closed, bounce and are put back (the seqno stays consumed). `short`: the charge did
 * not take all the authorisation allowed (the balance ran out, or the proceeds came back). */
export function modelCharge(
  c: ClientModel,
  p: ProxyModel,
  auth: { seqno: bigint; total: bigint },
): Refused | { taken: bigint; capped: boolean; bounced: boolean; short: boolean } {
  if (c.state === CLOSED) return refused(ExitCode.wrongState);
  if (auth.seqno <= c.seqno) return refused(ExitCode.staleSeqno);
  if (auth.total <= c.charged) return refused(ExitCode.totalNotAbovePaid);
  const due = auth.total - c.charged;
  const taken = minOf(due, c.balance);
  c.charged += taken;
  c.balance -= taken;
  c.seqno = auth.seqno;
  if (p.state === CLOSED) {
    c.charged -= taken;
    c.balance += taken;
    return { taken, capped: taken < due, bounced: true, short: true };
  }
  p.pool += taken;
  return { taken, capped: taken < due, bounced: false, short: taken < due };
}

export function modelTopUp(
  c: ClientModel,
  amount: bigint,
  attached: bigint,
  minForward: bigint,
): Refused | null {
  if (c.state !== OPEN) return refused(ExitCode.wrongState);
  if (attached < amount + minForward) return refused(ExitCode.notEnoughValue);
  c.balance += amount;
  return null;
}

export function modelWithdraw(c: ClientModel, amount: bigint, byOwner: boolean): Refused | null {
  if (!byOwner) return refused(ExitCode.notAllowed);
  if (c.state !== OPEN) return refused(ExitCode.wrongState);
  if (c.balance - amount < c.stake) return refused(ExitCode.notEnoughFunds);
  c.balance -= amount;
  return null;
}

export function modelIncreaseStake(c: ClientModel, stake: bigint, byOwner: boolean): Refused | null {
  if (!byOwner) return refused(ExitCode.notAllowed);
  if (c.state !== OPEN) return refused(ExitCode.wrongState);
  if (stake <= c.stake) return refused(ExitCode.invalidParams);
  c.stake = stake;
  return null;
}

export function modelRequestClose(c: ClientModel, now: number, closeDelay: number): Refused | null {
  if (c.state !== OPEN) return refused(ExitCode.wrongState);
  c.state = CLOSING;
  c.unlockAt = now + closeDelay;
  return null;
}

/** `close`: the refund (the whole balance) goes to the owner. */
export function modelClose(c: ClientModel, now: number): Refused | { refund: bigint } {
  if (c.state !== CLOSING) return refused(ExitCode.wrongState);
  if (now < c.unlockAt) return refused(ExitCode.tooEarly);
  const refund = c.balance;
  c.state = CLOSED;
  c.balance = 0n;
  return { refund };
}

export function modelAddStake(
  p: ProxyModel,
  amount: bigint,
  attached: bigint,
  minForward: bigint,
): Refused | null {
  if (p.state !== OPEN) return refused(ExitCode.wrongState);
  if (attached < amount + minForward) return refused(ExitCode.notEnoughValue);
  p.stake += amount;
  return null;
}

export function modelProxyRequestClose(p: ProxyModel, now: number, closeDelay: number): Refused | null {
  if (p.state !== OPEN) return refused(ExitCode.wrongState);
  p.state = CLOSING;
  p.unlockAt = now + closeDelay;
  return null;
}

/** The proxy's `close`: stake, pool and commission go to the owner. */
export function modelProxyClose(p: ProxyModel, now: number): Refused | { paid: bigint } {
  if (p.state !== CLOSING) return refused(ExitCode.wrongState);
  if (now < p.unlockAt) return refused(ExitCode.tooEarly);
  const paid = p.stake + p.pool + p.commission;
  p.state = CLOSED;
  p.stake = 0n;
  p.pool = 0n;
  p.commission = 0n;
  return { paid };
}

/** First hop of a payout: the worker contract checks the signed totals and forwards the differences. */
export function modelPayoutAtWorker(
  w: WorkerModel,
  payout: { seqno: bigint; workerTotal: bigint; proxyTotal: bigint },
): Refused | { dw: bigint; dp: bigint } {
  if (payout.seqno <= w.seqno) return refused(ExitCode.staleSeqno);
  if (payout.workerTotal < w.paidWorker || payout.proxyTotal < w.paidProxy) {
    return refused(ExitCode.totalNotAbovePaid);
  }
  if (payout.workerTotal + payout.proxyTotal <= w.paidWorker + w.paidProxy) {
    return refused(ExitCode.totalNotAbovePaid);
  }
  const dw = payout.workerTotal - w.paidWorker;
  const dp = payout.proxyTotal - w.paidProxy;
  w.deployed = true;
  w.seqno = payout.seqno;
  w.paidWorker = payout.workerTotal;
  w.paidProxy = payout.proxyTotal;
  return { dw, dp };
}

/** Second hop: the proxy pays from the pool, then the stake, or refuses and the worker rolls back (its
 * seqno stays consumed). Returns whether it paid. */
export function modelPayoutAtProxy(w: WorkerModel, p: ProxyModel, dw: bigint, dp: bigint): boolean {
  const due = dw + dp;
  if (due > p.pool + p.stake) {
    w.paidWorker -= dw;
    w.paidProxy -= dp;
    return false;
  }
  const fromPool = minOf(due, p.pool);
  p.pool -= fromPool;
  p.stake -= due - fromPool;
  p.commission += dp;
  return true;
}
