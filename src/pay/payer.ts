import type { KeyObject } from 'node:crypto';
import type { Address } from '@ton/core';
import { PaymentRefusedError } from '../errors.ts';
import type { TokenUsage } from '../protocol/inference.ts';
import type { Ledger } from './ledger.ts';
import { type PriceList, requestCost, worstCaseCost } from './pricing.ts';
import { clientAuthHash, signHash, verifyClientAuth } from './signed-messages.ts';
import type { UsageCost } from './usage-cost.ts';

/** What the client agreed a request may cost at most, known before it runs. */
export interface RequestBound {
  maxCoefficient: number;
  /** Completion tokens allowed in all (n × max_tokens). */
  maxCompletionTokens: number;
  bodyBytes: number;
}

export interface Bill {
  requestId: string;
  coefficient: number;
  usage: TokenUsage;
  cost: UsageCost;
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

/** The call frame around the body (method, request id, normalized fields) is never this big. */
const CALL_OVERHEAD_BYTES = 1024;

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

  constructor(
    private readonly key: KeyObject,
    private readonly publicKey: KeyObject,
    private readonly ledger: Ledger,
    private readonly globalId: number,
    public prices: PriceList,
    /** Sends a signed authorisation to the proxy. */
    private readonly send: (auth: SignedAuth) => void,
  ) {}

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
  resume(contract: Address, auth: { seqno: bigint; total: bigint; signature: Buffer } | null): void {
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
  }

  expect(requestId: string, bound: RequestBound): void {
    this.bounds.set(requestId, bound);
  }

  forget(requestId: string): void {
    this.bounds.delete(requestId);
  }

  /** Checks a bill; resolves once it is covered by a signed, durably written authorisation that was sent. */
  pay(bill: Bill): Promise<void> {
    this.check(bill);
    return new Promise((resolve, reject) => {
      this.queue.push({ bill, resolve, reject });
      this.flushing ??= this.drain();
    });
  }

  private check(bill: Bill): void {
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
    const priced = requestCost(bill.usage, bill.coefficient, this.prices);
    const cap = worstCaseCost(
      bound.bodyBytes + CALL_OVERHEAD_BYTES,
      bound.maxCompletionTokens,
      bound.maxCoefficient,
      this.prices,
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

function recordKey(contract: Address): string {
  return `auth/${contract.toRawString()}`;
}
