/**
 * The local chain: @ton/sandbox's `Blockchain` (the real TVM emulator, real fees, real config) holding the
 * state of a private, single-node "network" for development. Dev only: it is not a real network, has a
 * faucet, and anyone who can reach its server can mint coins.
 *
 * Guarantees:
 *  - one operation at a time (a promise queue), so every read sees a whole applied message chain;
 *  - `sendBoc` applies the external message and every transaction it causes, then persists the state
 *    (temp file + fsync + rename) BEFORE it returns: an acknowledged transaction survives kill -9;
 *    if the message is rejected or the write fails, the state is rolled back as if it never arrived;
 *  - chain time comes from an injected clock (unix seconds) and never goes backwards.
 *
 * Daemons never use this class directly: they reach it through `startLocalChainServer` and TonClient,
 * exactly as they reach testnet or mainnet.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  Address,
  beginCell,
  Cell,
  Dictionary,
  external,
  internal,
  loadMessage,
  loadTransaction,
  type Message,
  SendMode,
  storeMessage,
  type Transaction,
  type TupleItem,
} from '@ton/core';
import {
  Blockchain,
  type BlockchainSnapshot,
  type BlockchainTransaction,
  defaultConfig,
  GetMethodError,
  snapshotFromSerializable,
  snapshotToSerializable,
} from '@ton/sandbox';
import { writeFileAtomic } from './wallet.ts';

export const LOCAL_CHAIN_LABEL = 'local sandbox chain — dev only, not a real network';
/** Global id used when the config has no param 19 (the sandbox ships mainnet's config: -239). */
export const DEFAULT_GLOBAL_ID = -239;

const STATE_FORMAT = 'cocoon-local-chain';
const FAUCET_SEED = 'cocoon-dev-faucet';
const NANO = 1_000_000_000n;
/** The dev faucet refills itself (it is a sandbox treasury) whenever it runs low. */
const FAUCET_REFILL = 1_000_000_000n * NANO;
/** One faucet call mints at most this much. */
export const FAUCET_MAX = 1_000_000n * NANO;

/** An error with the HTTP status toncenter would answer it with. */
export class LocalChainError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'LocalChainError';
  }
}

export interface LocalChainOptions {
  /** Where the state lives between runs; without it the chain is in memory only. */
  stateFile?: string;
  /** Unix seconds; default the system clock. Chain time is max(clock, last chain time). */
  clock?: () => number;
  /** Recent transactions kept per address for getTransactions (default 100, toncenter's page limit). */
  maxTransactionsPerAddress?: number;
  /** Addresses with kept history (default 10 000; the least recently active are dropped first). */
  maxHistoryAddresses?: number;
}

export type AccountStateName = 'active' | 'uninitialized' | 'frozen';

export interface AccountInfo {
  address: Address;
  balance: bigint;
  state: AccountStateName;
  code: Cell | null;
  data: Cell | null;
  /** Hash of the frozen state, for frozen accounts. */
  frozenHash: Buffer | null;
  lastTransaction: { lt: bigint; hash: Buffer } | null;
}

export interface GetMethodOutcome {
  exitCode: number;
  gasUsed: bigint;
  stack: TupleItem[];
}

export interface SendBocResult {
  /** Hash of the external message cell. */
  hash: Buffer;
  /** TEP-467 normalized hash of the external message (independent of signature-free fields). */
  normalizedHash: Buffer;
  /** Every transaction the message caused, in execution order. */
  transactions: Transaction[];
}

export interface FeeEstimate {
  inFwdFee: bigint;
  storageFee: bigint;
  gasFee: bigint;
  fwdFee: bigint;
}

export interface TransactionQuery {
  limit: number;
  /** Start from this transaction (inclusive); needs `hash`. */
  lt?: bigint;
  hash?: Buffer;
  /** Stop before transactions with lt <= toLt. */
  toLt?: bigint;
}

type SerializableSnapshot = ReturnType<typeof snapshotToSerializable>;

