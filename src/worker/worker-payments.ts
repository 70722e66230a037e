import type { KeyObject } from 'node:crypto';
import { Address } from '@ton/core';
import { rawPublicKeyFromHex } from '../attest/identity.ts';
import type { PeerIdentity } from '../attest/types.ts';
import { type CocoonError, PaymentRefusedError } from '../errors.ts';
import { backoffDelay } from '../net/peer-link.ts';
import type { Session } from '../net/session.ts';
import type { Logger } from '../ops/log.ts';
import { Earnings } from '../pay/earnings.ts';
import type { Ledger } from '../pay/ledger.ts';
import type { PaymentsChain } from '../pay/payments-chain.ts';
import { requestCost } from '../pay/pricing.ts';
import type { TokenUsage } from '../protocol/inference.ts';
import { controlSchema, parseMessage, proxyInfoSchema } from '../protocol/messages.ts';

export interface WorkerPaymentsOptions {
  chain: PaymentsChain;
  /** The worker owner's wallet: fees are paid there, and it pays the gas of redeeming. */
  owner: Address;
  ledger: Ledger;
  /** Redeem once this much is signed and not yet paid out… */
  redeemAmount: bigint;
  /** … or once something has waited this long. */
  redeemIntervalMs: number;
  log: Logger;
}

interface ProxyEarnings {
  earnings: Earnings;
  proxyContract: Address;
  proxyKey: KeyObject;
  paidWorker: bigint | null;
  dueSince: number | null;
}

/**
 * The worker's side of payments: keeps the newest payout each proxy signed for our worker contract (checked
 * against the proxy's attested key, written to the ledger) and redeems it on-chain in batches.
 */
export class WorkerPayments {
  private readonly byContract = new Map<string, ProxyEarnings>();
  private timer: NodeJS.Timeout | null = null;
  private redeeming = false;
  redemptions = 0;
  /** Redemption failing (the chain unreachable, …): why, and when it is tried again (backoff). */
  private failures = 0;
  private retryAt = 0;
  lastRedeemError: string | null = null;

  constructor(private readonly opts: WorkerPaymentsOptions) {}

  get helloInfo(): { payoutAddress: string } {
    return { payoutAddress: this.opts.owner.toString() };
  }

  start(): void {
    // Payouts accrue (signed, in the ledger) whatever the chain does; redeeming them waits for it, with
    // backoff and one line per try.
    this.timer = setInterval(() => {
      if (Date.now() < this.retryAt) return;
      this.redeemDue().then(
        () => {
          if (this.failures > 0) this.opts.log.info('payout redemption works again');
          this.failures = 0;
          this.lastRedeemError = null;
        },
        (err) => {
          const delay = backoffDelay(this.failures++, 1000, 60_000);
          this.retryAt = Date.now() + delay;
          this.lastRedeemError = (err as Error).message;
          this.opts.log.warn(
            { err: String(err), retryInMs: Math.round(delay) },
            'payout redemption failed; retrying after backoff',
          );
        },
      );
    }, 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.opts.ledger.close();
  }

  /**
   * What a receipt for a request on `session` names of the money side: the network, the proxy contract the
   * request is paid through, and its cost at the root's current prices (the bill may be capped below it).
   */
  receiptTerms(session: Session, usage: TokenUsage, coefficient: number) {
    const info = proxyInfoSchema.safeParse(session.peerHello?.info);
    const cost = requestCost(usage, coefficient, this.opts.chain.prices());
    return {
      network: this.opts.chain.globalId,
      proxyContract: info.success ? Address.parse(info.data.proxyContract).toString() : null,
      cost: {
        prompt: cost.promptCost.toString(),
        completion: cost.completionCost.toString(),
        total: cost.totalCost.toString(),
      },
    };
  }

  attach(session: Session, peer: PeerIdentity): void {
    const proxyContract = Address.parse(proxyInfoSchema.parse(session.peerHello!.info).proxyContract);
    const proxyKey = rawPublicKeyFromHex(peer.publicKey);
    const contract = this.opts.chain.workerContract(this.opts.owner, proxyContract, proxyKey);
    let entry = this.byContract.get(contract.toRawString());
    if (!entry) {
      const earnings = new Earnings(this.opts.ledger, proxyKey, contract, this.opts.chain.globalId);
      entry = { earnings, proxyContract, proxyKey, paidWorker: null, dueSince: null };
      this.byContract.set(contract.toRawString(), entry);
    }
    const e = entry;
    session.on('control', (payload) => {
      void (async () => {
        const msg = parseMessage(controlSchema, payload, 'control');
        if (msg.type !== 'pay.payout') return;
        if (!Address.parse(msg.contract).equals(contract)) {
          throw new PaymentRefusedError(
            `payout names ${msg.contract}, not our worker contract`,
            'wrong_contract',
          );
        }
        if ((await e.earnings.accept(msg)) && e.dueSince === null) e.dueSince = Date.now();
      })().catch((err: CocoonError) => {
        this.opts.log.warn({ err: err.message }, 'payout refused');
        session.close(err);
      });
    });
  }

  /** Redeems every payout past the amount or time threshold. */
  async redeemDue(force = false): Promise<number> {
    if (this.redeeming) return 0;
    this.redeeming = true;
    let n = 0;
    try {
      for (const e of this.byContract.values()) {
        const latest = e.earnings.latest;
        if (!latest) continue;
        e.paidWorker ??= (await this.opts.chain.workerPaid(e.earnings.contract)).workerTotal;
        const due = latest.payload.workerTotal - e.paidWorker;
        if (due <= 0n) {
          e.dueSince = null;
          continue;
        }
        e.dueSince ??= Date.now();
        const waited = Date.now() - e.dueSince >= this.opts.redeemIntervalMs;
        if (!force && due < this.opts.redeemAmount && !waited) continue;
        await this.opts.chain.redeemPayout(latest, {
          owner: this.opts.owner,
          proxyContract: e.proxyContract,
          proxyKey: e.proxyKey,
        });
        this.redemptions++;
        n++;
        e.paidWorker = (await this.opts.chain.workerPaid(e.earnings.contract)).workerTotal;
        e.dueSince = null;
        this.opts.log.info(
          { contract: e.earnings.contract.toString(), due: due.toString() },
          'payout redeemed',
        );
      }
    } finally {
      this.redeeming = false;
    }
    return n;
  }

  /** Signed to us by all proxies, and what their worker contracts have paid out so far (nanoton). */
  totals(): { signed: bigint; paid: bigint } {
    let signed = 0n;
    let paid = 0n;
    for (const e of this.byContract.values()) {
      signed += e.earnings.workerTotal;
      paid += e.paidWorker ?? 0n;
    }
    return { signed, paid };
  }

  stats() {
    return [...this.byContract.values()].map((e) => ({
      contract: e.earnings.contract.toString(),
      signedNano: e.earnings.workerTotal.toString(),
      paidNano: e.paidWorker?.toString() ?? null,
    }));
  }
}
