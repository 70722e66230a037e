import { createPublicKey, type KeyObject } from 'node:crypto';
import { Address } from '@ton/core';
import { rawPublicKeyFromHex } from '../attest/identity.ts';
import type { PeerIdentity } from '../attest/types.ts';
import {
  type CocoonError,
  PaymentRefusedError,
  ServiceUnavailableError,
  UsageDisputedError,
} from '../errors.ts';
import type { Session } from '../net/session.ts';
import type { Logger } from '../ops/log.ts';
import type { Ledger } from '../pay/ledger.ts';
import { Payer, type ReplyRead, type RequestBound } from '../pay/payer.ts';
import type { PaymentsChain } from '../pay/payments-chain.ts';
import { type ControlMessage, proxyInfoSchema } from '../protocol/messages.ts';

export interface ClientPaymentsOptions {
  chain: PaymentsChain;
  /** The wallet that owns our client contract (and funds it). */
  wallet: Address;
  ledger: Ledger;
  /** Our node key: signs authorisations; its public half is in our RA-TLS certificate. */
  key: KeyObject;
  /** Checks on-chain that `proxyContract` belongs to the proxy whose TLS key is `proxyKey`. */
  checkProxy: (proxyContract: Address, proxyKey: KeyObject) => Promise<void>;
  log: Logger;
}

/**
 * The client's side of payments on one proxy session: checks that the proxy bills the client contract we
 * derive ourselves, on a proxy contract bound to the proxy's attested key, then pays each bill through the
 * Payer (checked, signed, written to the ledger, sent).
 */
export class ClientPayments {
  readonly payer: Payer;
  private account: Promise<void> | null = null;
  private session: Session | null = null;
  /** The proxy has confirmed our account on the current session. */
  isReady = false;
  /** Our client contract as the proxy last reported it from the chain (nanoton). */
  contractState: { balance: bigint; stake: bigint; charged: bigint } | null = null;
  /** Bills disputed (a worker claimed more than its sealed reply carries), and how the proxy ruled. */
  readonly disputes = { opened: 0, upheld: 0, rejected: 0 };

  constructor(private readonly opts: ClientPaymentsOptions) {
    this.payer = new Payer(
      opts.key,
      createPublicKey(opts.key),
      opts.ledger,
      opts.chain.globalId,
      opts.chain.prices(),
      (auth) =>
        this.session?.sendControl({
          type: 'pay.auth',
          requestIds: auth.requestIds,
          seqno: auth.seqno.toString(),
          total: auth.total.toString(),
          signature: auth.signature.toString('hex'),
        }),
      () => opts.chain.refreshPrices(),
    );
  }

  get helloInfo(): { wallet: string } {
    return { wallet: this.opts.wallet.toString() };
  }

  /**
   * A new session with the proxy: wait for its account message before sending requests. `refuse` is
   * called once if we cannot pay this proxy on this session (its contract is not bound to it or not
   * registered in the root, the proxy bills another contract, the chain cannot be read): the caller hangs
   * up and tries again later. Nothing here rejects unhandled.
   */
  attach(session: Session, peer: PeerIdentity, refuse: (err: Error) => void): void {
    this.session = session;
    const proxyContract = Address.parse(proxyInfoSchema.parse(session.peerHello!.info).proxyContract);
    const proxyKey = rawPublicKeyFromHex(peer.publicKey);
    const expected = this.opts.chain.clientContract(
      this.opts.wallet,
      createPublicKey(this.opts.key),
      proxyContract,
    );
    let settle: (err?: Error) => void = () => {};
    this.isReady = false;
    let settled = false;
    let refused = false;
    const account = new Promise<void>((resolve, reject) => {
      settle = (err) => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve();
        this.isReady = !err && this.session === session;
        if (err) {
          refused = true;
          if (this.session === session) refuse(err);
        }
      };
    });
    account.catch(() => {});
    this.account = account;
    // Checked at once, whether or not the proxy's account message ever comes: a refusal ends the session.
    const proxyChecked = this.opts.checkProxy(proxyContract, proxyKey);
    proxyChecked.catch((err: Error) => settle(err));
    this.onControl = (msg) => {
      void (async () => {
        if (msg.type === 'pay.account') {
          if (!Address.parse(msg.contract).equals(expected)) {
            throw new PaymentRefusedError(
              `the proxy bills ${msg.contract}, but our client contract is ${expected.toString()}`,
              'wrong_contract',
            );
          }
          // Our own reading of the chain, never the proxy's word: a proxy that overstated `charged` would
          // have us sign a total above what we owe.
          const [, chain] = await Promise.all([proxyChecked, this.opts.chain.clientState(expected)]);
          this.opts.chain.refreshPrices().then(
            (p) => this.payer.setParams(p),
            () => {},
          );
          this.payer.resume(expected, msg.auth, chain.charged);
          this.contractState = { balance: chain.balance, stake: chain.stake, charged: chain.charged };
          settle();
        } else if (msg.type === 'pay.bill') {
          try {
            await this.payer.pay(msg);
          } catch (err) {
            if (err instanceof UsageDisputedError) return this.dispute(session, msg.requestId, err);
            session.sendControl({
              type: 'pay.reject',
              requestId: msg.requestId,
              reason: (err as Error).message,
            });
            this.opts.log.warn({ requestId: msg.requestId, err: (err as Error).message }, 'bill refused');
          }
        }
      })().catch((err: CocoonError) => {
        if (!settled) {
          settle(err); // the caller logs the refusal and hangs up
        } else if (!refused) {
          this.opts.log.warn({ err: err.message }, 'payment session failed');
          session.close(err);
        }
      });
    };
  }

  /**
   * Shows the proxy that the worker claimed more than its sealed reply carries (src/proxy/dispute.ts):
   * instead of refusing the bill, which would count against us, we hand over the proof. The request then
   * fails with `usage_disputed` and nothing is charged; a rejected dispute leaves the bill unpaid.
   */
  private async dispute(session: Session, requestId: string, err: UsageDisputedError): Promise<void> {
    this.disputes.opened++;
    this.opts.log.warn({ requestId, reason: err.message }, 'disputing a bill');
    const s = session.openStream({ method: 'dispute', requestId });
    try {
      for (const part of err.proof) {
        const p = s.write(part);
        if (p) await p;
      }
      s.end();
      await s.readAll();
      this.disputes.upheld++;
    } catch (e) {
      this.disputes.rejected++;
      this.opts.log.warn({ requestId, err: (e as Error).message }, 'dispute rejected');
    }
  }

  /** A control message from the proxy session, already parsed (by the client node, once). */
  onControl: (msg: ControlMessage) => void = () => {};

  /** Resolves once the proxy has told us our account; requests wait for it. */
  async ready(timeoutMs = 10_000): Promise<void> {
    if (!this.account)
      throw new ServiceUnavailableError('Not connected to any proxy; retry shortly.', 'no_proxy');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ServiceUnavailableError(
              'The proxy did not confirm our payment account in time.',
              'no_account',
            ),
          ),
        timeoutMs,
      );
    });
    try {
      await Promise.race([this.account, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  expect(requestId: string, bound: RequestBound): void {
    this.payer.expect(requestId, bound);
  }

  forget(requestId: string): void {
    this.payer.forget(requestId);
  }

  /** The worker we sent the request's body to asks this coefficient: the only one its bill may name. */
  served(requestId: string, coefficient: number, worker: string, read?: ReplyRead): void {
    this.payer.served(requestId, coefficient, worker, read);
  }
}
