import type { KeyObject } from 'node:crypto';
import type { Address } from '@ton/core';
import { PaymentRefusedError, UsageDisputedError } from '../errors.ts';
import type { TokenUsage } from '../protocol/inference.ts';
import { type Receipt, verifyReceiptSignature } from '../protocol/receipt.ts';
import type { Ledger } from './ledger.ts';
import type { PaymentParams } from './payments-chain.ts';
import { boundUsage, requestCost, sameUsage, worstCaseCost } from './pricing.ts';
import { clientAuthHash, signHash, verifyClientAuth } from './signed-messages.ts';
import type { UsageCost } from './usage-cost.ts';

/** What the received part of a reply can account for (see OutputObserver). */
export interface ObservedOutput {
  completionTokens(choices: number): number;
}

/**
 * What the client read of a sealed reply, which no proxy can: a bill is checked against its plaintext, and
 * an over-claim is disputed with the proof.
 */
export interface ReplyRead {
  /** The most completion tokens the plaintext accounts for, its sealed `end` (from the bill) included. */
  completionTokens(choices: number, end: string | undefined): number;
  /** The proof for a dispute: the reply's secret, its sealed parts as they came, `end` last; null if not kept. */
  proof(end: string | undefined): Buffer[] | null;
}

/**
 * What the client will pay a request for at most: what it agreed before it ran (the coefficient it accepts,
 * n × max_tokens), the call it sent, the worker it was told serves it, and what it received.
 */
export interface RequestBound {
  maxCoefficient: number;
  /** Completion tokens allowed in all (n × max_tokens). */
  maxCompletionTokens: number;
  choices: number;
  /** Bytes of the call as sent (its OPEN header); 0 until it is sent. */
  callBytes: number;
  /** The coefficient of the worker we sent the request's body to; null until then. */
  coefficient: number | null;
  /** A finished reply's bill must carry the worker's receipt (false only by the client's explicit choice). */
  receiptRequired?: boolean;
  /** That worker's Ed25519 key (hex): a bill's receipt must be signed by it. */
  worker?: string;
  observed: ObservedOutput;
  /** A sealed reply as the client opened it (the bound the proxy cannot see). */
  read?: ReplyRead;
}

export interface Bill {
  requestId: string;
  paramsVersion: number;
  coefficient: number;
  usage: TokenUsage;
  cost: UsageCost;
  /** The worker's signed receipt (a finished reply's bill carries one). */
  receipt?: Receipt;
  /** A sealed reply's end, as the worker sent it. */
  end?: string;
}

export interface SignedAuth {
  requestIds: string[];
  seqno: bigint;
  total: bigint;
  signature: Buffer;
}

interface AuthRecord {
  seqno: string;
  total: string;
  signature: string;
}

/**
 * The client's side of paying: checks each bill against the request it asked for and the root's prices,
 * then signs a cumulative authorisation for it and writes it to the ledger before handing it over.
 * Bills that arrive together are covered by one signature.
 */
