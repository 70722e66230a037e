import type { KeyObject } from 'node:crypto';
import type { Address, Cell, OpenedContract, TonClient } from '@ton/ton';
import type { ClientChainState, StoredAuth } from '../pay/client-account.ts';
import { UNDEPLOYED } from '../pay/client-account.ts';
import type { PaymentsChain } from '../pay/payments-chain.ts';
import { clientAuthCell, publicKeyToUint, type Signed, type WorkerPayout } from '../pay/signed-messages.ts';
import { ClientContract, clientChargeBody, raiseTermsBody, topUpBody } from './contracts/client-contract.ts';
import { loadContractCode } from './contracts/code.ts';
import { MIN_FORWARD_VALUE } from './contracts/opcodes.ts';
import type { RootParams } from './contracts/params.ts';
import { RootContract } from './contracts/root-contract.ts';
import { WorkerContract, workerPayoutBody } from './contracts/worker-contract.ts';
import { MAX_MESSAGES_PER_TRANSFER, type OutgoingMessage, type WalletSender } from './wallet.ts';

export interface ContractCodes {
  client: Cell;
  worker: Cell;
  proxy: Cell;
}

export async function loadCodes(): Promise<ContractCodes> {
  const [client, worker, proxy] = await Promise.all([
    loadContractCode('client'),
    loadContractCode('worker'),
    loadContractCode('proxy'),
  ]);
  return { client, worker, proxy };
}

/**
 * The messages of a deposit of `amount` into client contract `contract` (whose state is `before`), in one
 * wallet transfer: a `top_up` (deploying the contract the first time), then, if its stake or close delay is
 * below the root's current `min_client_stake` / `client_close_delay`, a `raise_terms` to them (never
 * lowering either). Messages from one wallet to one contract arrive in order.
 */
export function clientDepositMessages(
  contract: ClientContract,
  before: ClientChainState,
  amount: bigint,
  params: Pick<RootParams, 'minClientStake' | 'clientCloseDelay'>,
  gas: bigint,
): OutgoingMessage[] {
  const messages: OutgoingMessage[] = [
    {
      to: contract.address,
      value: amount + gas,
      body: topUpBody(amount),
      ...(before.deployed || !contract.init ? {} : { init: contract.init }),
    },
  ];
  // biome-ignore lint/complexity/useMathMinMax: bigints (Math.max takes numbers only)
  const stake = before.stake > params.minClientStake ? before.stake : params.minClientStake;
  const closeDelay = Math.max(before.closeDelay, params.clientCloseDelay);
  if (!before.deployed || stake !== before.stake || closeDelay !== before.closeDelay) {
    messages.push({
      to: contract.address,
      value: MIN_FORWARD_VALUE,
      body: raiseTermsBody(stake, closeDelay),
    });
  }
  return messages;
}

/** Whether a client contract's own terms are at least the root's current ones (else it gives no credit). */
export function clientTermsMeetRoot(
  s: Pick<ClientChainState, 'stake' | 'closeDelay'>,
  params: Pick<RootParams, 'minClientStake' | 'clientCloseDelay'>,
): boolean {
  return s.stake >= params.minClientStake && s.closeDelay >= params.clientCloseDelay;
}

/**
 * PaymentsChain over TON: contract wrappers opened through a TonClient (the local chain server, testnet or
 * mainnet alike), redemptions sent from our own wallet. Addresses are derived from code + initial data that
 * hold only the contracts' identities (never the root's mutable parameters), so both sides of every
 * contract compute the same one, before and after a `set_params`.
 */
export class TonPayments implements PaymentsChain {
  private params: RootParams;

  constructor(
    private readonly client: TonClient,
    readonly root: Address,
    readonly codes: ContractCodes,
    params: RootParams,
    readonly globalId: number,
    /** Our wallet, for the messages we pay gas for; null for read-only use. */
    private readonly sender: WalletSender | null,
  ) {
    this.params = params;
  }

  static async connect(
    client: TonClient,
    root: Address,
    globalId: number,
    sender: WalletSender | null,
  ): Promise<TonPayments> {
    const [codes, params] = await Promise.all([
      loadCodes(),
      client.open(RootContract.fromAddress(root)).getParams(),
    ]);
    return new TonPayments(client, root, codes, params, globalId, sender);
  }