interface StateFile {
  format: typeof STATE_FORMAT;
  version: 1;
  label: string;
  blockSeqno: number;
  savedAt: number;
  /** A sandbox snapshot without transaction history; networkConfig "default" = the sandbox default. */
  snapshot: SerializableSnapshot;
}

const systemClock = () => Math.floor(Date.now() / 1000);

export class LocalChain {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly recent = new Map<string, Transaction[]>();
  private readonly maxTx: number;
  private readonly maxAddresses: number;
  private configDict: Dictionary<number, Cell>;
  private closed = false;

  private constructor(
    private readonly bc: Blockchain,
    private readonly clock: () => number,
    private readonly stateFile: string | undefined,
    private readonly releaseLock: (() => Promise<void>) | null,
    private blockSeqno: number,
    private lastNow: number,
    opts: LocalChainOptions,
  ) {
    this.maxTx = opts.maxTransactionsPerAddress ?? 100;
    this.maxAddresses = opts.maxHistoryAddresses ?? 10_000;
    this.configDict = loadConfigDict(bc.config);
  }

  /** A fresh chain, or the one saved in `stateFile` if that exists. Locks the state file until `close()`. */
  static async open(opts: LocalChainOptions = {}): Promise<LocalChain> {
    const clock = opts.clock ?? systemClock;
    const releaseLock = opts.stateFile ? await acquireLock(opts.stateFile) : null;
    try {
      if (opts.stateFile) await removeStaleTemps(opts.stateFile);
      const bc = await Blockchain.create();
      const saved = opts.stateFile ? await readStateFile(opts.stateFile) : null;
      if (saved) {
        const snap = saved.snapshot;
        await bc.loadFrom(
          snapshotFromSerializable({
            ...snap,
            networkConfig: snap.networkConfig === 'default' ? defaultConfig : snap.networkConfig,
            transactions: [],
          }),
        );
      }
      bc.verbosity = { print: false, blockchainLogs: false, vmLogs: 'none', debugLogs: false };
      const chain = new LocalChain(
        bc,
        clock,
        opts.stateFile,
        releaseLock,
        saved?.blockSeqno ?? 1,
        saved?.snapshot.time ?? 0,
        opts,
      );
      if (opts.stateFile && !saved) await chain.persist();
      return chain;
    } catch (err) {
      await releaseLock?.();
      throw err;
    }
  }

  /** Config param 19 of the chain's config, or -239 when absent. */
  get globalId(): number {
    const p19 = this.configDict.get(19);
    return p19 ? p19.beginParse().loadInt(32) : DEFAULT_GLOBAL_ID;
  }

  /** A counter of applied messages, standing in for the masterchain seqno. */
  get seqno(): number {
    return this.blockSeqno;
  }

  /** Chain time now (unix seconds): the clock, but never earlier than the last operation. */
  now(): number {
    return Math.max(Math.floor(this.clock()), this.lastNow);
  }

  get label(): string {
    return LOCAL_CHAIN_LABEL;
  }

  /** Applies an external message (a wallet transfer) and everything it causes; persisted on return. */
  sendBoc(boc: Buffer): Promise<SendBocResult> {
    return this.enqueue(async () => {
      const cell = parseSingleCell(boc);
      let msg: Message;
      try {
        msg = loadMessage(cell.beginParse());
      } catch (err) {
        throw new LocalChainError(422, `Cannot parse message: ${describe(err)}`);
      }
      if (msg.info.type !== 'external-in') {
        throw new LocalChainError(422, 'Only external-in messages can be sent to the network.');
      }
      const transactions = await this.applyExternal(cell);
      return { hash: cell.hash(), normalizedHash: normalizedHash(msg), transactions };
    });
  }

