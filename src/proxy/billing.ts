import type { KeyObject } from 'node:crypto';
import { createPublicKey } from 'node:crypto';
import { Address } from '@ton/core';
import { rawPublicKeyFromHex, rawPublicKeyHex } from '../attest/identity.ts';
import { ConfigError } from '../config/config.ts';
import {
  BadGatewayError,
  BadRequestError,
  type CocoonError,
  PaymentRefusedError,
  PaymentRequiredError,
} from '../errors.ts';
import type { Session } from '../net/session.ts';
import type { Stream } from '../net/stream.ts';
import type { Logger } from '../ops/log.ts';
import { type AuthMessage, ClientAccount, type CreditTerms, type StoredAuth } from '../pay/client-account.ts';
import type { Ledger } from '../pay/ledger.ts';
import type { PaymentsChain } from '../pay/payments-chain.ts';
import { capCost, type RequestCost, requestCost, worstCaseCost } from '../pay/pricing.ts';
import { WorkerAccount, type WorkerAccountRecord } from '../pay/worker-account.ts';
import { type InferenceRequest, maxCompletionTokens, type TokenUsage } from '../protocol/inference.ts';
import type { ControlMessage } from '../protocol/messages.ts';
import type { Receipt } from '../protocol/receipt.ts';
import { type DisputeTerms, judgeDispute, type Verdict } from './dispute.ts';

/** What a reservation is made from: the call's bounds, not its body. */
type ReservedCall = Pick<InferenceRequest, 'maxTokens' | 'n' | 'maxCoefficient'>;

export interface BillingOptions {
  ledger: Ledger;
  chain: PaymentsChain;
  /** The proxy's own contract, which client and worker contracts pay into and draw from. */
  proxyContract: Address;
  /** The proxy node's identity key: signs worker payouts. */
  key: KeyObject;
  log: Logger;
  /** Redeem a client's authorisations once this much is unredeemed (also capped at half its stake). */
  settleAmount: bigint;
  /** … or once the oldest unredeemed authorisation is this old. */
  settleIntervalMs: number;
  /** Sign new worker payouts this often (they cover everything accrued by then). */
  payoutIntervalMs: number;
  /** Re-read client contracts this often. */
  refreshIntervalMs: number;
  /** How long a client has to sign a bill. */
  billTimeoutMs: number;
  /** The wall clock (ms); tests pin it. */
  now?: () => number;
}

/** Chain reads at once when many accounts are refreshed (start-up, the periodic refresh). */
const REFRESH_CONCURRENCY = 8;

/** A charge that took nothing is retried after this, doubling, at most the cap. */
const SETTLE_BACKOFF_MS = 10_000;
const SETTLE_BACKOFF_MAX_MS = 3_600_000;

/**
 * The shortest client close delay under which everything a client signed is still redeemed after it asks
 * to close: the proxy notices within one refresh, settles at once, and the chain needs its time. Twice
 * the settlement interval and the refresh interval together keeps the close delay well above both.
 */
export function minimumCloseDelaySeconds(o: Pick<BillingOptions, 'settleIntervalMs' | 'refreshIntervalMs'>) {
  return Math.ceil((2 * (o.settleIntervalMs + o.refreshIntervalMs)) / 1000);
}

interface ClientRecord {
  owner: string;
  key: string;
  auth: { seqno: string; total: string; signature: string } | null;
}

/** One finished request to bill. */
export interface BillRequest {
  requestId: string;
  usage: TokenUsage;
  coefficient: number;
  reservation: bigint;
  worker: WorkerAccount;
  /** The worker's signed receipt: the client checks the bill against the usage it signed. */
  receipt?: unknown;
  /** A sealed reply's end, as the worker sent it: the client counts the whole reply before signing. */
  end?: string;
  /** A sealed reply: what the client may dispute the bill on, and what to do if it is right. */
  dispute?: DisputeTerms & { onUpheld: (why: string) => void };
}

