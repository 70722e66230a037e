import { type Address, beginCell, type Cell, type ContractProvider, type Sender } from '@ton/core';
import type { ClientAuth, Signed } from '../../pay/signed-messages.ts';
import { BaseContract } from './base-contract.ts';
import { type ContractState, Op } from './opcodes.ts';

/**
 * Client contract: the client's prepaid balance, charged by the proxy with signed `ClientAuth`s. Its
 * address depends only on its identity (owner, proxy contract, client key): stake and close delay start at
 * 0 and the owner raises them (`raise_terms`, sent with the first deposit: `clientDepositMessages`).
 */

export interface ClientConfig {
  owner: Address;
  /** The proxy contract the charges go to. */
  proxy: Address;
  /** The client node's Ed25519 identity key (`publicKeyToUint`). */
  clientKey: bigint;
}

export interface ClientData {
  state: ContractState;
  balance: bigint;
  stake: bigint;
  charged: bigint;
  seqno: bigint;
  unlockAt: number;
  /** Seconds between `request_close` and `close`; the owner can only raise it. */
  closeDelay: number;
  owner: Address;
  proxy: Address;
  clientKey: bigint;
}

export function clientContractData(config: ClientConfig): Cell {
  const consts = beginCell()
    .storeAddress(config.owner)
    .storeAddress(config.proxy)
    .storeUint(config.clientKey, 256)
    .endCell();
  return beginCell()
    .storeUint(0, 2) // state: open
    .storeCoins(0) // balance
    .storeCoins(0) // stake (raise_terms)
    .storeCoins(0) // charged
    .storeUint(0, 64) // seqno
    .storeUint(0, 32) // unlock_at
    .storeUint(0, 32) // close_delay (raise_terms)
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
/** Owner only, open only: sets stake and close delay, neither below its current value. */
export function raiseTermsBody(stake: bigint, closeDelay: number, queryId = 0n): Cell {
  return head(Op.clientRaiseTerms, queryId).storeCoins(stake).storeUint(closeDelay, 32).endCell();
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
  sendRaiseTerms(
    p: ContractProvider,
    via: Sender,
    value: bigint,
    stake: bigint,
    closeDelay: number,
    queryId?: bigint,
  ) {
    return this.sendBody(p, via, value, raiseTermsBody(stake, closeDelay, queryId));
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
      closeDelay: r.readNumber(),
      owner: r.readAddress(),
      proxy: r.readAddress(),
      clientKey: r.readBigNumber(),
    };
  }
}
