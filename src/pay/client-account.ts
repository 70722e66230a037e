import type { KeyObject } from 'node:crypto';
import type { Address } from '@ton/core';
import { formatTon } from '../chain/money.ts';
import { PaymentRefusedError, PaymentRequiredError } from '../errors.ts';
import { verifyClientAuth } from './signed-messages.ts';

/** A client contract as the chain last showed it. */
export interface ClientChainState {
  deployed: boolean;
  /** 0 open, 1 closing, 2 closed. */
  state: number;
  balance: bigint;
  stake: bigint;
  /** Taken by redeemed authorisations so far (cumulative). */
  charged: bigint;
  seqno: bigint;
  unlockAt: number;
  /** The contract's own closing delay (seconds): how long the stake stays after `request_close`. */
  closeDelay: number;
}

export const UNDEPLOYED: ClientChainState = {
  deployed: false,
  state: 0,
  balance: 0n,
  stake: 0n,
  charged: 0n,
  seqno: 0n,
  unlockAt: 0,
  closeDelay: 0,
};

/** The newest authorisation a client signed, as the proxy keeps it. */
export interface StoredAuth {
  seqno: bigint;
  total: bigint;
  signature: Buffer;
}

/** The authorisation message a client sends for a set of bills. */
export interface AuthMessage {
  requestIds: string[];
  seqno: bigint;
  total: bigint;
  signature: Buffer;
}

/** What a client contract must hold before the proxy extends it credit (from the root's params and config). */
export interface CreditTerms {
  minStake: bigint;
  /** Seconds: long enough for the proxy to redeem everything signed after the owner asks to close. */
  minCloseDelay: number;
}

/**
 * The proxy's view of one client contract: what the chain guarantees, what the client has signed, and what
 * is promised to requests in flight. The proxy extends credit only against funds the client cannot take
 * back: the stake (the owner cannot withdraw below it, and closing waits `close_delay`), capped by the
 * balance, less everything signed but not yet redeemed, billed but not yet signed, and reserved.
 */
export class ClientAccount {
  chain: ClientChainState = UNDEPLOYED;
  reserved = 0n;
  /** Request ids in flight: the client picks them, so one may not be used twice at once. */
  readonly inFlight = new Set<string>();
  /** What the contract must hold for credit; the proxy sets them from the root's params as they change. */
  terms: CreditTerms = { minStake: 0n, minCloseDelay: 0 };
  /** Bills sent and not yet covered by an authorisation, by request id. */
  private readonly bills = new Map<string, bigint>();
  private billed = 0n;

  constructor(
    readonly contract: Address,
    readonly owner: Address,
    /** The client's Ed25519 key: the one its RA-TLS certificate carries. */
    readonly key: KeyObject,
    readonly globalId: number,
    public auth: StoredAuth | null,
  ) {}

  get authorised(): bigint {
    return this.auth?.total ?? 0n;
  }

  /**
   * The total the next authorisation adds to: what the client signed, but never below what the contract
   * has already paid out (a lost ledger, or a charge the client submitted itself, must not restart the
   * count below it: authorisations at or below `charged` can take nothing).
   */
  get base(): bigint {
    return maxOf(this.authorised, this.chain.charged);
  }

  /** Signed to us and not yet taken on-chain. */
  get unredeemed(): bigint {
    const u = this.authorised - this.chain.charged;
    return u > 0n ? u : 0n;
  }

  /** Why the contract gives no credit on its terms (stake or close delay below them), or null. */
  shortOf(): string | null {
    const { chain: c, terms } = this;
    if (c.stake < terms.minStake) {
      return `its stake ${formatTon(c.stake)} TON is below the required ${formatTon(terms.minStake)} TON (cocoon client deposit raises it)`;
    }
    if (c.closeDelay < terms.minCloseDelay) {
      return `its close delay ${c.closeDelay} s is below the required ${terms.minCloseDelay} s`;
    }
    return null;
  }

