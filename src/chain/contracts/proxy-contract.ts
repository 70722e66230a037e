import { type Address, beginCell, type Cell, type ContractProvider, type Sender } from '@ton/core';
import { BaseContract } from './base-contract.ts';
import { type ContractState, Op } from './opcodes.ts';

/** Proxy contract: stake, pool of charged client money, commission; pays the workers. */

export interface ProxyConfig {
  owner: Address;
  root: Address;
  /** The proxy node's Ed25519 identity key (`publicKeyToUint`). */
  proxyKey: bigint;
  /** Root `proxy_close_delay`, seconds. */
  closeDelay: number;
  /** Code of the worker contracts, to recognise them. */
  workerCode: Cell;
}

export interface ProxyData {
  state: ContractState;
  stake: bigint;
  pool: bigint;
  commission: bigint;
  unlockAt: number;
  owner: Address;
  root: Address;
  proxyKey: bigint;
  closeDelay: number;
  workerCode: Cell;
}

export function proxyContractData(config: ProxyConfig): Cell {
  const consts = beginCell()
    .storeAddress(config.owner)
    .storeAddress(config.root)
    .storeUint(config.proxyKey, 256)
    .storeUint(config.closeDelay, 32)
    .storeRef(config.workerCode)
    .endCell();
  return beginCell()
    .storeUint(0, 2) // state: open
    .storeCoins(0) // stake
    .storeCoins(0) // pool
    .storeCoins(0) // commission
    .storeUint(0, 32) // unlock_at
    .storeRef(consts)
    .endCell();
}

const head = (op: number, queryId: bigint) => beginCell().storeUint(op, 32).storeUint(queryId, 64);

/** Normally sent by a client contract; attach at least `amount + MIN_PROCEEDS_GAS`. */
export function chargeProceedsBody(amount: bigint, excessTo: Address, queryId = 0n): Cell {
  return head(Op.proxyChargeProceeds, queryId).storeCoins(amount).storeAddress(excessTo).endCell();
}
/** Only a worker contract's is accepted; exported for tools and tests. */
export function workerPayoutRequestBody(
  owner: Address,
  workerAmount: bigint,
  proxyAmount: bigint,
  excessTo: Address,
  queryId = 0n,
): Cell {
  return head(Op.proxyWorkerPayoutRequest, queryId)
    .storeAddress(owner)
    .storeCoins(workerAmount)
    .storeCoins(proxyAmount)
    .storeAddress(excessTo)
    .endCell();
}
/** Attach at least `amount + MIN_FORWARD_VALUE`. */
export function addStakeBody(amount: bigint, queryId = 0n): Cell {
  return head(Op.proxyAddStake, queryId).storeCoins(amount).endCell();
}
export function withdrawCommissionBody(queryId = 0n): Cell {
  return head(Op.proxyWithdrawCommission, queryId).endCell();
}
export function proxyRequestCloseBody(queryId = 0n): Cell {
  return head(Op.proxyRequestClose, queryId).endCell();
}
export function proxyCloseBody(queryId = 0n): Cell {
  return head(Op.proxyClose, queryId).endCell();
}

export class ProxyContract extends BaseContract {
  static fromInit(config: ProxyConfig, code: Cell, workchain = 0): ProxyContract {
    return BaseContract.at(ProxyContract, code, proxyContractData(config), workchain);
  }

  sendChargeProceeds(
    p: ContractProvider,
    via: Sender,
    value: bigint,
    amount: bigint,
    excessTo: Address,
    queryId?: bigint,
  ) {
    return this.sendBody(p, via, value, chargeProceedsBody(amount, excessTo, queryId));
  }
  sendAddStake(p: ContractProvider, via: Sender, value: bigint, amount: bigint, queryId?: bigint) {
    return this.sendBody(p, via, value, addStakeBody(amount, queryId));
  }
  sendWithdrawCommission(p: ContractProvider, via: Sender, value: bigint, queryId?: bigint) {
    return this.sendBody(p, via, value, withdrawCommissionBody(queryId));
  }
  sendRequestClose(p: ContractProvider, via: Sender, value: bigint, queryId?: bigint) {
    return this.sendBody(p, via, value, proxyRequestCloseBody(queryId));
  }
  sendClose(p: ContractProvider, via: Sender, value: bigint, queryId?: bigint) {
    return this.sendBody(p, via, value, proxyCloseBody(queryId));
  }

  async getProxyData(provider: ContractProvider): Promise<ProxyData> {
    const r = (await provider.get('get_proxy_data', [])).stack;
    return {
      state: r.readNumber() as ContractState,
      stake: r.readBigNumber(),
      pool: r.readBigNumber(),
      commission: r.readBigNumber(),
      unlockAt: r.readNumber(),
      owner: r.readAddress(),
      root: r.readAddress(),
      proxyKey: r.readBigNumber(),
      closeDelay: r.readNumber(),
      workerCode: r.readCell(),
    };
  }
}
