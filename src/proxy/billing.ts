import type { KeyObject } from 'node:crypto';
import { createPublicKey } from 'node:crypto';
import { Address } from '@ton/core';
import { rawPublicKeyFromHex, rawPublicKeyHex } from '../attest/identity.ts';
import { type CocoonError, PaymentRefusedError, PaymentRequiredError } from '../errors.ts';
import type { Session } from '../net/session.ts';
import type { Logger } from '../ops/log.ts';
import { type AuthMessage, ClientAccount, type StoredAuth } from '../pay/client-account.ts';
import type { Ledger } from '../pay/ledger.ts';
import type { PaymentsChain } from '../pay/payments-chain.ts';
import { capCost, type RequestCost, requestCost, worstCaseCost } from '../pay/pricing.ts';
import { WorkerAccount, type WorkerAccountRecord } from '../pay/worker-account.ts';
import { type InferenceRequest, maxCompletionTokens, type TokenUsage } from '../protocol/inference.ts';
import type { ControlMessage } from '../protocol/messages.ts';

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
}

interface ClientRecord {
  owner: string;
  key: string;
  auth: { seqno: string; total: string; signature: string } | null;
}

interface OpenBill {
  account: ClientAccount;
  cost: RequestCost;
  worker: WorkerAccount;
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
  private readonly workerSessions = new Map<WorkerAccount, Session>();
  private readonly bills = new Map<string, OpenBill>();
  private readonly unpaid = new Map<ClientAccount, number>();
  /** When each account's oldest unredeemed authorisation arrived. */
  private readonly unredeemedSince = new Map<ClientAccount, number>();
  private readonly timers: NodeJS.Timeout[] = [];
  private settling = false;
  readonly totals = { billed: 0n, unpaid: 0n, settlements: 0, payoutsSigned: 0 };

  constructor(private readonly opts: BillingOptions) {}

  /** Loads every account from the ledger, so settlement continues even for clients that never return. */
  async start(): Promise<void> {
    const { ledger, chain } = this.opts;
    for (const [k, r] of ledger.entries<ClientRecord>('client/')) {
      const contract = Address.parseRaw(k.slice('client/'.length));
      const key = rawPublicKeyFromHex(r.key);
      const acct = new ClientAccount(contract, Address.parse(r.owner), key, chain.globalId, authOf(r.auth));
      this.clients.set(contract.toRawString(), acct);
    }
    for (const [k, r] of ledger.entries<WorkerAccountRecord>('worker/')) {
      const contract = Address.parseRaw(k.slice('worker/'.length));
      this.workers.set(
        contract.toRawString(),
        WorkerAccount.fromRecord(contract, Address.parse(r.owner), chain.globalId, r),
      );
    }
    await Promise.all([...this.clients.values()].map((a) => this.refresh(a)));
    for (const a of this.clients.values()) if (a.unredeemed > 0n) this.unredeemedSince.set(a, Date.now());
    this.every(this.opts.payoutIntervalMs, () => this.signPayouts());
    this.every(1000, () => this.settleDue());
    this.every(this.opts.refreshIntervalMs, () => this.refreshConnected());
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
      acct = new ClientAccount(contract, owner, clientKey, chain.globalId, null);
      this.clients.set(contract.toRawString(), acct);
      await this.opts.ledger.commit([[clientRecordKey(acct), clientRecord(acct)]]);
    }
    await this.refresh(acct);
    this.clientSessions.set(acct, session);
    session.once('close', () => {
      if (this.clientSessions.get(acct) === session) this.clientSessions.delete(acct);
    });
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

  /** The worst case of a request, reserved from the client's credit before dispatch (402 if it can't). */
  reserve(acct: ClientAccount, request: InferenceRequest, headerBytes: number): bigint {
    if ((this.unpaid.get(acct) ?? 0) >= MAX_UNPAID_BILLS) {
      throw new PaymentRequiredError(
        'This client left several bills unsigned; the proxy serves it no more.',
        'unpaid_bills',
      );
    }
    const amount = worstCaseCost(
      headerBytes,
      maxCompletionTokens(request),
      request.maxCoefficient,
      this.opts.chain.prices(),
    ).totalCost;
    acct.reserve(amount);
    return amount;
  }

