import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Address, Cell, type Transaction, toNano } from '@ton/core';
import {
  Blockchain,
  type SandboxContract,
  type SendMessageResult,
  type TreasuryContract,
} from '@ton/sandbox';
import { ClientContract } from '../../src/chain/contracts/client-contract.ts';
import { loadContractCode } from '../../src/chain/contracts/code.ts';
import { Op } from '../../src/chain/contracts/opcodes.ts';
import type { RootParams } from '../../src/chain/contracts/params.ts';
import { ProxyContract } from '../../src/chain/contracts/proxy-contract.ts';
import { WorkerContract } from '../../src/chain/contracts/worker-contract.ts';
import {
  type ClientAuth,
  GLOBAL_ID,
  publicKeyToUint,
  type Signed,
  signClientAuth,
  signWorkerPayout,
  type WorkerPayout,
} from '../../src/pay/signed-messages.ts';

/** Shared by the contract tests: compiled code, keys, and a flat view of sandbox transactions. */

export const T0 = 1_750_000_000;
export const GAS = toNano('0.1'); // attached to operations that need no amount

export async function contractCodes(): Promise<{ root: Cell; client: Cell; worker: Cell; proxy: Cell }> {
  const [root, client, worker, proxy] = await Promise.all(
    (['root', 'client', 'worker', 'proxy'] as const).map((n) => loadContractCode(n)),
  );
  return { root: root!, client: client!, worker: worker!, proxy: proxy! };
}

export interface Keys {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public key as the contracts store it. */
  uint: bigint;
}

export function newKeys(): Keys {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, uint: publicKeyToUint(publicKey) };
}

export const TEST_PARAMS: RootParams = {
  paramsVersion: 1,
  pricePerToken: 1000n,
  workerFeePerToken: 800n,
  promptMult: 10_000,
  cachedMult: 100_000,
  completionMult: 10_000,
  reasoningMult: 10_000,
  clientCloseDelay: 3600,
  proxyCloseDelay: 86_400,
  minClientStake: toNano('1'),
  minProxyStake: toNano('10'),
};

/** One transaction, flattened for assertions. */
export interface Tx {
  from?: Address;
  to?: Address;
  op?: number;
  value: bigint;
  /** The incoming message was bounceable (a refusal sends it back). */
  bounce: boolean;
  bounced: boolean;
  aborted: boolean;
  exitCode?: number;
  gasUsed?: bigint;
  outValues: { to: Address; op?: number; value: bigint }[];
  raw: Transaction;
}

const opOf = (body: Cell): number | undefined => {
  const s = body.beginParse();
  return s.remainingBits >= 32 ? s.preloadUint(32) : undefined;
};

export function flatten(tx: Transaction): Tx {
  const msg = tx.inMessage;
  const internal = msg?.info.type === 'internal' ? msg.info : undefined;
  const d = tx.description;
  const compute = d.type === 'generic' && d.computePhase.type === 'vm' ? d.computePhase : undefined;
  const outValues = [...tx.outMessages.values()].flatMap((m) =>
    m.info.type === 'internal' ? [{ to: m.info.dest, op: opOf(m.body), value: m.info.value.coins }] : [],
  );
  return {
    from: internal?.src,
    to: internal?.dest,
    op: msg ? opOf(msg.body) : undefined,
    value: internal?.value.coins ?? 0n,
    bounce: internal?.bounce ?? false,
    bounced: internal?.bounced ?? false,
    aborted: d.type === 'generic' ? d.aborted : false,
    exitCode: compute?.exitCode,
    gasUsed: compute?.gasUsed,
    outValues,
    raw: tx,
  };
}

/** The one transaction of `result` matching the filter (fails the test if there is none). */
export function txOf(
  result: SendMessageResult,
  filter: Partial<Pick<Tx, 'from' | 'to' | 'op' | 'bounced'>>,
): Tx {
  const found = result.transactions
    .map(flatten)
    .filter(
      (t) =>
        (filter.to === undefined || (t.to?.equals(filter.to) ?? false)) &&
        (filter.from === undefined || (t.from?.equals(filter.from) ?? false)) &&
        (filter.op === undefined || t.op === filter.op) &&
        (filter.bounced === undefined || t.bounced === filter.bounced),
    );
  assert.ok(found.length > 0, `no transaction matching ${JSON.stringify(filter)}`);
  return found[0]!;
}

/** Every transaction of `result` ran without error (bounces of refused messages count as errors). A wallet
 * that got too little value to run its code (compute phase skipped) still counts: it keeps the value. */
export function assertAllSucceeded(result: SendMessageResult): void {
  for (const t of result.transactions.map(flatten)) {
    const failed = (t.aborted && t.exitCode !== undefined) || t.bounced;
    assert.ok(!failed, `transaction to ${t.to} (op ${t.op?.toString(16)}) failed: ${t.exitCode}`);
  }
}

/** `to` refused the message with `exitCode` and bounced it. */
export function assertRefused(result: SendMessageResult, to: Address, exitCode: number): void {
  const t = txOf(result, { to, bounced: false });
  assert.equal(t.exitCode, exitCode, `expected exit code ${exitCode}, got ${t.exitCode}`);
  assert.ok(t.aborted);
}

