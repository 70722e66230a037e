import { createPrivateKey, createPublicKey } from 'node:crypto';
import { ExitCode, MAX_CLOSE_DELAY } from '../../src/chain/contracts/opcodes.ts';
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
  closeDelay: number;
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
  /** Matured: what withdraw_commission pays. */
  commission: bigint;
  /** Credited in [epoch, epoch + closeDelay). */
  maturingNew: bigint;
  /** Credited in [epoch − closeDelay, epoch). */
  maturingOld: bigint;
  epoch: number;
  unlockAt: number;
  closeDelay: number;
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

export function maxOf(a: bigint, b: bigint): bigint {
  if (a > b) return a;
  return b;
}

/** Commission matures one to two close delays after it was credited: on a grid of periods of `closeDelay`,
 * what was credited two periods ago or earlier is withdrawable (docs/payments.md). */
export function modelMature(p: ProxyModel, now: number): void {
  const d = p.closeDelay;
  if (d === 0) {
    p.commission += p.maturingNew + p.maturingOld;
    p.maturingNew = 0n;
    p.maturingOld = 0n;
    p.epoch = now;
    return;
  }
  if (now < p.epoch + d) return;
  const elapsed = Math.floor((now - p.epoch) / d);
  if (elapsed >= 2) {
    p.commission += p.maturingNew + p.maturingOld;
    p.maturingOld = 0n;
  } else {
    p.commission += p.maturingOld;
    p.maturingOld = p.maturingNew;
  }
  p.maturingNew = 0n;
  p.epoch += elapsed * d;
}

/** The earliest time at which everything now maturing has matured. */
export function fullyMaturedAt(p: ProxyModel): number {
  if (p.maturingNew > 0n) return p.epoch + 2 * p.closeDelay;
  if (p.maturingOld > 0n) return p.epoch + p.closeDelay;
  return 0;
}

/** `charge` with an authorisation for `total` at `seqno`: accepted iff `total` is above what was charged
 * (the seqno gates nothing; the highest is recorded). The proceeds land in the proxy's pool, or, if the
 * proxy contract is closed, bounce and are put back. `short`: the charge did not take all the
 * authorisation allowed (the balance ran out, or the proceeds came back). */