  /**
   * DEV ONLY: mints `amount` nanoton to `address` from a sandbox treasury (non-bounceable, so it reaches
   * addresses without a contract). Returns the resulting transactions.
   */
  faucet(address: Address, amount: bigint): Promise<Transaction[]> {
    return this.enqueue(async () => {
      if (amount <= 0n) throw new LocalChainError(400, 'Faucet amount must be positive.');
      if (amount > FAUCET_MAX) {
        throw new LocalChainError(400, `Faucet amount is capped at ${FAUCET_MAX} nanoton per call.`);
      }
      this.tick();
      const treasury = await this.bc.treasury(FAUCET_SEED);
      const account = await this.bc.getContract(treasury.address);
      if (account.balance < amount + NANO) account.balance = amount + FAUCET_REFILL;
      const body = treasury.createTransfer({
        messages: [internal({ to: address, value: amount, bounce: false })],
        sendMode: SendMode.PAY_GAS_SEPARATELY,
      });
      const msg = beginCell()
        .store(storeMessage(external({ to: treasury.address, body })))
        .endCell();
      return this.applyExternal(msg);
    });
  }

  async getAccount(address: Address): Promise<AccountInfo> {
    return this.enqueue(async () => {
      this.tick();
      const c = await this.bc.getContract(address);
      const acc = c.account.account;
      const st = acc?.storage.state;
      return {
        address,
        balance: acc?.storage.balance.coins ?? 0n,
        state: !st || st.type === 'uninit' ? 'uninitialized' : st.type === 'active' ? 'active' : 'frozen',
        code: st?.type === 'active' ? (st.state.code ?? null) : null,
        data: st?.type === 'active' ? (st.state.data ?? null) : null,
        frozenHash: st?.type === 'frozen' ? uint256(st.stateHash) : null,
        lastTransaction:
          c.lastTransactionLt > 0n ? { lt: c.lastTransactionLt, hash: uint256(c.lastTransactionHash) } : null,
      };
    });
  }

  /** Runs a get method. Non-active accounts give exit code -13, failing methods their exit code. */
  runGetMethod(
    address: Address,
    method: string | number,
    stack: TupleItem[] = [],
  ): Promise<GetMethodOutcome> {
    return this.enqueue(async () => {
      const now = this.tick();
      const c = await this.bc.getContract(address);
      if (c.account.account?.storage.state.type !== 'active')
        return { exitCode: -13, gasUsed: 0n, stack: [] };
      try {
        const r = await this.bc.runGetMethod(address, method, stack, { now });
        return { exitCode: r.exitCode, gasUsed: r.gasUsed, stack: r.stack };
      } catch (err) {
        if (err instanceof GetMethodError) return { exitCode: err.exitCode, gasUsed: err.gasUsed, stack: [] };
        throw new LocalChainError(500, `Get method failed: ${describe(err)}`);
      }
    });
  }

  /** Emulates an external message to `address` without keeping any effect; reports its fees. */
  estimateFee(
    address: Address,
    args: { body: Cell; initCode?: Cell | null; initData?: Cell | null; ignoreChksig?: boolean },
  ): Promise<FeeEstimate> {
    return this.enqueue(async () => {
      this.tick();
      const init = args.initCode && args.initData ? { code: args.initCode, data: args.initData } : undefined;
      const msg = beginCell()
        .store(storeMessage(external({ to: address, init, body: args.body })))
        .endCell();
      const before = this.bc.snapshot();
      try {
        const it = await this.bc.sendMessageIter(msg, {
          allowParallel: true,
          ignoreChksig: args.ignoreChksig ?? true,
        });
        const first = await it.next();
        if (first.done || !first.value) throw new Error('no transaction');
        return feesOf(first.value);
      } catch (err) {
        throw new LocalChainError(
          500,
          `LITE_SERVER_UNKNOWN: cannot apply external message to current state : ${describe(err)}`,
        );
      } finally {
        await this.bc.loadFrom(before);
        this.pruneHistory();
      }
    });
  }

