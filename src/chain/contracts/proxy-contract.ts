import { type Address, beginCell, type Cell, type ContractProvider, type Sender } from '@ton/core';
import { BaseContract } from './base-contract.ts';
import { type ContractState, Op } from './opcodes.ts';

/**
 * Proxy contract: stake, pool of charged client money, commission; pays the workers. Its address depends
 * only on its identity (owner, root, proxy key, worker code): the close delay starts at 0 and the owner
 * raises it (`raise_close_delay`, sent with the deploying stake). Commission matures between one and two
 * close delays after it was credited (`proxyCommissionAt`).
 */

export interface ProxyConfig {
  owner: Address;
  root: Address;
  /** The proxy node's Ed25519 identity key (`publicKeyToUint`). */
  proxyKey: bigint;
  /** Code of the worker contracts, to recognise them. */
  workerCode: Cell;
}

export interface ProxyData {
  state: ContractState;
  stake: bigint;
  pool: bigint;
  /** Matured commission as of the contract's last maturing (see `proxyCommissionAt` for now). */
  commission: bigint;
  /** Commission credited in [epoch, epoch + closeDelay): matures at epoch + 2 × closeDelay. */
  maturingNew: bigint;
  /** Commission credited in [epoch − closeDelay, epoch): matures at epoch + closeDelay. */
  maturingOld: bigint;
  epoch: number;
  unlockAt: number;
  /** Seconds between `request_close` and `close`, and commission's least maturing time; only rises. */
  closeDelay: number;
  owner: Address;
  root: Address;
  proxyKey: bigint;
  workerCode: Cell;
}

/** Every nanoton the proxy contract tracks (what `close` would pay, what its balance holds above the reserve). */
export const proxyTracked = (d: ProxyData): bigint =>
  d.stake + d.pool + d.commission + d.maturingNew + d.maturingOld;

/** The commission buckets as the contract would see them at `now` (exactly its `mature`). */
export function matureAt(
  d: Pick<ProxyData, 'commission' | 'maturingNew' | 'maturingOld' | 'epoch' | 'closeDelay'>,
  now: number,
): { commission: bigint; maturingNew: bigint; maturingOld: bigint; epoch: number } {
  const { closeDelay: delay } = d;
  if (delay === 0) {
    return {
      commission: d.commission + d.maturingNew + d.maturingOld,
      maturingNew: 0n,
      maturingOld: 0n,
      epoch: now,
    };
  }
  if (now < d.epoch + delay) {
    return {
      commission: d.commission,
      maturingNew: d.maturingNew,
      maturingOld: d.maturingOld,
      epoch: d.epoch,
    };
  }
  const elapsed = Math.floor((now - d.epoch) / delay);
  const epoch = d.epoch + elapsed * delay;
  if (elapsed >= 2) {
    return {
      commission: d.commission + d.maturingNew + d.maturingOld,
      maturingNew: 0n,
      maturingOld: 0n,
      epoch,
    };
  }
  return { commission: d.commission + d.maturingOld, maturingNew: 0n, maturingOld: d.maturingNew, epoch };
}

/** What `withdraw_commission` would pay at `now`, what is still maturing, and when the next part matures
 * (null when nothing is maturing). */
export function proxyCommissionAt(
  d: ProxyData,
  now: number,
): { withdrawable: bigint; maturing: bigint; nextMaturity: number | null } {
  const m = matureAt(d, now);
  const maturing = m.maturingNew + m.maturingOld;
  const nextMaturity =
    m.maturingOld > 0n ? m.epoch + d.closeDelay : m.maturingNew > 0n ? m.epoch + 2 * d.closeDelay : null;
  return { withdrawable: m.commission, maturing, nextMaturity };
}

export function proxyContractData(config: ProxyConfig): Cell {
  const consts = beginCell()
    .storeAddress(config.owner)
    .storeAddress(config.root)
    .storeUint(config.proxyKey, 256)
    .storeRef(config.workerCode)
    .endCell();
  return beginCell()
    .storeUint(0, 2) // state: open
    .storeCoins(0) // stake
    .storeCoins(0) // pool
    .storeCoins(0) // commission
    .storeCoins(0) // maturing_new
    .storeCoins(0) // maturing_old
    .storeUint(0, 32) // epoch
    .storeUint(0, 32) // unlock_at
    .storeUint(0, 32) // close_delay (raise_close_delay)
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
/** Owner only, open only: the close delay, never below its current value. */
export function raiseCloseDelayBody(closeDelay: number, queryId = 0n): Cell {
  return head(Op.proxyRaiseCloseDelay, queryId).storeUint(closeDelay, 32).endCell();
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
  sendRaiseCloseDelay(p: ContractProvider, via: Sender, value: bigint, closeDelay: number, queryId?: bigint) {
    return this.sendBody(p, via, value, raiseCloseDelayBody(closeDelay, queryId));
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
      maturingNew: r.readBigNumber(),
      maturingOld: r.readBigNumber(),
      epoch: r.readNumber(),
      unlockAt: r.readNumber(),
      closeDelay: r.readNumber(),
      owner: r.readAddress(),
      root: r.readAddress(),
      proxyKey: r.readBigNumber(),
      workerCode: r.readCell(),
    };
  }
}
