import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Address, Cell, type Transaction, toNano } from '@ton/core';
import type { Blockchain, SendMessageResult } from '@ton/sandbox';
import { loadContractCode } from '../../src/chain/contracts/code.ts';
import { Op } from '../../src/chain/contracts/opcodes.ts';
import type { RootParams } from '../../src/chain/contracts/params.ts';
import { publicKeyToUint } from '../../src/pay/signed-messages.ts';

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