export class Payer {
  private contract: Address | null = null;
  /** The newest authorisation the proxy holds: the base the next one adds to. */
  private base = { seqno: 0n, total: 0n };
  /** The newest we ever signed for this contract, so no seqno is used twice. */
  private lastSignedSeqno = 0n;
  private readonly bounds = new Map<string, RequestBound>();
  private queue: { bill: Bill; resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushing: Promise<void> | null = null;
  /** The root's params before the newest: a proxy may bill with them until it has seen the change. */
  private previous: PaymentParams | null = null;

  constructor(
    private readonly key: KeyObject,
    private readonly publicKey: KeyObject,
    private readonly ledger: Ledger,
    private readonly globalId: number,
    private current: PaymentParams,
    /** Sends a signed authorisation to the proxy. */
    private readonly send: (auth: SignedAuth) => void,
    /** Reads the root's params from the chain again (a bill names a newer version than we know). */
    private readonly refreshParams: () => Promise<PaymentParams> = async () => this.current,
  ) {}

  /** The root's params as we last read them. */
  get prices(): PaymentParams {
    return this.current;
  }

  /** Follows a change of the root's params, keeping the previous ones for bills already under way. */
  setParams(p: PaymentParams): void {
    if (p.paramsVersion === this.current.paramsVersion) return;
    if (p.paramsVersion > this.current.paramsVersion) this.previous = this.current;
    this.current = p;
  }

  /** The params a bill is priced with, read again from the chain if it names a newer version. */
  private async paramsFor(version: number): Promise<PaymentParams> {
    if (version > this.current.paramsVersion) this.setParams(await this.refreshParams());
    if (version === this.current.paramsVersion) return this.current;
    if (version === this.previous?.paramsVersion) return this.previous;
    throw new PaymentRefusedError(
      `bill priced with params version ${version}, but the root's are version ${this.current.paramsVersion}`,
      'unknown_params',
    );
  }

  get account(): Address | null {
    return this.contract;
  }

  get authorisedTotal(): bigint {
    return this.base.total;
  }

  /**
   * Adopts the proxy's view of our account after (re)connecting. Its newest authorisation must be one we
   * signed; whatever we signed after it never reached the proxy's ledger, so it is void and we continue
   * from what the proxy holds (always with a fresh seqno).
   */
  resume(
    contract: Address,
    auth: { seqno: bigint; total: bigint; signature: Buffer } | null,
    /** What the contract has paid out, as we read it from the chain ourselves (never the proxy's word). */
    charged: bigint,
  ): void {
    this.contract = contract;
    const stored = this.ledger.get<AuthRecord>(recordKey(contract));
    this.lastSignedSeqno = stored ? BigInt(stored.seqno) : 0n;
    if (auth) {
      const signed = { globalId: this.globalId, contract, seqno: auth.seqno, total: auth.total };
      if (!verifyClientAuth(signed, auth.signature, this.publicKey)) {
        throw new PaymentRefusedError(
          'the proxy holds an authorisation we did not sign',
          'forged_authorisation',
        );
      }
      this.base = { seqno: auth.seqno, total: auth.total };
      if (auth.seqno > this.lastSignedSeqno) this.lastSignedSeqno = auth.seqno;
    } else {
      this.base = { seqno: 0n, total: 0n };
    }
    // A total at or below what the contract paid takes nothing: continue above it, as the proxy does.
    if (charged > this.base.total) this.base = { seqno: this.base.seqno, total: charged };
  }

  /**
   * We sent the request's body to this worker (the last one offered): its coefficient is the only one a
   * bill may name, and its reply, when sealed, is read through `read`.
   */
  served(requestId: string, coefficient: number, worker?: string, read?: ReplyRead): void {
    const b = this.bounds.get(requestId);
    if (!b) return;
    b.coefficient = coefficient;
    if (worker !== undefined) b.worker = worker;
    if (read) b.read = read;
    else delete b.read;
  }

  expect(requestId: string, bound: RequestBound): void {
    this.bounds.set(requestId, bound);
  }

  forget(requestId: string): void {
    this.bounds.delete(requestId);
  }

  /** Checks a bill; resolves once it is covered by a signed, durably written authorisation that was sent. */
  async pay(bill: Bill): Promise<void> {
    const prices =
      bill.paramsVersion === this.current.paramsVersion
        ? this.current
        : await this.paramsFor(bill.paramsVersion);
    this.check(bill, prices);
    return new Promise((resolve, reject) => {
      this.queue.push({ bill, resolve, reject });
      this.flushing ??= this.drain();
    });
  }

  /**
   * A bill is signed only if it is no more than what we can bound ourselves: the coefficient of the worker
   * we were told serves it, prompt tokens within the call we sent, completion tokens within what we
   * received (and n × max_tokens), priced with the root's params.
   */
  private check(bill: Bill, prices: PaymentParams): void {
    const bound = this.bounds.get(bill.requestId);
    if (!bound)
      throw new PaymentRefusedError(`bill for an unknown request ${bill.requestId}`, 'unknown_bill');
    if (!this.contract) throw new PaymentRefusedError('no account with the proxy yet', 'no_account');
    if (bill.coefficient > bound.maxCoefficient) {
      throw new PaymentRefusedError(
        `billed at coefficient ${bill.coefficient}, above the accepted ${bound.maxCoefficient}`,
        'coefficient_too_high',
      );
    }
    if (bill.coefficient !== bound.coefficient) {
      throw new PaymentRefusedError(
        `billed at coefficient ${bill.coefficient}, but the worker we were told serves it asks ${bound.coefficient ?? 'nothing (none was named)'}`,
        'coefficient_mismatch',
      );
    }
    checkSigned(bill, bound);
    const observed = boundUsage(bill.usage, {
      callBytes: bound.callBytes,
      maxCompletionTokens: bound.maxCompletionTokens,
      observedCompletionTokens: bound.observed.completionTokens(bound.choices),
    });
    if (!sameUsage(observed, bill.usage)) {
      throw new PaymentRefusedError(
        `billed usage ${JSON.stringify(bill.usage)} is more than we sent and received (at most ${JSON.stringify(observed)})`,
        'usage_not_observed',
      );
    }
    const priced = requestCost(bill.usage, bill.coefficient, prices);
    const cap = worstCaseCost(
      bound.callBytes,
      bound.maxCompletionTokens,
      bound.maxCoefficient,
      prices,
    ).totalCost;
    const { prompt, completion, total } = bill.cost;
    if (
      total !== prompt + completion ||
      total > priced.totalCost ||
      total > cap ||
      prompt < 0n ||
      completion < 0n
    ) {
      throw new PaymentRefusedError(
        `bill of ${total} nanoton does not match the reported usage (${priced.totalCost}) within the request's bound (${cap})`,
        'wrong_bill',
      );
    }
    this.bounds.delete(bill.requestId); // one bill per request: a second one is refused as unknown
    if (bound.read) checkRead(bill, bound.read, bound.choices);
  }

  /**
   * Signs and writes one batch at a time: bills that arrive while a batch is being written form the next
   * batch (so under load many bills share one signature and one commit), and the base advances only once
   * a batch is durable, so a failed write never leaks into the next total.
   */
  private async drain(): Promise<void> {
    await Promise.resolve(); // let the bills of this tick join the batch
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      const contract = this.contract!;
      let total = this.base.total;
      for (const { bill } of batch) total += bill.cost.total;
      const seqno = this.lastSignedSeqno + 1n;
      this.lastSignedSeqno = seqno;
      const signature = signHash(
        clientAuthHash({ globalId: this.globalId, contract, seqno, total }),
        this.key,
      );
      try {
        await this.ledger.commit([
          [
            recordKey(contract),
            { seqno: seqno.toString(), total: total.toString(), signature: signature.toString('hex') },
          ],
        ]);
      } catch (err) {
        for (const q of batch) q.reject(err as Error);
        continue;
      }
      this.base = { seqno, total };
      this.send({ requestIds: batch.map((q) => q.bill.requestId), seqno, total, signature });
      for (const q of batch) q.resolve();
    }
    this.flushing = null;
  }
}

