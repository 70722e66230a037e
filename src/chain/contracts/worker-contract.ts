import { type Address, beginCell, type Cell, type ContractProvider, type Sender } from '@ton/core';
import type { Signed, WorkerPayout } from '../../pay/signed-messages.ts';
import { BaseContract } from './base-contract.ts';
import { Op } from './opcodes.ts';

/** Worker contract: redeems the proxy's signed `WorkerPayout`s; the proxy contract pays the owner. */

export interface WorkerConfig {
  owner: Address;
  /** The proxy contract that pays. */
  proxy: Address;
  /** The proxy node's Ed25519 identity key (`publicKeyToUint`), which signs the payouts. */
  proxyKey: bigint;
}

export interface WorkerData {
  state: number;
  seqno: bigint;
  paidWorker: bigint;
  paidProxy: bigint;
  owner: Address;
  proxy: Address;
  proxyKey: bigint;
}

/** Initial data: the proxy contract recomputes exactly this to recognise the worker contract. */
export function workerContractData(config: WorkerConfig): Cell {
  const consts = beginCell()
    .storeAddress(config.owner)
    .storeAddress(config.proxy)
    .storeUint(config.proxyKey, 256)
    .endCell();
  return beginCell()
    .storeUint(0, 2) // state
    .storeUint(0, 64) // seqno
    .storeCoins(0) // paid_worker
    .storeCoins(0) // paid_proxy
    .storeRef(consts)
    .endCell();
}

export function workerPayoutBody(
  signed: Pick<Signed<WorkerPayout>, 'cell' | 'signature'>,
  queryId = 0n,
): Cell {
  return beginCell()
    .storeUint(Op.workerPayout, 32)
    .storeUint(queryId, 64)
    .storeBuffer(signed.signature, 64)
    .storeRef(signed.cell)
    .endCell();
}

export class WorkerContract extends BaseContract {
  static fromInit(config: WorkerConfig, code: Cell, workchain = 0): WorkerContract {
    return BaseContract.at(WorkerContract, code, workerContractData(config), workchain);
  }

  /** Anyone may submit; attach at least `MIN_FORWARD_VALUE`. */
  sendPayout(
    p: ContractProvider,
    via: Sender,
    value: bigint,
    signed: Pick<Signed<WorkerPayout>, 'cell' | 'signature'>,
    queryId?: bigint,
  ) {
    return this.sendBody(p, via, value, workerPayoutBody(signed, queryId));
  }

  async getWorkerData(provider: ContractProvider): Promise<WorkerData> {
    const r = (await provider.get('get_worker_data', [])).stack;
    return {
      state: r.readNumber(),
      seqno: r.readBigNumber(),
      paidWorker: r.readBigNumber(),
      paidProxy: r.readBigNumber(),
      owner: r.readAddress(),
      proxy: r.readAddress(),
      proxyKey: r.readBigNumber(),
    };
  }
}