  /**
   * Bills a finished request and waits until the client's authorisation covering it and the worker's
   * accrual are both in the ledger. Rejects if the client refuses or does not sign in time.
   */
  bill(
    acct: ClientAccount,
    requestId: string,
    usage: TokenUsage,
    coefficient: number,
    reservation: bigint,
    worker: WorkerAccount,
  ): Promise<RequestCost> {
    const session = this.clientSessions.get(acct);
    if (!session)
      return Promise.reject(new PaymentRefusedError('client disconnected before paying', 'unpaid_bill'));
    const cost = capCost(requestCost(usage, coefficient, this.opts.chain.prices()), reservation);
    acct.addBill(requestId, cost.totalCost);
    this.totals.billed += cost.totalCost;
    return new Promise<RequestCost>((resolve, reject) => {
      const timer = setTimeout(
        () => this.unpaidBill(requestId, `no authorisation within ${this.opts.billTimeoutMs} ms`),
        this.opts.billTimeoutMs,
      );
      this.bills.set(requestId, { account: acct, cost, worker, resolve: () => resolve(cost), reject, timer });
      session.sendControl({
        type: 'pay.bill',
        requestId,
        coefficient,
        usage,
        cost: {
          prompt: cost.promptCost.toString(),
          completion: cost.completionCost.toString(),
          total: cost.totalCost.toString(),
        },
      });
    });
  }

  /** A control message from a client session. A bad authorisation is the client's protocol violation. */
  async onClientControl(acct: ClientAccount, session: Session, msg: ControlMessage): Promise<void> {
    if (msg.type === 'pay.reject') {
      this.unpaidBill(msg.requestId, `client refused the bill: ${msg.reason}`);
      return;
    }
    if (msg.type !== 'pay.auth') return;
    const auth: AuthMessage = msg;
    let stored: StoredAuth;
    try {
      stored = acct.checkAuth(auth);
    } catch (err) {
      for (const id of auth.requestIds) this.unpaidBill(id, (err as Error).message);
      session.close(err as CocoonError);
      return;
    }
    acct.applyAuth(auth, stored);
    if (!this.unredeemedSince.has(acct)) this.unredeemedSince.set(acct, Date.now());
    const settled: OpenBill[] = [];
    const touched = new Set<WorkerAccount>();
    for (const id of auth.requestIds) {
      const b = this.bills.get(id);
      if (!b) continue;
      this.bills.delete(id);
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
  private unpaidBill(requestId: string, reason: string): void {
    const b = this.bills.get(requestId);
    if (!b) return;
    this.bills.delete(requestId);
    clearTimeout(b.timer);
    b.account.dropBill(requestId);
    b.worker.accrue(b.cost.workerPart, b.cost.proxyPart);
    this.totals.unpaid += b.cost.totalCost;
    this.unpaid.set(b.account, (this.unpaid.get(b.account) ?? 0) + 1);
    this.opts.log.warn({ requestId, client: b.account.contract.toString(), reason }, 'bill unpaid');
    void this.opts.ledger
      .commit([[workerRecordKey(b.worker), b.worker.toRecord()]])
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
    this.workerSessions.set(acct, session);
    const a = acct;
    session.once('close', () => {
      if (this.workerSessions.get(a) === session) this.workerSessions.delete(a);
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
      const s = this.workerSessions.get(w);
      if (s && !s.closed) this.sendPayout(w, s);
    }
  }

  // ─── settlement ───

  private async refresh(acct: ClientAccount): Promise<void> {
    acct.chain = await this.opts.chain.clientState(acct.contract);
    if (acct.unredeemed === 0n) this.unredeemedSince.delete(acct);
  }

  private async refreshConnected(): Promise<void> {
    await Promise.all([...this.clientSessions.keys()].map((a) => this.refresh(a)));
  }

  /** Redeems, in one transfer, every account past its amount or time threshold (or closing). */
  async settleDue(force = false): Promise<number> {
    if (this.settling) return 0;
    const now = Date.now();
    const due = [...this.clients.values()].filter((a) => {
      const u = a.unredeemed;
      if (u === 0n || !a.auth) return false;
      if (force || a.chain.state !== 0) return true;
      const half = a.chain.stake / 2n;
      const threshold = half > 0n && half < this.opts.settleAmount ? half : this.opts.settleAmount;
      return u >= threshold || now - (this.unredeemedSince.get(a) ?? now) >= this.opts.settleIntervalMs;
    });
    if (due.length === 0) return 0;
    this.settling = true;
    try {
      await this.opts.chain.redeemClientAuths(due.map((a) => ({ contract: a.contract, auth: a.auth! })));
      this.totals.settlements++;
      await Promise.all(due.map((a) => this.refresh(a)));
      this.opts.log.info({ clients: due.length }, 'settled client authorisations on-chain');
    } finally {
      this.settling = false;
    }
    return due.length;
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
      unredeemedNano: this.unredeemed().toString(),
    };
  }
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
