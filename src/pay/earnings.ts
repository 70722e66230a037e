import type { KeyObject } from 'node:crypto';
import type { Address } from '@ton/core';
import { PaymentRefusedError } from '../errors.ts';
import type { Ledger } from './ledger.ts';
import { type Signed, verifyCell, type WorkerPayout, workerPayoutCell } from './signed-messages.ts';

interface PayoutMessage {
  seqno: bigint;
  workerTotal: bigint;
  proxyTotal: bigint;
  signature: Buffer;
}

interface PayoutRecord {
  seqno: string;
  workerTotal: string;
  proxyTotal: string;
  signature: string;
}

/**
 * A worker's earnings with one proxy: the newest payout the proxy signed for our worker contract, checked
 * and written to the ledger on arrival, so the worker can redeem it even after a crash of either side.
 */
export class Earnings {
  latest: Signed<WorkerPayout> | null = null;

  constructor(
    private readonly ledger: Ledger,
    /** The proxy's Ed25519 key: the one its RA-TLS certificate and its proxy contract carry. */
    private readonly proxyKey: KeyObject,
    readonly contract: Address,
    private readonly globalId: number,
  ) {
    const r = ledger.get<PayoutRecord>(recordKey(contract));
    if (r) {
      const payload: WorkerPayout = {
        globalId,
        contract,
        seqno: BigInt(r.seqno),
        workerTotal: BigInt(r.workerTotal),
        proxyTotal: BigInt(r.proxyTotal),
      };
      this.latest = { payload, cell: workerPayoutCell(payload), signature: Buffer.from(r.signature, 'hex') };
    }
  }

  get workerTotal(): bigint {
    return this.latest?.payload.workerTotal ?? 0n;
  }

  private writing: Promise<unknown> = Promise.resolve();

  /** Verifies a payout and makes it the newest if it is newer; resolves once it is durable. One at a time. */
  accept(p: PayoutMessage): Promise<boolean> {
    const next = this.writing.then(
      () => this.acceptNow(p),
      () => this.acceptNow(p),
    );
    this.writing = next;
    return next;
  }

  private async acceptNow(p: PayoutMessage): Promise<boolean> {
    const prev = this.latest?.payload;
    if (prev && p.seqno <= prev.seqno) return false; // an old one re-sent after a reconnect
    if (prev && (p.workerTotal < prev.workerTotal || p.proxyTotal < prev.proxyTotal)) {
      throw new PaymentRefusedError('payout totals went down', 'payout_decreased');
    }
    const payload: WorkerPayout = {
      globalId: this.globalId,
      contract: this.contract,
      seqno: p.seqno,
      workerTotal: p.workerTotal,
      proxyTotal: p.proxyTotal,
    };
    const cell = workerPayoutCell(payload);
    if (!verifyCell(cell, p.signature, this.proxyKey)) {
      throw new PaymentRefusedError(
        'payout signature is not the proxy’s for our worker contract',
        'bad_signature',
      );
    }
    await this.ledger.commit([
      [
        recordKey(this.contract),
        {
          seqno: p.seqno.toString(),
          workerTotal: p.workerTotal.toString(),
          proxyTotal: p.proxyTotal.toString(),
          signature: p.signature.toString('hex'),
        } satisfies PayoutRecord,
      ],
    ]);
    if (!this.latest || p.seqno > this.latest.payload.seqno)
      this.latest = { payload, cell, signature: p.signature };
    return true;
  }
}

function recordKey(contract: Address): string {
  return `payout/${contract.toRawString()}`;
}
