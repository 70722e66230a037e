import {
  type Address,
  beginCell,
  type Cell,
  type ContractProvider,
  Dictionary,
  type DictionaryValue,
  type Sender,
} from '@ton/core';
import { BaseContract } from './base-contract.ts';
import { HashKind, Op } from './opcodes.ts';
import { paramsCell, parseParams, type RootParams, readParams } from './params.ts';

/** Root contract: network parameters, allow-lists of hashes, proxy registry (docs/payments.md). */

export interface RootConfig {
  owner: Address;
  params: RootParams;
}

export interface ProxyRegistryEntry {
  seqno: number;
  address: Address;
  /** "host:port" */
  endpoint: string;
}

export interface RootData {
  owner: Address;
  /** Rises with every change of the root's data. */
  version: number;
  params: RootParams;
  proxyHashes: bigint[];
  workerHashes: bigint[];
  modelHashes: bigint[];
  lastProxySeqno: number;
  proxies: ProxyRegistryEntry[];
}

/** `HashmapE 256 Unit`: the value is empty. */
const UNIT: DictionaryValue<true> = { serialize: () => {}, parse: () => true };
const hashSet = () => Dictionary.empty(Dictionary.Keys.BigUint(256), UNIT);
const proxyEntries = () => Dictionary.empty(Dictionary.Keys.Uint(32), Dictionary.Values.Cell());

export function rootContractData(config: RootConfig): Cell {
  const lists = beginCell().storeDict(hashSet()).storeDict(hashSet()).storeDict(hashSet()).endCell();
  const proxies = beginCell().storeUint(0, 32).storeDict(proxyEntries()).endCell();
  return beginCell()
    .storeAddress(config.owner)
    .storeUint(0, 32)
    .storeRef(paramsCell(config.params))
    .storeRef(lists)
    .storeRef(proxies)
    .endCell();
}

const ADD_OP: Record<HashKind, number> = {
  [HashKind.proxy]: Op.rootAddProxyHash,
  [HashKind.worker]: Op.rootAddWorkerHash,
  [HashKind.model]: Op.rootAddModelHash,
};
const DEL_OP: Record<HashKind, number> = {
  [HashKind.proxy]: Op.rootDelProxyHash,
  [HashKind.worker]: Op.rootDelWorkerHash,
  [HashKind.model]: Op.rootDelModelHash,
};

const head = (op: number, queryId: bigint) => beginCell().storeUint(op, 32).storeUint(queryId, 64);
const endpointCell = (endpoint: string) => beginCell().storeStringTail(endpoint).endCell();

export function setParamsBody(params: RootParams, queryId = 0n): Cell {
  return head(Op.rootSetParams, queryId).storeRef(paramsCell(params)).endCell();
}
export function addHashBody(kind: HashKind, hash: bigint, queryId = 0n): Cell {
  return head(ADD_OP[kind], queryId).storeUint(hash, 256).endCell();
}
export function delHashBody(kind: HashKind, hash: bigint, queryId = 0n): Cell {
  return head(DEL_OP[kind], queryId).storeUint(hash, 256).endCell();
}
export function registerProxyBody(address: Address, endpoint: string, queryId = 0n): Cell {
  return head(Op.rootRegisterProxy, queryId).storeAddress(address).storeRef(endpointCell(endpoint)).endCell();
}
export function updateProxyBody(seqno: number, address: Address, endpoint: string, queryId = 0n): Cell {
  return head(Op.rootUpdateProxy, queryId)
    .storeUint(seqno, 32)
    .storeAddress(address)
    .storeRef(endpointCell(endpoint))
    .endCell();
}
export function unregisterProxyBody(seqno: number, queryId = 0n): Cell {
  return head(Op.rootUnregisterProxy, queryId).storeUint(seqno, 32).endCell();
}
export function changeOwnerBody(owner: Address, queryId = 0n): Cell {
  return head(Op.rootChangeOwner, queryId).storeAddress(owner).endCell();
}

export class RootContract extends BaseContract {
  static fromInit(config: RootConfig, code: Cell, workchain = 0): RootContract {
    return BaseContract.at(RootContract, code, rootContractData(config), workchain);
  }

  sendSetParams(p: ContractProvider, via: Sender, value: bigint, params: RootParams, queryId?: bigint) {
    return this.sendBody(p, via, value, setParamsBody(params, queryId));
  }
  sendAddHash(
    p: ContractProvider,
    via: Sender,
    value: bigint,
    kind: HashKind,
    hash: bigint,
    queryId?: bigint,
  ) {
    return this.sendBody(p, via, value, addHashBody(kind, hash, queryId));
  }
  sendDelHash(
    p: ContractProvider,
    via: Sender,
    value: bigint,
    kind: HashKind,
    hash: bigint,
    queryId?: bigint,
  ) {
    return this.sendBody(p, via, value, delHashBody(kind, hash, queryId));
  }
  sendRegisterProxy(
    p: ContractProvider,
    via: Sender,
    value: bigint,
    address: Address,
    endpoint: string,
    queryId?: bigint,
  ) {
    return this.sendBody(p, via, value, registerProxyBody(address, endpoint, queryId));
  }
  sendUpdateProxy(
    p: ContractProvider,
    via: Sender,
    value: bigint,
    seqno: number,
    address: Address,
    endpoint: string,
    queryId?: bigint,
  ) {
    return this.sendBody(p, via, value, updateProxyBody(seqno, address, endpoint, queryId));
  }
  sendUnregisterProxy(p: ContractProvider, via: Sender, value: bigint, seqno: number, queryId?: bigint) {
    return this.sendBody(p, via, value, unregisterProxyBody(seqno, queryId));
  }
  sendChangeOwner(p: ContractProvider, via: Sender, value: bigint, owner: Address, queryId?: bigint) {
    return this.sendBody(p, via, value, changeOwnerBody(owner, queryId));
  }

  async getRootData(provider: ContractProvider): Promise<RootData> {
    const r = (await provider.get('get_root_data', [])).stack;
    const owner = r.readAddress();
    const version = r.readNumber();
    const params = parseParams(r.readCell());
    const lists = r.readCell().beginParse();
    const set = () => lists.loadDict(Dictionary.Keys.BigUint(256), UNIT).keys();
    const proxyHashes = set();
    const workerHashes = set();
    const modelHashes = set();
    const proxiesSlice = r.readCell().beginParse();
    const lastProxySeqno = proxiesSlice.loadUint(32);
    const entries = proxiesSlice.loadDict(Dictionary.Keys.Uint(32), Dictionary.Values.Cell());
    const proxies = entries.keys().map((seqno) => {
      const s = entries.get(seqno)!.beginParse();
      return { seqno, address: s.loadAddress(), endpoint: s.loadRef().beginParse().loadStringTail() };
    });
    return { owner, version, params, proxyHashes, workerHashes, modelHashes, lastProxySeqno, proxies };
  }

  async getParams(provider: ContractProvider): Promise<RootParams> {
    return readParams((await provider.get('get_params', [])).stack);
  }

  async getIsAllowed(provider: ContractProvider, kind: HashKind, hash: bigint): Promise<boolean> {
    const r = await provider.get('is_allowed', [
      { type: 'int', value: BigInt(kind) },
      { type: 'int', value: hash },
    ]);
    return r.stack.readBoolean();
  }
}