interface OpenBill {
  key: string;
  account: ClientAccount;
  cost: RequestCost;
  worker: WorkerAccount;
  dispute: BillRequest['dispute'];
  /** A dispute was opened (one per bill). */
  disputed: boolean;
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** After this many bills a client left unsigned, it is refused until the proxy restarts. */
const MAX_UNPAID_BILLS = 3;

/**
 * The proxy's money desk: extends credit to clients against their on-chain stake, bills each finished
 * request, takes the client's signed authorisation and the worker's accrual into the ledger in one commit
 * before the reply is released, signs worker payouts in batches and redeems client authorisations on-chain
 * when an amount or time threshold is crossed.
 */
export class ProxyBilling {
  private readonly clients = new Map<string, ClientAccount>();
  private readonly clientSessions = new Map<ClientAccount, Session>();
  private readonly workers = new Map<string, WorkerAccount>();
  /** Every live session of each worker: one worker may hold several (a reconnect, a `cocoon worker check`). */
  private readonly workerSessions = new Map<WorkerAccount, Set<Session>>();
  /** Open bills, by account and request id (request ids are the client's: only unique per account). */
  private readonly bills = new Map<string, OpenBill>();
  private readonly unpaid = new Map<ClientAccount, number>();
  /** When each account's oldest unredeemed authorisation arrived. */
  private readonly unredeemedSince = new Map<ClientAccount, number>();
  /** Accounts whose last charge took nothing: not charged again before `until`. */
  private readonly backoff = new Map<ClientAccount, { failures: number; until: number }>();
  private readonly timers: NodeJS.Timeout[] = [];
  private settling = false;
  private readonly now: () => number;
  readonly totals = {
    billed: 0n,
    unpaid: 0n,
    settlements: 0,
    payoutsSigned: 0,
    /** Charges sent that took nothing (the contract refused them, or had nothing to give). */
    chargesFailed: 0,
    /** Refused payment messages and requests, by reason (`cocoon_payment_refusals_total`). */
    refusals: {} as Record<string, number>,
  };