/**
 * A sealed reply's bill, within what the proxy can see, must also be within what the client read: the
 * worker's claim beyond its plaintext is disputed (the proxy and the client bound the envelope alike, so
 * an honest proxy bills no more; only the worker can have padded its reply).
 */
function checkRead(bill: Bill, read: ReplyRead, choices: number): void {
  const counted = read.completionTokens(choices, bill.end);
  if (bill.usage.completionTokens <= counted) return;
  const why = `the worker claims ${bill.usage.completionTokens} completion tokens, but its reply accounts for ${counted}`;
  const proof = read.proof(bill.end);
  if (!proof) throw new PaymentRefusedError(`${why} (too long a reply to prove it)`, 'usage_not_read');
  throw new UsageDisputedError(why, proof);
}

function recordKey(contract: Address): string {
  return `auth/${contract.toRawString()}`;
}

/**
 * A bill must not exceed what the serving worker signed: a finished reply's bill carries the worker's
 * receipt (signed by the worker we sent the body to, for this request) and bills at most its usage. A bill
 * without one is for a reply cut short, which bills delivered tokens only, never the prompt.
 */
function checkSigned(bill: Bill, bound: RequestBound): void {
  const r = bill.receipt;
  if (!r) {
    if (bill.usage.promptTokens > 0 && bound.receiptRequired !== false) {
      throw new PaymentRefusedError(
        "a bill for prompt tokens without the worker's receipt",
        'receipt_missing',
      );
    }
    return;
  }
  if (r.requestId !== bill.requestId || bound.worker === undefined || r.worker !== bound.worker) {
    throw new PaymentRefusedError(
      "the bill's receipt is not from the worker we sent the request to",
      'receipt_mismatch',
    );
  }
  if (!verifyReceiptSignature(r, bound.worker)) {
    throw new PaymentRefusedError("the bill's receipt is not signed by its worker", 'receipt_mismatch');
  }
  const u = bill.usage;
  const s = r.usage;
  if (
    u.promptTokens > s.promptTokens ||
    u.cachedTokens > s.cachedTokens ||
    u.completionTokens > s.completionTokens ||
    u.reasoningTokens > s.reasoningTokens
  ) {
    throw new PaymentRefusedError(
      `billed usage ${JSON.stringify(u)} is more than the worker signed (${JSON.stringify(s)})`,
      'usage_not_signed',
    );
  }
}