  /** Recent transactions of an address, newest first (kept in memory, bounded, not persisted). */
  getTransactions(address: Address, q: TransactionQuery): Transaction[] {
    const list = this.recent.get(address.toRawString()) ?? [];
    let start = 0;
    if (q.lt !== undefined) {
      start = list.findIndex((tx) => tx.lt <= q.lt!);
      if (start === -1) return [];
      const tx = list[start]!;
      if (tx.lt === q.lt && q.hash && !tx.hash().equals(q.hash)) {
        throw new LocalChainError(500, `LITE_SERVER_UNKNOWN: transaction ${q.lt} has a different hash`);
      }
    }
    const out: Transaction[] = [];
    for (let i = start; i < list.length && out.length < q.limit; i++) {
      const tx = list[i]!;
      if (q.toLt !== undefined && q.toLt > 0n && tx.lt <= q.toLt) break;
      out.push(tx);
    }
    return out;
  }

  /** Raw config parameter cell, or null. */
  getConfigParam(id: number): Cell | null {
    return this.configDict.get(id) ?? null;
  }

  /** Waits for queued operations, then releases the state file. Later calls fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    await this.releaseLock?.();
  }

  // -------------------------------------------------------------------------------------------------------

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new LocalChainError(503, 'The local chain is closed.'));
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private tick(): number {
    const t = this.now();
    this.lastNow = t;
    this.bc.now = t;
    return t;
  }

  private async applyExternal(msg: Cell): Promise<Transaction[]> {
    this.tick();
    this.bc.random = randomBytes(32);
    const before = this.bc.snapshot();
    const done: BlockchainTransaction[] = [];
    try {
      const it = await this.bc.sendMessageIter(msg, { allowParallel: true });
      for await (const tx of it) done.push(tx);
    } catch (err) {
      await this.bc.loadFrom(before);
      this.pruneHistory();
      throw new LocalChainError(
        500,
        `LITE_SERVER_UNKNOWN: cannot apply external message to current state : ${describe(err)}`,
      );
    }
    this.pruneHistory();
    this.blockSeqno++;
    if (this.stateFile) {
      try {
        await this.persist();
      } catch (err) {
        await this.bc.loadFrom(before);
        this.pruneHistory();
        this.blockSeqno--;
        throw new LocalChainError(
          503,
          `Could not save the chain state (message not applied): ${describe(err)}`,
        );
      }
    }
    const txs = done.map((tx) => loadTransaction(tx.raw.beginParse()));
    this.record(txs);
    return txs;
  }

  /** The sandbox keeps every transaction forever; we keep our own bounded history instead. */
  private pruneHistory(): void {
    (this.bc as unknown as { transactions: unknown[] }).transactions = [];
  }

  private record(txs: Transaction[]): void {
    for (const tx of txs) {
      const dest = tx.inMessage?.info.dest;
      if (!Address.isAddress(dest)) continue;
      const key = dest.toRawString();
      const list = this.recent.get(key) ?? [];
      this.recent.delete(key);
      list.unshift(tx);
      if (list.length > this.maxTx) list.length = this.maxTx;
      this.recent.set(key, list);
      if (this.recent.size > this.maxAddresses) {
        const oldest = this.recent.keys().next().value;
        if (oldest !== undefined) this.recent.delete(oldest);
      }
    }
  }

  private async persist(): Promise<void> {
    if (!this.stateFile) return;
    const snap: BlockchainSnapshot = this.bc.snapshot();
    const serial = snapshotToSerializable({
      ...snap,
      contracts: snap.contracts.filter((c) => !isEmptyAccount(c.account)),
      transactions: [],
    });
    const file: StateFile = {
      format: STATE_FORMAT,
      version: 1,
      label: LOCAL_CHAIN_LABEL,
      blockSeqno: this.blockSeqno,
      savedAt: this.lastNow,
      snapshot: {
        ...serial,
        networkConfig: serial.networkConfig === defaultConfig ? 'default' : serial.networkConfig,
      },
    };
    await writeFileAtomic(this.stateFile, JSON.stringify(file), { mode: 0o600 });
  }
}

// ---------------------------------------------------------------------------------------------------------

function loadConfigDict(config: Cell): Dictionary<number, Cell> {
  return Dictionary.loadDirect(Dictionary.Keys.Int(32), Dictionary.Values.Cell(), config);
}