  constructor(private readonly opts: BillingOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The account of a client contract, while the proxy keeps one (diagnostics and tests). */
  accountOf(contract: Address): ClientAccount | undefined {
    return this.clients.get(contract.toRawString());
  }

  /** The proxy contract clients pay into. */
  get proxyContractAddress(): Address {
    return this.opts.proxyContract;
  }

  /** Counts a refusal by its code, for /metrics and /jsonstats. */
  refused(code: string | null | undefined): void {
    const c = code ?? 'refused';
    this.totals.refusals[c] = (this.totals.refusals[c] ?? 0) + 1;
  }

  /** The minimum stake and close delay a client contract needs for credit now. */
  private terms(): CreditTerms {
    const p = this.opts.chain.prices();
    return {
      minStake: p.minClientStake,
      minCloseDelay: Math.max(p.clientCloseDelay, minimumCloseDelaySeconds(this.opts)),
    };
  }

  /**
   * Loads every account that holds an authorisation, so settlement continues even for clients that never
   * return. Refuses to start if the root's close delay is too short for the settlement settings: clients
   * could then close and leave with what they signed before the proxy redeems it.
   */
  async start(): Promise<void> {
    const { ledger, chain } = this.opts;
    const needed = minimumCloseDelaySeconds(this.opts);
    if (chain.prices().clientCloseDelay < needed) {
      throw new ConfigError(
        `the root's client close delay (${chain.prices().clientCloseDelay} s) is too short for this proxy's ` +
          `settlement (settleIntervalSeconds and the ${this.opts.refreshIntervalMs / 1000} s refresh need ` +
          `at least ${needed} s): lower settleIntervalSeconds or use a root with a longer close delay`,
      );
    }
    for (const [k, r] of ledger.entries<ClientRecord>('client/')) {
      if (!r.auth) continue; // an account that never signed holds nothing to settle
      const contract = Address.parseRaw(k.slice('client/'.length));
      const key = rawPublicKeyFromHex(r.key);
      const acct = new ClientAccount(contract, Address.parse(r.owner), key, chain.globalId, authOf(r.auth));
      acct.terms = this.terms();
      this.clients.set(contract.toRawString(), acct);
    }
    for (const [k, r] of ledger.entries<WorkerAccountRecord>('worker/')) {
      const contract = Address.parseRaw(k.slice('worker/'.length));
      this.workers.set(
        contract.toRawString(),
        WorkerAccount.fromRecord(contract, Address.parse(r.owner), chain.globalId, r),
      );
    }
    await this.refreshAll([...this.clients.values()]);
    for (const a of this.clients.values()) if (a.unredeemed > 0n) this.unredeemedSince.set(a, this.now());
    this.every(this.opts.payoutIntervalMs, () => this.signPayouts());
    this.every(1000, () => this.settleDue());
    this.every(this.opts.refreshIntervalMs, () => this.refreshTick());
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    for (const b of this.bills.values()) clearTimeout(b.timer);
    await this.opts.ledger.close();
  }

  private every(ms: number, fn: () => unknown): void {
    const t = setInterval(() => {
      Promise.resolve(fn()).catch((err) => this.opts.log.warn({ err: String(err) }, 'billing task failed'));
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  // ─── clients ───

  /** A client connected: find (or open) its account and tell it where it stands. */
  async attachClient(session: Session, owner: Address, clientKey: KeyObject): Promise<ClientAccount> {
    const { chain, proxyContract } = this.opts;
    const contract = chain.clientContract(owner, clientKey, proxyContract);
    let acct = this.clients.get(contract.toRawString());
    if (!acct) {
      // Kept in memory only: the ledger holds an account once it has signed something (a Hello is free).
      acct = new ClientAccount(contract, owner, clientKey, chain.globalId, null);
      acct.terms = this.terms();
      this.clients.set(contract.toRawString(), acct);
    }
    await this.refresh(acct);
    const detach = () => {
      if (this.clientSessions.get(acct) !== session) return;
      this.clientSessions.delete(acct);
      if (!acct.auth && acct.inFlight.size === 0) this.clients.delete(acct.contract.toRawString());
    };
    this.clientSessions.set(acct, session);
    if (session.closed)
      detach(); // gone while we read the chain
    else session.once('close', detach);
    this.sendAccount(acct, session);
    return acct;
  }

  private sendAccount(acct: ClientAccount, session: Session): void {
    const c = acct.chain;
    session.sendControl({
      type: 'pay.account',
      contract: acct.contract.toString(),
      auth: acct.auth
        ? {
            seqno: acct.auth.seqno.toString(),
            total: acct.auth.total.toString(),
            signature: acct.auth.signature.toString('hex'),
          }
        : null,
      balance: c.balance.toString(),
      stake: c.stake.toString(),
      charged: c.charged.toString(),
      state: c.state,
      deployed: c.deployed,
    });
  }

  /**
   * Admits a request of this client: its id must not be in use (its bill would be confused with the
   * other's), and the worst case is reserved from the client's credit before dispatch (402 if it can't).
   * Every admitted request is `finish`ed, whatever happens to it.
   */
  admit(acct: ClientAccount, requestId: string, request: ReservedCall, callBytes: number): bigint {
    if (acct.inFlight.has(requestId) || this.bills.has(billKey(acct, requestId))) {
      throw new BadRequestError(
        `Request id ${requestId} is already in use by another request of yours.`,
        null,
        'duplicate_request_id',
      );
    }
    const amount = this.reserve(acct, request, callBytes);
    acct.inFlight.add(requestId);
    return amount;
  }

  finish(acct: ClientAccount, requestId: string, reservation: bigint): void {
    acct.inFlight.delete(requestId);
    if (reservation > 0n) acct.release(reservation);
  }

  private reserve(acct: ClientAccount, request: ReservedCall, callBytes: number): bigint {
    if ((this.unpaid.get(acct) ?? 0) >= MAX_UNPAID_BILLS) {
      throw new PaymentRequiredError(
        'This client left several bills unsigned; the proxy serves it no more.',
        'unpaid_bills',
      );
    }
    const amount = worstCaseCost(
      callBytes,
      maxCompletionTokens(request),
      request.maxCoefficient,
      this.opts.chain.prices(),
    ).totalCost;
    acct.reserve(amount);
    return amount;
  }

  /**
   * Bills a finished request and waits until the client's authorisation covering it and the worker's
   * accrual are both in the ledger. Rejects if the client refuses or does not sign in time, or if it
   * shows, disputing, that the worker claimed more than the reply carries.
   */
  bill(acct: ClientAccount, r: BillRequest): Promise<RequestCost> {
    const session = this.clientSessions.get(acct);
    if (!session)
      return Promise.reject(new PaymentRefusedError('client disconnected before paying', 'unpaid_bill'));
    const prices = this.opts.chain.prices();
    const cost = capCost(requestCost(r.usage, r.coefficient, prices), r.reservation);
    const key = billKey(acct, r.requestId);
    acct.addBill(r.requestId, cost.totalCost);
    this.totals.billed += cost.totalCost;
    return new Promise<RequestCost>((resolve, reject) => {
      const timer = this.billClock(key, `no authorisation within ${this.opts.billTimeoutMs} ms`);
      this.bills.set(key, {
        key,
        account: acct,
        cost,
        worker: r.worker,
        dispute: r.dispute,
        disputed: false,
        resolve: () => resolve(cost),
        reject,
        timer,
      });
      session.sendControl({
        type: 'pay.bill',
        requestId: r.requestId,
        paramsVersion: prices.paramsVersion,
        coefficient: r.coefficient,
        usage: r.usage,
        ...(r.receipt !== undefined ? { receipt: r.receipt as Receipt } : {}),
        ...(r.end !== undefined ? { end: r.end } : {}),
        cost: {
          prompt: cost.promptCost.toString(),
          completion: cost.completionCost.toString(),
          total: cost.totalCost.toString(),
        },
      });
    });
  }

  /** A bill left unsigned this long is unpaid. */
  private billClock(key: string, reason: string): NodeJS.Timeout {
    return setTimeout(() => this.unpaidBill(key, reason), this.opts.billTimeoutMs);
  }

  /**
   * A client disputes its bill for a sealed reply, its proof on `stream` (src/proxy/dispute.ts). Only an
   * open bill of its own with dispute terms, once; the proof must arrive within the bill's time, counted
   * again from now. Upheld: nothing is charged, the worker is not paid and is cut off, and the request
   * fails with `usage_disputed`. Rejected: the bill is unpaid, as when a client refuses one.
   */
  async dispute(acct: ClientAccount, requestId: string, stream: Stream): Promise<void> {
    const key = billKey(acct, requestId);
    const b = this.bills.get(key);
    if (!b?.dispute || b.disputed) {
      this.refused('dispute_refused');
      stream.reset(
        new PaymentRefusedError(`No bill of yours for ${requestId} can be disputed.`, 'dispute_refused'),
      );
      return;
    }
    b.disputed = true;
    clearTimeout(b.timer);
    b.timer = this.billClock(key, `no dispute proof within ${this.opts.billTimeoutMs} ms`);
    let verdict: Verdict;
    try {
      verdict = await judgeDispute(stream, b.dispute);
    } catch (err) {
      verdict = { upheld: false, reason: (err as Error).message };
    }
    if (this.bills.get(key) !== b) {
      stream.reset(new PaymentRefusedError('The bill was closed before the proof was in.', 'dispute_late'));
      return;
    }
    if (!verdict.upheld) {
      this.refused('dispute_rejected');
      stream.reset(new PaymentRefusedError(`Dispute rejected: ${verdict.reason}.`, 'dispute_rejected'));
      this.unpaidBill(key, `dispute rejected: ${verdict.reason}`);
      return;
    }
    this.bills.delete(key);
    clearTimeout(b.timer);
    acct.dropBill(requestId);
    this.totals.billed -= b.cost.totalCost;
    this.refused('dispute_upheld');
    const why = `claimed ${b.dispute.billed} completion tokens; its reply accounts for ${verdict.counted}`;
    this.opts.log.warn({ requestId, client: acct.contract.toString(), why }, 'dispute upheld');
    b.dispute.onUpheld(why);
    stream.end({ upheld: true, counted: verdict.counted });
    b.reject(
      new BadGatewayError(
        `The worker ${why}. Nothing is charged for this request, and the worker is cut off.`,
        'usage_disputed',
      ),
    );
  }

  /** A control message from a client session. A bad authorisation is the client's protocol violation. */
  async onClientControl(acct: ClientAccount, session: Session, msg: ControlMessage): Promise<void> {
    if (msg.type === 'pay.reject') {
      // Only this client's own bill: a request id learnt elsewhere cannot fail another client's request.
      this.unpaidBill(billKey(acct, msg.requestId), `client refused the bill: ${msg.reason}`);
      return;
    }
    if (msg.type !== 'pay.auth') return;
    const auth: AuthMessage = msg;
    let stored: StoredAuth;
    try {
      stored = acct.checkAuth(auth);
    } catch (err) {
      const e = err as CocoonError;
      this.refused(e.code);
      for (const id of auth.requestIds) this.unpaidBill(billKey(acct, id), e.message);
      session.fail(e);
      return;
    }
    acct.applyAuth(auth, stored);
    if (!this.unredeemedSince.has(acct)) this.unredeemedSince.set(acct, this.now());
    const settled: OpenBill[] = [];
    const touched = new Set<WorkerAccount>();
    for (const id of auth.requestIds) {
      const key = billKey(acct, id);
      const b = this.bills.get(key);
      if (!b) continue;
      this.bills.delete(key);
      clearTimeout(b.timer);
      b.worker.accrue(b.cost.workerPart, b.cost.proxyPart);
      touched.add(b.worker);
      settled.push(b);
    }
    try {
      await this.opts.ledger.commit([
        [clientRecordKey(acct), clientRecord(acct)],
        ...[...touched].map((w) => [workerRecordKey(w), w.toRecord()] as const),
      ]);
    } catch (err) {
      for (const b of settled) b.reject(err as Error);
      return;
    }
    for (const b of settled) b.resolve();
  }

  /** The client will not pay: the worker is paid all the same (the proxy bears the loss). */
  private unpaidBill(key: string, reason: string): void {
    const b = this.bills.get(key);
    if (!b) return;
    const requestId = key.slice(key.indexOf(' ') + 1);
    this.bills.delete(key);
    clearTimeout(b.timer);
    b.account.dropBill(requestId);
    this.refused('unpaid_bill');
    b.worker.accrue(b.cost.workerPart, b.cost.proxyPart);
    this.totals.unpaid += b.cost.totalCost;
    this.unpaid.set(b.account, (this.unpaid.get(b.account) ?? 0) + 1);
    this.opts.log.warn({ requestId, client: b.account.contract.toString(), reason }, 'bill unpaid');
    // A failed commit is logged, never left unhandled (it would end the daemon); the caller still hears.
    this.opts.ledger
      .commit([[workerRecordKey(b.worker), b.worker.toRecord()]])
      .catch((err) => this.opts.log.error({ err: String(err) }, 'ledger commit of an unpaid bill failed'))
      .finally(() =>
        b.reject(new PaymentRefusedError(`Payment for this request failed: ${reason}.`, 'unpaid_bill')),
      );
  }

  // ─── workers ───

  /** A worker connected with its payout address: find (or open) its account, resend its newest payout. */
  attachWorker(session: Session, owner: Address): WorkerAccount {
    const { chain, proxyContract, key } = this.opts;
    const contract = chain.workerContract(owner, proxyContract, createPublicKey(key));
    let acct = this.workers.get(contract.toRawString());
    if (!acct) {
      acct = new WorkerAccount(contract, owner, chain.globalId);
      this.workers.set(contract.toRawString(), acct);
    }
    const sessions = this.workerSessions.get(acct) ?? new Set<Session>();
    this.workerSessions.set(acct, sessions.add(session));
    const a = acct;
    session.once('close', () => {
      sessions.delete(session);
      if (sessions.size === 0 && this.workerSessions.get(a) === sessions) this.workerSessions.delete(a);
    });
    if (acct.signed) this.sendPayout(acct, session);
    return acct;
  }

  private sendPayout(acct: WorkerAccount, session: Session): void {
    const s = acct.signed!;
    session.sendControl({
      type: 'pay.payout',
      contract: acct.contract.toString(),
      seqno: s.payload.seqno.toString(),
      workerTotal: s.payload.workerTotal.toString(),
      proxyTotal: s.payload.proxyTotal.toString(),
      signature: s.signature.toString('hex'),
    });
  }

  /** Signs a payout for every worker with new accruals; each is in the ledger before the worker sees it. */
  async signPayouts(): Promise<void> {
    const due = [...this.workers.values()].filter((w) => w.unsigned > 0n);
    if (due.length === 0) return;
    for (const w of due) w.signPayout(this.opts.key);
    this.totals.payoutsSigned += due.length;
    await this.opts.ledger.commit(due.map((w) => [workerRecordKey(w), w.toRecord()] as const));
    for (const w of due) {
      for (const s of this.workerSessions.get(w) ?? []) if (!s.closed) this.sendPayout(w, s);
    }
  }

  // ─── settlement ───

  private async refresh(acct: ClientAccount): Promise<void> {
    acct.chain = await this.opts.chain.clientState(acct.contract);
    if (acct.unredeemed === 0n) this.unredeemedSince.delete(acct);
  }

  /** Re-reads many accounts, a few chain reads at a time. */
  private async refreshAll(accounts: ClientAccount[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < accounts.length) {
        const a = accounts[next++]!;
        await this.refresh(a).catch((err) =>
          this.opts.log.warn(
            { client: a.contract.toString(), err: String(err) },
            'client contract unreadable',
          ),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(REFRESH_CONCURRENCY, accounts.length) }, worker));
  }

  /**
   * Follows the root's params (prices, minimum stake, close delay) and re-reads every account that is
   * connected or holds something unredeemed, connected or not: a client that asks to close and goes away
   * is noticed within one refresh, and settled at once.
   */
  private async refreshTick(): Promise<void> {
    await this.opts.chain.refreshPrices();
    const terms = this.terms();
    for (const a of this.clients.values()) a.terms = terms;
    await this.refreshAll(
      [...this.clients.values()].filter((a) => a.unredeemed > 0n || this.clientSessions.has(a)),
    );
  }

  /** Is an account due for settlement: something unredeemed, past a threshold or closing, not backing off? */
  private isDue(a: ClientAccount, now: number, force: boolean): boolean {
    const u = a.unredeemed;
    if (u === 0n || !a.auth) return false;
    if ((this.backoff.get(a)?.until ?? 0) > now) return false;
    if (force || a.chain.state !== 0) return true;
    const half = a.chain.stake / 2n;
    const threshold = half > 0n && half < this.opts.settleAmount ? half : this.opts.settleAmount;
    return u >= threshold || now - (this.unredeemedSince.get(a) ?? now) >= this.opts.settleIntervalMs;
  }

  /**
   * Redeems every due account (past its amount or time threshold, or closing), in as few transfers as the
   * wallet allows. Gas is spent only on charges the contract will take, as the chain shows it just before:
   * none for a closed or empty contract, or one that has already paid what was signed. A charge that took
   * nothing anyway is retried only after a back-off that doubles.
   */
  async settleDue(force = false): Promise<number> {
    if (this.settling) return 0;
    this.settling = true;
    try {
      const now = this.now();
      const candidates = [...this.clients.values()].filter((a) => this.isDue(a, now, force));
      if (candidates.length === 0) return 0;
      await this.refreshAll(candidates);
      const due = candidates.filter(canTakeCharge);
      if (due.length === 0) return 0;
      const before = new Map(due.map((a) => [a, a.chain.charged]));
      try {
        await this.opts.chain.redeemClientAuths(due.map((a) => ({ contract: a.contract, auth: a.auth! })));
      } finally {
        await this.refreshAll(due);
      }
      this.totals.settlements++;
      for (const a of due) {
        if (a.chain.charged > before.get(a)!) this.backoff.delete(a);
        else this.backOff(a, now);
      }
      this.opts.log.info({ clients: due.length }, 'settled client authorisations on-chain');
      return due.length;
    } finally {
      this.settling = false;
    }
  }

  private backOff(a: ClientAccount, now: number): void {
    const failures = (this.backoff.get(a)?.failures ?? 0) + 1;
    const delay = Math.min(SETTLE_BACKOFF_MS * 2 ** (failures - 1), SETTLE_BACKOFF_MAX_MS);
    this.backoff.set(a, { failures, until: now + delay });
    this.totals.chargesFailed++;
    this.opts.log.warn(
      { client: a.contract.toString(), failures, retryInMs: delay },
      'charge took nothing; backing off',
    );
  }

  /** A client contract as the chain shows it now. */
  clientBalance(contract: Address) {
    return this.opts.chain.clientState(contract);
  }

  /** Authorised by clients and not yet redeemed on-chain, over all clients. */
  unredeemed(): bigint {
    let sum = 0n;
    for (const a of this.clients.values()) sum += a.unredeemed;
    return sum;
  }

  stats() {
    return {
      clients: this.clients.size,
      workers: this.workers.size,
      openBills: this.bills.size,
      billedNano: this.totals.billed.toString(),
      unpaidNano: this.totals.unpaid.toString(),
      settlements: this.totals.settlements,
      payoutsSigned: this.totals.payoutsSigned,
      chargesFailed: this.totals.chargesFailed,
      refusals: { ...this.totals.refusals },
      unredeemedNano: this.unredeemed().toString(),
    };
  }
}

/** Would a charge of the newest authorisation take something, as the chain shows the contract now? */
function canTakeCharge(a: ClientAccount): boolean {
  const c = a.chain;
  return a.auth !== null && c.deployed && c.state !== 2 && c.balance > 0n && a.auth.total > c.charged;
}

function billKey(a: ClientAccount, requestId: string): string {
  return `${a.contract.toRawString()} ${requestId}`;
}

function clientRecordKey(a: ClientAccount): string {
  return `client/${a.contract.toRawString()}`;
}

function workerRecordKey(w: WorkerAccount): string {
  return `worker/${w.contract.toRawString()}`;
}

function clientRecord(a: ClientAccount): ClientRecord {
  return {
    owner: a.owner.toString(),
    key: rawPublicKeyHex(a.key),
    auth: a.auth
      ? {
          seqno: a.auth.seqno.toString(),
          total: a.auth.total.toString(),
          signature: a.auth.signature.toString('hex'),
        }
      : null,
  };
}

function authOf(r: ClientRecord['auth']): StoredAuth | null {
  return r
    ? { seqno: BigInt(r.seqno), total: BigInt(r.total), signature: Buffer.from(r.signature, 'hex') }
    : null;
}