  available(): bigint {
    const c = this.chain;
    if (!c.deployed || c.state !== 0 || this.shortOf()) return 0n;
    const cover = minOf(c.balance, c.stake);
    return cover - this.unredeemed - this.billed - this.reserved;
  }

  /** Holds `amount` for a request about to run, or refuses it before any worker is involved. */
  reserve(amount: bigint): void {
    const c = this.chain;
    if (!c.deployed) {
      throw new PaymentRequiredError(
        `No client contract is deployed at ${this.contract.toString()} yet: deposit first (cocoon client deposit).`,
        'no_deposit',
      );
    }
    if (c.state !== 0) {
      throw new PaymentRequiredError(
        `The client contract ${this.contract.toString()} is ${c.state === 1 ? 'closing' : 'closed'}; open a new one to continue.`,
        'contract_closing',
      );
    }
    const short = this.shortOf();
    if (short) {
      throw new PaymentRequiredError(
        `The client contract ${this.contract.toString()} gives no credit: ${short}.`,
        'stake_too_low',
      );
    }
    const available = this.available();
    if (amount > available) {
      throw new PaymentRequiredError(
        `Insufficient balance: this request may cost up to ${formatTon(amount)} TON (max_tokens at your max_coefficient), ` +
          `but only ${formatTon(available > 0n ? available : 0n)} TON of credit is available ` +
          `(balance ${formatTon(c.balance)}, stake ${formatTon(c.stake)}, unsettled ${formatTon(this.unredeemed + this.billed)}). ` +
          'Deposit more, raise the stake, or lower max_tokens.',
      );
    }
    this.reserved += amount;
  }

  release(amount: bigint): void {
    this.reserved -= amount;
  }

  /** Records a bill the client must now sign for. */
  addBill(requestId: string, cost: bigint): void {
    this.bills.set(requestId, cost);
    this.billed += cost;
  }

  /** Drops a bill the client never signed (the proxy bears it). */
  dropBill(requestId: string): bigint {
    const cost = this.bills.get(requestId) ?? 0n;
    if (this.bills.delete(requestId)) this.billed -= cost;
    return cost;
  }

  hasBill(requestId: string): boolean {
    return this.bills.has(requestId);
  }

  /**
   * Checks an authorisation against the bills it claims to cover: newer seqno, exactly the previous total
   * plus those bills, signed by the client's key for this contract and network. Nothing changes if it fails.
   */
  checkAuth(msg: AuthMessage): StoredAuth {
    // The contract accepts only a seqno above its stored one, which starts at 0.
    const prevSeqno = this.auth?.seqno ?? 0n;
    if (msg.seqno <= prevSeqno) {
      throw new PaymentRefusedError(
        `authorisation seqno ${msg.seqno} is not above ${prevSeqno} (replayed or stale)`,
        'stale_seqno',
      );
    }
    let due = this.base;
    for (const id of msg.requestIds) {
      const cost = this.bills.get(id);
      if (cost === undefined) throw new PaymentRefusedError(`no open bill for request ${id}`, 'unknown_bill');
      due += cost;
    }
    if (msg.total !== due) {
      throw new PaymentRefusedError(
        `authorisation total ${msg.total} does not equal the signed total (at least what the contract paid) plus the bills (${due})`,
        'wrong_total',
      );
    }
    const signed = { globalId: this.globalId, contract: this.contract, seqno: msg.seqno, total: msg.total };
    if (!verifyClientAuth(signed, msg.signature, this.key)) {
      throw new PaymentRefusedError(
        'authorisation signature is not valid for this client and contract',
        'bad_signature',
      );
    }
    return { seqno: msg.seqno, total: msg.total, signature: msg.signature };
  }

  /** Applies a checked authorisation: its bills are now signed state. */
  applyAuth(msg: AuthMessage, auth: StoredAuth): void {
    for (const id of msg.requestIds) this.dropBill(id);
    this.auth = auth;
  }
}

function minOf(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function maxOf(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