export function modelCharge(
  c: ClientModel,
  p: ProxyModel,
  auth: { seqno: bigint; total: bigint },
): Refused | { taken: bigint; capped: boolean; bounced: boolean; short: boolean } {
  if (c.state === CLOSED) return refused(ExitCode.wrongState);
  if (auth.total <= c.charged) return refused(ExitCode.totalNotAbovePaid);
  const due = auth.total - c.charged;
  const taken = minOf(due, c.balance);
  c.charged += taken;
  c.balance -= taken;
  c.seqno = maxOf(c.seqno, auth.seqno);
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

/** `raise_terms`: stake and close delay, neither lower than now. */
export function modelRaiseTerms(
  c: ClientModel,
  stake: bigint,
  closeDelay: number,
  byOwner: boolean,
): Refused | null {
  if (!byOwner) return refused(ExitCode.notAllowed);
  if (c.state !== OPEN) return refused(ExitCode.wrongState);
  if (stake < c.stake || closeDelay < c.closeDelay || closeDelay > MAX_CLOSE_DELAY) {
    return refused(ExitCode.invalidParams);
  }
  c.stake = stake;
  c.closeDelay = closeDelay;
  return null;
}

export function modelRequestClose(c: ClientModel, now: number): Refused | null {
  if (c.state !== OPEN) return refused(ExitCode.wrongState);
  c.state = CLOSING;
  c.unlockAt = now + c.closeDelay;
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

/** `raise_close_delay` (by the owner). */
export function modelRaiseCloseDelay(p: ProxyModel, closeDelay: number, now: number): Refused | null {
  if (p.state !== OPEN) return refused(ExitCode.wrongState);
  if (closeDelay < p.closeDelay || closeDelay > MAX_CLOSE_DELAY) return refused(ExitCode.invalidParams);
  modelMature(p, now);
  p.closeDelay = closeDelay;
  return null;
}

export function modelProxyRequestClose(p: ProxyModel, now: number): Refused | null {
  if (p.state !== OPEN) return refused(ExitCode.wrongState);
  p.state = CLOSING;
  p.unlockAt = now + p.closeDelay;
  return null;
}

/** `withdraw_commission`: what has matured by `now` goes to the owner. */
export function modelWithdrawCommission(p: ProxyModel, now: number): bigint {
  modelMature(p, now);
  const paid = p.commission;
  p.commission = 0n;
  return paid;
}

/** The proxy's `close`: after the unlock, stake, pool and matured commission go to the owner; commission
 * still maturing stays (it backs payouts, and withdraw_commission pays it once matured). */
export function modelProxyClose(p: ProxyModel, now: number): Refused | { paid: bigint } {
  if (p.state !== CLOSING) return refused(ExitCode.wrongState);
  if (now < p.unlockAt) return refused(ExitCode.tooEarly);
  modelMature(p, now);
  const paid = p.stake + p.pool + p.commission;
  p.state = CLOSED;
  p.stake = 0n;
  p.pool = 0n;
  p.commission = 0n;
  return { paid };
}

/** First hop of a payout: the worker contract takes each signed total that is above what it paid (at least
 * one must be; the seqno gates nothing, the highest is recorded) and forwards the differences. */
export function modelPayoutAtWorker(
  w: WorkerModel,
  payout: { seqno: bigint; workerTotal: bigint; proxyTotal: bigint },
): Refused | { dw: bigint; dp: bigint } {
  const worker = maxOf(payout.workerTotal, w.paidWorker);
  const proxy = maxOf(payout.proxyTotal, w.paidProxy);
  if (worker + proxy <= w.paidWorker + w.paidProxy) return refused(ExitCode.totalNotAbovePaid);
  const dw = worker - w.paidWorker;
  const dp = proxy - w.paidProxy;
  w.deployed = true;
  w.seqno = maxOf(w.seqno, payout.seqno);
  w.paidWorker = worker;
  w.paidProxy = proxy;
  return { dw, dp };
}

/** Second hop: the proxy pays from the pool, then maturing commission (the older first), then the stake,
 * and credits `dp` as new maturing commission; or it refuses (changing nothing) and the worker rolls back.
 * Returns false if refused, else how much maturing commission it took to pay. */
export function modelPayoutAtProxy(
  w: WorkerModel,
  p: ProxyModel,
  dw: bigint,
  dp: bigint,
  now: number,
): false | { fromMaturing: bigint } {
  const next = { ...p };
  modelMature(next, now);
  const due = dw + dp;
  if (due > next.pool + next.maturingOld + next.maturingNew + next.stake) {
    w.paidWorker -= dw;
    w.paidProxy -= dp;
    return false;
  }
  let rest = due;
  const fromPool = minOf(rest, next.pool);
  next.pool -= fromPool;
  rest -= fromPool;
  const fromOld = minOf(rest, next.maturingOld);
  next.maturingOld -= fromOld;
  rest -= fromOld;
  const fromNew = minOf(rest, next.maturingNew);
  next.maturingNew -= fromNew;
  rest -= fromNew;
  next.stake -= rest;
  next.maturingNew += dp;
  Object.assign(p, next);
  return { fromMaturing: fromOld + fromNew };
}

// ---------------------------------------------------------------------------------------------------------
// Bounds for the dishonest actors (property.test.ts): what may leave the proxy contract, and when.

/** What the proxy contract can pay workers from at `now` (pool, commission not yet matured, stake): a
 * payout is paid iff its due is at most this. */
export function modelAvailable(p: ProxyModel, now: number): bigint {
  const q = { ...p };
  modelMature(q, now);
  return q.pool + q.maturingOld + q.maturingNew + q.stake;
}

/** Cumulative flows through the proxy contract since the start. */
export interface ProxyFlows {
  /** Into pool or stake: charges' proceeds, stake added, `charge_proceeds` sent by strangers. */
  inflow: bigint;
  /** Worker pay to the honest workers' owners. */
  honestPaid: bigint;
  /** Worker pay to the sybil worker (a worker contract the proxy owner controls). */
  sybilPaid: bigint;
  /** Stake and pool paid to the proxy owner by `close`. */
  closePaid: bigint;
}

/** The proxy contract at one moment T: its pool and stake then, and the flows so far. */
export interface ProxySnapshot {
  at: number;
  poolAndStake: bigint;
  flows: ProxyFlows;
}

export function proxySnapshot(p: ProxyModel, at: number, flows: ProxyFlows): ProxySnapshot {
  return { at, poolAndStake: p.pool + p.stake, flows: { ...flows } };
}

/**
 * Guarantee 2 of docs/payments.md, as a number: within D of T, what was in the pool or the stake at T
 * leaves only as worker pay (or through a close, which needs a public request_close D before), whatever the
 * proxy key signs into commission (commission credited at or after T matures strictly after T + D). So at
 * any `now` ≤ T + D the contract can pay at least this much.
 */
export function availableFloor(s: ProxySnapshot, flows: ProxyFlows): bigint {
  return (
    s.poolAndStake +
    (flows.inflow - s.flows.inflow) -
    (flows.honestPaid - s.flows.honestPaid) -
    (flows.sybilPaid - s.flows.sybilPaid) -
    (flows.closePaid - s.flows.closePaid)
  );
}

/** Proxy credits (the proxy part of every payout the proxy contract paid), by time: commission matures at
 * least D after it was credited, so the owner may never have received more than what was credited D ago. */
export class CommissionCredits {
  private readonly credits: { at: number; amount: bigint }[] = [];

  credit(at: number, amount: bigint): void {
    if (amount > 0n) this.credits.push({ at, amount });
  }

  /** Everything credited at or before `t`. */
  creditedBy(t: number): bigint {
    return this.credits.filter((c) => c.at <= t).reduce((s, c) => s + c.amount, 0n);
  }
}

/** 2^64 − 1: the largest seqno a signed payload can carry. */
export const MAX_SEQNO = (1n << 64n) - 1n;