function parseSingleCell(boc: Buffer): Cell {
  let cells: Cell[];
  try {
    cells = Cell.fromBoc(boc);
  } catch (err) {
    throw new LocalChainError(422, `Cannot parse BOC: ${describe(err)}`);
  }
  if (cells.length !== 1)
    throw new LocalChainError(422, `Expected a BOC with one root, got ${cells.length}.`);
  return cells[0]!;
}

/** TEP-467: hash of the external message with src, import_fee and init dropped and the body as a ref. */
export function normalizedHash(msg: Message): Buffer {
  if (msg.info.type !== 'external-in') throw new Error('normalized hash is defined for external-in messages');
  return beginCell()
    .storeUint(0b10, 2)
    .storeUint(0, 2) // src: addr_none
    .storeAddress(msg.info.dest)
    .storeCoins(0)
    .storeBit(false) // no init
    .storeBit(true)
    .storeRef(msg.body)
    .endCell()
    .hash();
}

function feesOf(tx: Transaction): FeeEstimate {
  const d = tx.description;
  if (d.type !== 'generic') return { inFwdFee: 0n, storageFee: 0n, gasFee: 0n, fwdFee: 0n };
  const storageFee = d.storagePhase?.storageFeesCollected ?? 0n;
  const gasFee = d.computePhase.type === 'vm' ? d.computePhase.gasFees : 0n;
  const fwdFee = d.actionPhase?.totalFwdFees ?? 0n;
  const actionFees = d.actionPhase?.totalActionFees ?? 0n;
  const rest = tx.totalFees.coins - storageFee - gasFee - actionFees;
  return { inFwdFee: rest > 0n ? rest : 0n, storageFee, gasFee, fwdFee };
}

function isEmptyAccount(a: BlockchainSnapshot['contracts'][number]['account']): boolean {
  if (a.lastTransactionLt !== 0n) return false;
  const acc = a.account;
  return !acc || (acc.storage.balance.coins === 0n && acc.storage.state.type === 'uninit');
}

function uint256(v: bigint): Buffer {
  return Buffer.from(v.toString(16).padStart(64, '0'), 'hex');
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const e = err as Error & { exitCode?: number };
    return e.exitCode !== undefined ? `${e.message} (exit code ${e.exitCode})` : e.message;
  }
  return String(err);
}

async function readStateFile(path: string): Promise<StateFile | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let parsed: Partial<StateFile>;
  try {
    parsed = JSON.parse(text) as Partial<StateFile>;
  } catch (err) {
    throw new LocalChainError(500, `Local chain state file ${path} is not valid JSON: ${describe(err)}`);
  }
  if (parsed.format !== STATE_FORMAT || parsed.version !== 1 || !parsed.snapshot) {
    throw new LocalChainError(500, `${path} is not a local chain state file (format ${STATE_FORMAT} v1).`);
  }
  return parsed as StateFile;
}

/** Temp files a crash left behind mid-write (we hold the lock, so nobody else is writing). */
async function removeStaleTemps(stateFile: string): Promise<void> {
  const dir = dirname(stateFile);
  const prefix = `${basename(stateFile)}.`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (name.startsWith(prefix) && name.endsWith('.tmp')) await rm(join(dir, name), { force: true });
  }
}

/** One process per state file: `<stateFile>.lock` holds the owner's pid; stale locks are taken over. */
async function acquireLock(stateFile: string): Promise<() => Promise<void>> {
  const lockPath = `${stateFile}.lock`;
  await mkdir(dirname(stateFile), { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(lockPath, 'wx', 0o600);
      try {
        await fh.writeFile(`${process.pid}\n`);
      } finally {
        await fh.close();
      }
      return async () => {
        await rm(lockPath, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number.parseInt((await readFile(lockPath, 'utf8').catch(() => '')).trim(), 10);
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
        throw new LocalChainError(
          409,
          `Local chain state ${stateFile} is in use by process ${pid} (lock file ${lockPath}).`,
        );
      }
      await rm(lockPath, { force: true });
    }
  }
  throw new LocalChainError(409, `Could not lock ${lockPath}.`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
