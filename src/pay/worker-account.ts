import type { KeyObject } from 'node:crypto';
import type { Address } from '@ton/core';
import { type Signed, signWorkerPayout, type WorkerPayout, workerPayoutCell } from './signed-messages.ts';

/** The proxy's record of what it owes one worker contract: accrued per request, signed in batches. */
export interface WorkerAccountRecord {
  owner: string;
  accruedWorker: string;
  accruedProxy: string;
  signed: { seqno: string; workerTotal: string; proxyTotal: string; signature: string } | null;
}

/**
 * What the proxy owes one worker (its fee) and has earned through it (the commission), cumulative. A
 * payout is signed only over amounts already written to the ledger, and never below an earlier one, so
 * the worker can always redeem the newest signature it holds.
 */
export class WorkerAccount {
  accruedWorker = 0n;
  accruedProxy = 0n;
  signed: Signed<WorkerPayout> | null = null;

  constructor(
    readonly contract: Address,
    readonly owner: Address,
    readonly globalId: number,
  ) {}

  static fromRecord(
    contract: Address,
    owner: Address,
    globalId: number,
    r: WorkerAccountRecord,
  ): WorkerAccount {
    const a = new WorkerAccount(contract, owner, globalId);
    a.accruedWorker = BigInt(r.accruedWorker);
    a.accruedProxy = BigInt(r.accruedProxy);
    if (r.signed) {
      const payload: WorkerPayout = {
        globalId,
        contract,
        seqno: BigInt(r.signed.seqno),
        workerTotal: BigInt(r.signed.workerTotal),
        proxyTotal: BigInt(r.signed.proxyTotal),
      };
      a.signed = {
        payload,
        cell: workerPayoutCell(payload),
        signature: Buffer.from(r.signed.signature, 'hex'),
      };
    }
    return a;
  }

  toRecord(): WorkerAccountRecord {
    const s = this.signed;
    return {
      owner: this.owner.toString(),
      accruedWorker: this.accruedWorker.toString(),
      accruedProxy: this.accruedProxy.toString(),
      signed: s
        ? {
            seqno: s.payload.seqno.toString(),
            workerTotal: s.payload.workerTotal.toString(),
            proxyTotal: s.payload.proxyTotal.toString(),
            signature: s.signature.toString('hex'),
          }
        : null,
    };
  }

  accrue(workerPart: bigint, proxyPart: bigint): void {
    this.accruedWorker += workerPart;
    this.accruedProxy += proxyPart;
  }

  /** Accrued but not yet covered by a signed payout. */
  get unsigned(): bigint {
    const s = this.signed?.payload;
    return this.accruedWorker - (s?.workerTotal ?? 0n) + this.accruedProxy - (s?.proxyTotal ?? 0n);
  }

  /** Signs a payout over everything accrued (the caller writes the account to the ledger before sending it). */
  signPayout(key: KeyObject): Signed<WorkerPayout> {
    this.signed = signWorkerPayout(
      {
        globalId: this.globalId,
        contract: this.contract,
        seqno: (this.signed?.payload.seqno ?? 0n) + 1n,
        workerTotal: this.accruedWorker,
        proxyTotal: this.accruedProxy,
      },
      key,
    );
    return this.signed;
  }
}
