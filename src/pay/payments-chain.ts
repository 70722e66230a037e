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
export interface PaymentsChain {
  /** config param 19 of the network: part of every signed payload. */
  readonly globalId: number;
  /** The root's prices, as last read. */
  prices(): PriceList;
  /** Re-reads the root's parameters. */
  refreshPrices(): Promise<PriceList>;
  /** Address of the client contract of (owner, client key) with a proxy contract, from code + init data. */
  clientContract(owner: Address, clientKey: KeyObject, proxyContract: Address): Address;
  /** Address of the worker contract of `owner` with a proxy contract, from code + init data. */
  workerContract(owner: Address, proxyContract: Address, proxyKey: KeyObject): Address;
  clientState(contract: Address): Promise<ClientChainState>;
  /** What a worker contract has paid out so far (zero if not deployed). */
  workerPaid(contract: Address): Promise<{ seqno: bigint; workerTotal: bigint; proxyTotal: bigint }>;
  /** Redeems client authorisations from our wallet, all in one transfer. */
  redeemClientAuths(items: { contract: Address; auth: StoredAuth }[]): Promise<void>;
  /** Redeems a proxy-signed payout on our worker contract (deploying it the first time). */
  redeemPayout(
    payout: Signed<WorkerPayout>,
    init: { owner: Address; proxyContract: Address; proxyKey: KeyObject },
  ): Promise<void>;
}