/** Total value of the messages with `op` that `to` received (and kept) in `result`. */
export function receivedBy(result: SendMessageResult, to: Address, op: number): bigint {
  return result.transactions
    .map(flatten)
    .filter((t) => t.to?.equals(to) && t.op === op && !(t.aborted && t.bounce))
    .reduce((sum, t) => sum + t.value, 0n);
}

export async function balanceOf(blockchain: Blockchain, address: Address): Promise<bigint> {
  return (await blockchain.getContract(address)).balance;
}

/** `value` with every Address as its string and every Cell as its hash, for deepEqual. */
export function plain(value: unknown): unknown {
  if (value instanceof Address) return value.toString();
  if (value instanceof Cell) return value.hash().toString('hex');
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

export { Op };

// ---------------------------------------------------------------------------------------------------------
// A small network on the emulator, for the attack tests (test/attacks/contract-*.test.ts).

export interface Net {
  blockchain: Blockchain;
  codes: Awaited<ReturnType<typeof contractCodes>>;
  proxyOwner: SandboxContract<TreasuryContract>;
  clientOwner: SandboxContract<TreasuryContract>;
  workerOwner: SandboxContract<TreasuryContract>;
  /** Submits charges and payouts (the proxy node's and the worker node's wallets alike). */
  submitter: SandboxContract<TreasuryContract>;
  stranger: SandboxContract<TreasuryContract>;
  proxyKeys: Keys;
  clientKeys: Keys;
  proxy: SandboxContract<ProxyContract>;
  client: SandboxContract<ClientContract>;
  /** The worker contract of `workerOwner`. */
  worker: SandboxContract<WorkerContract>;
  /** The worker contract of `owner` under this proxy (not deployed until its first payout). */
  workerOf(owner: Address): SandboxContract<WorkerContract>;
  /** A ClientAuth signed with the client's key for its contract. */
  auth(seqno: bigint, total: bigint): Signed<ClientAuth>;
  /** A WorkerPayout signed with the proxy key for `contract`. */
  payout(contract: Address, seqno: bigint, workerTotal: bigint, proxyTotal: bigint): Signed<WorkerPayout>;
}

/**
 * A staked proxy contract (close delay `proxyCloseDelay`), a client contract with `deposit` and its terms
 * (stake, close delay) set as the first deposit sets them, and a worker owner, at time T0.
 */
export async function startNet(
  opts: { proxyStake?: bigint; deposit?: bigint; proxyCloseDelay?: number; clientCloseDelay?: number } = {},
): Promise<Net> {
  const proxyStake = opts.proxyStake ?? toNano('10');
  const deposit = opts.deposit ?? toNano('10');
  const proxyCloseDelay = opts.proxyCloseDelay ?? TEST_PARAMS.proxyCloseDelay;
  const clientCloseDelay = opts.clientCloseDelay ?? TEST_PARAMS.clientCloseDelay;
  const codes = await contractCodes();
  const blockchain = await Blockchain.create({ config: 'slim' });
  blockchain.now = T0;
  const [proxyOwner, clientOwner, workerOwner, submitter, stranger] = await Promise.all(
    ['proxy-owner', 'client-owner', 'worker-owner', 'submitter', 'stranger'].map((n) =>
      blockchain.treasury(n),
    ),
  );
  const proxyKeys = newKeys();
  const clientKeys = newKeys();
  const proxy = blockchain.openContract(
    ProxyContract.fromInit(
      {
        owner: proxyOwner!.address,
        root: stranger!.address,
        proxyKey: proxyKeys.uint,
        workerCode: codes.worker,
      },
      codes.proxy,
    ),
  );
  assertAllSucceeded(await proxy.sendAddStake(proxyOwner!.getSender(), proxyStake + GAS, proxyStake));
  assertAllSucceeded(await proxy.sendRaiseCloseDelay(proxyOwner!.getSender(), GAS, proxyCloseDelay));
  const client = blockchain.openContract(
    ClientContract.fromInit(
      { owner: clientOwner!.address, proxy: proxy.address, clientKey: clientKeys.uint },
      codes.client,
    ),
  );
  assertAllSucceeded(await client.sendTopUp(clientOwner!.getSender(), deposit + GAS, deposit));
  assertAllSucceeded(
    await client.sendRaiseTerms(clientOwner!.getSender(), GAS, TEST_PARAMS.minClientStake, clientCloseDelay),
  );
  const workerOf = (owner: Address) =>
    blockchain.openContract(
      WorkerContract.fromInit({ owner, proxy: proxy.address, proxyKey: proxyKeys.uint }, codes.worker),
    );
  return {
    blockchain,
    codes,
    proxyOwner: proxyOwner!,
    clientOwner: clientOwner!,
    workerOwner: workerOwner!,
    submitter: submitter!,
    stranger: stranger!,
    proxyKeys,
    clientKeys,
    proxy,
    client,
    worker: workerOf(workerOwner!.address),
    workerOf,
    auth: (seqno, total) =>
      signClientAuth(
        { globalId: GLOBAL_ID.mainnet, contract: client.address, seqno, total },
        clientKeys.privateKey,
      ),
    payout: (contract, seqno, workerTotal, proxyTotal) =>
      signWorkerPayout(
        { globalId: GLOBAL_ID.mainnet, contract, seqno, workerTotal, proxyTotal },
        proxyKeys.privateKey,
      ),
  };
}