  get rootParams(): RootParams {
    return this.params;
  }

  prices(): RootParams {
    return this.params;
  }

  async refreshPrices(): Promise<RootParams> {
    this.params = await this.client.open(RootContract.fromAddress(this.root)).getParams();
    return this.params;
  }

  clientContractOf(owner: Address, clientKey: KeyObject, proxyContract: Address): ClientContract {
    return ClientContract.fromInit(
      {
        owner,
        proxy: proxyContract,
        clientKey: publicKeyToUint(clientKey),
      },
      this.codes.client,
    );
  }

  clientContract(owner: Address, clientKey: KeyObject, proxyContract: Address): Address {
    return this.clientContractOf(owner, clientKey, proxyContract).address;
  }

  workerContractOf(owner: Address, proxyContract: Address, proxyKey: KeyObject): WorkerContract {
    return WorkerContract.fromInit(
      { owner, proxy: proxyContract, proxyKey: publicKeyToUint(proxyKey) },
      this.codes.worker,
    );
  }

  workerContract(owner: Address, proxyContract: Address, proxyKey: KeyObject): Address {
    return this.workerContractOf(owner, proxyContract, proxyKey).address;
  }

  open<T extends ClientContract | WorkerContract | RootContract>(c: T): OpenedContract<T> {
    return this.client.open(c);
  }

  async isDeployed(address: Address): Promise<boolean> {
    return (await this.client.getContractState(address)).state === 'active';
  }

  async clientState(contract: Address): Promise<ClientChainState> {
    if (!(await this.isDeployed(contract))) return UNDEPLOYED;
    const d = await this.client.open(ClientContract.fromAddress(contract)).getClientData();
    return {
      deployed: true,
      state: d.state,
      balance: d.balance,
      stake: d.stake,
      charged: d.charged,
      seqno: d.seqno,
      unlockAt: d.unlockAt,
      closeDelay: d.closeDelay,
    };
  }

  async workerPaid(contract: Address): Promise<{ seqno: bigint; workerTotal: bigint; proxyTotal: bigint }> {
    if (!(await this.isDeployed(contract))) return { seqno: 0n, workerTotal: 0n, proxyTotal: 0n };
    const d = await this.client.open(WorkerContract.fromAddress(contract)).getWorkerData();
    return { seqno: d.seqno, workerTotal: d.paidWorker, proxyTotal: d.paidProxy };
  }

  private wallet(): WalletSender {
    if (!this.sender) throw new Error('this node has no wallet to send from');
    return this.sender;
  }

  async redeemClientAuths(items: { contract: Address; auth: StoredAuth }[]): Promise<void> {
    // One wallet transfer carries at most MAX_MESSAGES_PER_TRANSFER messages: past that, several transfers.
    for (let i = 0; i < items.length; i += MAX_MESSAGES_PER_TRANSFER) {
      await this.sendCharges(items.slice(i, i + MAX_MESSAGES_PER_TRANSFER));
    }
  }

  private async sendCharges(items: { contract: Address; auth: StoredAuth }[]): Promise<void> {
    await this.wallet().send(
      items.map(({ contract, auth }) => ({
        to: contract,
        value: MIN_FORWARD_VALUE,
        body: clientChargeBody({
          cell: clientAuthCell({ globalId: this.globalId, contract, seqno: auth.seqno, total: auth.total }),
          signature: auth.signature,
        }),
      })),
    );
  }

  async redeemPayout(
    payout: Signed<WorkerPayout>,
    init: { owner: Address; proxyContract: Address; proxyKey: KeyObject },
  ): Promise<void> {
    const c = this.workerContractOf(init.owner, init.proxyContract, init.proxyKey);
    const deployed = await this.isDeployed(c.address);
    await this.wallet().send([
      {
        to: c.address,
        value: MIN_FORWARD_VALUE,
        body: workerPayoutBody(payout),
        ...(deployed || !c.init ? {} : { init: c.init }),
      },
    ]);
  }
}
