import type { KeyObject } from 'node:crypto';
import type { Address } from '@ton/core';
import type { ClientChainState, StoredAuth } from './client-account.ts';
import type { PriceList } from './pricing.ts';
import type { Signed, WorkerPayout } from './signed-messages.ts';

/**
 * What the payment logic needs from TON, and nothing more. Implemented over the contract wrappers by
 * `src/chain/payments-chain.ts` (local sandbox chain, testnet or mainnet alike); the pay layer never
 * touches wallets or RPC itself.
 */
/** The root's parameters the payment logic follows; the owner may change them at any time. */
export interface PaymentParams extends PriceList {
  /** Rises with every change. */
  paramsVersion: number;
  /** Seconds a client contract must wait between `request_close` and `close`. */
  clientCloseDelay: number;
  minClientStake: bigint;
}

export interface PaymentsChain {
  /** config param 19 of the network: part of every signed payload. */
  readonly globalId: number;
  /** The root's parameters (prices among them), as last read. */
  prices(): PaymentParams;
  /** Re-reads the root's parameters. */
  refreshPrices(): Promise<PaymentParams>;
  /** Address of the client contract of (owner, client key) with a proxy contract, from code + init data. */
  clientContract(owner: Address, clientKey: KeyObject, proxyContract: Address): Address;
  /** Address of the worker contract of `owner` with a proxy contract, from code + init data. */
  workerContract(owner: Address, proxyContract: Address, proxyKey: KeyObject): Address;
  clientState(contract: Address): Promise<ClientChainState>;
  /** What a worker contract has paid out so far (zero if not deployed). */
  workerPaid(contract: Address): Promise<{ seqno: bigint; workerTotal: bigint; proxyTotal: bigint }>;
  /** Redeems client authorisations from our wallet, in as few transfers as the wallet's limit allows. */
  redeemClientAuths(items: { contract: Address; auth: StoredAuth }[]): Promise<void>;
  /** Redeems a proxy-signed payout on our worker contract (deploying it the first time). */
  redeemPayout(
    payout: Signed<WorkerPayout>,
    init: { owner: Address; proxyContract: Address; proxyKey: KeyObject },
  ): Promise<void>;
}
