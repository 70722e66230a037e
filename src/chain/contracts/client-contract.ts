import { type Address, beginCell, type Cell, type ContractProvider, type Sender } from '@ton/core';
import type { ClientAuth, Signed } from '../../pay/signed-messages.ts';
import { BaseContract } from './base-contract.ts';
import { type ContractState, Op } from './opcodes.ts';

/** Client contract: the client's prepaid balance, charged by the proxy with signed `ClientAuth`s. */

export interface ClientConfig {
  owner: Address;
  /** The proxy contract the charges go to. */
  proxy: Address;
  /** The client node's Ed25519 identity key (`publicKeyToUint`). */
  clientKey: bigint;
  /** Root `client_close_delay`, seconds. */
  closeDelay: number;
  /** Initial stake: root `min_client_stake`. */
  stake: bigint;
}

export interface ClientData {
  state: ContractState;
  balance: bigint;
  stake: bigint;
  charged: bigint;
  seqno: bigint;
  unlockAt: number;
  owner: Address;
  proxy: Address;
  clientKey: bigint;
  closeDelay: number;
}

export function clientContractData(config: ClientConfig): Cell {
  const consts = beginCell()
    .storeAddress(config.owner)
    .storeAddress(config.proxy)
    .storeUint(config.clientKey, 256)
    .storeUint(config.closeDelay, 32)
    .endCell();
  return beginCell()
    .storeUint(0, 2) // state: open
    .storeCoins(0) // balance
    .storeCoins(config.stake)
    .storeCoins(0) // charged
    .storeUint(0, 64) // seqno
    .storeUint(0, 32) // unlock_at
    .storeRef(consts)
    .endCell();
}

const head = (op: number, queryId: bigint) => beginCell().storeUint(op, 32).storeUint(queryId, 64);

/** Attach at least `amount + MIN_FORWARD_VALUE`. */
export function topUpBody(amount: bigint, queryId = 0n): Cell {
  return head(Op.clientTopUp, queryId).storeCoins(amount).endCell();
}
export function increaseStakeBody(stake: bigint, queryId = 0n): Cell {
  return head(Op.clientIncreaseStake, queryId).storeCoins(stake).endCell();
}
export function clientWithdrawBody(amount: bigint, queryId = 0n): Cell {
  return head(Op.clientWithdraw, queryId).storeCoins(amount).endCell();
}
export function clientRequestCloseBody(queryId = 0n): Cell {
  return head(Op.clientRequestClose, queryId).endCell();
}
export function clientCloseBody(queryId = 0n): Cell {
  return head(Op.clientClose, queryId).endCell();
}
export function clientChargeBody(signed: Pick<Signed<ClientAuth>, 'cell' | 'signature'>, queryId = 0n): Cell {
  return head(Op.clientCharge, queryId).storeBuffer(signed.signature, 64).storeRef(signed.cell).endCell();
}

export class ClientContract extends BaseContract {
  static fromInit(config: ClientConfig, code: Cell, workchain = 0): ClientContract {
    return BaseContract.at(ClientContract, code, clientContractData(config), workchain);
  }

  sendTopUp(p: ContractProvider, via: Sender, value: bigint, amount: bigint, queryId?: bigint) {
    return this.sendBody(p, via, value, topUpBody(amount, queryId));
  }
  sendIncreaseStake(p: ContractProvider, via: Sender, value: bigint, stake: bigint, queryId?: bigint) {
    return this.sendBody(p, via, value, increaseStakeBody(stake, queryId));
  }
  sendWithdraw(p: ContractProvider, via: Sender, value: bigint, amount: bigint, queryId?: bigint) {
    return this.sendBody(p, via, value, clientWithdrawBody(amount, queryId));
  }
  sendRequestClose(p: ContractProvider, via: Sender, value: bigint, queryId?: bigint) {
    return this.sendBody(p, via, value, clientRequestCloseBody(queryId));
  }
  sendClose(p: ContractProvider, via: Sender, value: bigint, queryId?: bigint) {
    return this.sendBody(p, via, value, clientCloseBody(queryId));
  }
  sendCharge(
    p: ContractProvider,
    via: Sender,
    value: bigint,
    signed: Pick<Signed<ClientAuth>, 'cell' | 'signature'>,
    queryId?: bigint,
  ) {
    return this.sendBody(p, via, value, clientChargeBody(signed, queryId));
  }

  async getClientData(provider: ContractProvider): Promise<ClientData> {
    const r = (await provider.get('get_client_data', [])).stack;
    return {
      state: r.readNumber() as ContractState,
      balance: r.readBigNumber(),
      stake: r.readBigNumber(),
      charged: r.readBigNumber(),
      seqno: r.readBigNumber(),
      unlockAt: r.readNumber(),
      owner: r.readAddress(),
      proxy: r.readAddress(),
      clientKey: r.readBigNumber(),
      closeDelay: r.readNumber(),
    };
  }
}
