/**
 * Wallets: a 24-word mnemonic in a private file, a WalletContractV5R1 derived from it, and a sender that
 * pushes a batch of internal messages through a TonClient in one signed transfer and waits until the
 * wallet's seqno shows it was applied. The same code runs against the local sandbox chain, testnet and
 * mainnet: the only network-specific input is the global id (config param 19) baked into the wallet id.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  type Address,
  beginCell,
  type Cell,
  external,
  internal,
  type MessageRelaxed,
  SendMode,
  type StateInit,
  storeMessage,
  type Transaction,
} from '@ton/core';
import { type KeyPair, mnemonicNew, mnemonicToPrivateKey, mnemonicValidate } from '@ton/crypto';
import { type TonClient, WalletContractV5R1 } from '@ton/ton';
import { CocoonError, GatewayTimeoutError } from '../errors.ts';
import { formatTon } from './money.ts';

// ---------------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------------

/**
 * Writes `data` to `path` so that readers see either the old file or the complete new one, never a torn
 * write, and the new content survives a crash once this returns: temp file + fsync + rename (or link, when
 * `overwrite` is false, so an existing file is never replaced) + fsync of the directory.
 */
/** A node's wallet file, in its data dir. */
export const WALLET_FILE = 'wallet.json';

export async function writeFileAtomic(
  path: string,
  data: string | Buffer,
  opts: { mode?: number; overwrite?: boolean } = {},
): Promise<void> {
  const mode = opts.mode ?? 0o600;
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    if (opts.overwrite === false) {
      await link(tmp, path); // EEXIST if the target exists: never replaced
      await rm(tmp, { force: true });
    } else {
      await rename(tmp, path);
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export class WalletFileError extends CocoonError {
  constructor(message: string, code = 'wallet_file_error') {
    super(400, 'invalid_request_error', code, message);
  }
}

/** What a wallet file holds. Keep it private: anyone with the words controls the funds. */
export interface WalletFile {
  kind: 'cocoon-wallet';
  version: 1;
  /** 24 words, TON mnemonic (not BIP-39). */
  mnemonic: string[];
  createdAt: string;
}

/** Creates a new wallet file (24 fresh words, JSON, mode 0600). Refuses to overwrite an existing file. */
export async function createWalletFile(path: string): Promise<WalletFile> {
  const file: WalletFile = {
    kind: 'cocoon-wallet',
    version: 1,
    mnemonic: await mnemonicNew(24),
    createdAt: new Date().toISOString(),
  };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, overwrite: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new WalletFileError(
        `Refusing to overwrite the existing wallet file ${path} (it may hold the only copy of a mnemonic).`,
        'wallet_exists',
      );
    }
    throw err;
  }
  return file;
}

/** Reads and checks a wallet file; returns its mnemonic words. Refuses files others can read. */
export async function loadWalletFile(path: string): Promise<string[]> {
  let text: string;
  try {
    const st = await stat(path);
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      throw new WalletFileError(
        `Wallet file ${path} is accessible by other users (mode ${(st.mode & 0o777).toString(8)}); ` +
          `run: chmod 600 ${path}`,
        'wallet_file_permissions',
      );
    }
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof WalletFileError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new WalletFileError(`Wallet file ${path} does not exist.`, 'wallet_not_found');
    }
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new WalletFileError(`Wallet file ${path} is not valid JSON.`);
  }
  const words = (parsed as Partial<WalletFile> | null)?.mnemonic;
  if (
    (parsed as Partial<WalletFile> | null)?.kind !== 'cocoon-wallet' ||
    !Array.isArray(words) ||
    !words.every((w) => typeof w === 'string')
  ) {
    throw new WalletFileError(`Wallet file ${path} is not a Cocoon wallet file (no "mnemonic" word list).`);
  }
  if (words.length !== 24 || !(await mnemonicValidate(words))) {
    throw new WalletFileError(`Wallet file ${path} holds an invalid TON mnemonic.`);
  }
  return words;
}

// ---------------------------------------------------------------------------------------------------------
// Keys and contract
// ---------------------------------------------------------------------------------------------------------

export interface Wallet {
  address: Address;
  keyPair: KeyPair;
  contract: WalletContractV5R1;
}

/** The V5R1 wallet (workchain 0, subwallet 0) of a mnemonic on the network with this global id. */
export async function walletFromMnemonic(words: string[], networkGlobalId: number): Promise<Wallet> {
  if (!(await mnemonicValidate(words))) throw new WalletFileError('Invalid TON mnemonic.');
  const keyPair = await mnemonicToPrivateKey(words);
  const contract = WalletContractV5R1.create({
    publicKey: keyPair.publicKey,
    walletId: { networkGlobalId, context: { walletVersion: 'v5r1', workchain: 0, subwalletNumber: 0 } },
  });
  return { address: contract.address, keyPair, contract };
}

// ---------------------------------------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------------------------------------

export interface OutgoingMessage {
  to: Address;
  value: bigint;
  body?: Cell;
  init?: StateInit;
  /** Default true, as TON wallets do; use false to pay an address that has no contract yet. */
  bounce?: boolean;
}

export interface TransferResult {
  /** The wallet seqno this transfer used (the wallet is at seqno + 1 afterwards). */
  seqno: number;
  /** Hash of the external message cell, as `sendBocReturnHash` reports it. */
  messageHash: Buffer;
  /** The wallet's transaction for this transfer, when the chain's history already shows it. */
  transaction: Transaction | null;
}

export class InsufficientFundsError extends CocoonError {
  constructor(message: string) {
    super(402, 'insufficient_quota', 'insufficient_funds', message);
  }
}

export class TransferFailedError extends CocoonError {
  constructor(message: string) {
    super(502, 'server_error', 'transfer_failed', message);
  }
}

export interface WalletSenderOptions {
  /** How long to wait for the seqno to advance (default 90 s). */
  timeoutMs?: number;
  /** Poll interval while waiting (default 1 s; use less against a local chain). */
  pollIntervalMs?: number;
  /** How long a signed transfer stays valid on chain (default 60 s). */
  validForSeconds?: number;
  /** Unix seconds used for the transfer's valid-until; default the system clock. */
  now?: () => number;
}

export const MAX_MESSAGES_PER_TRANSFER = 255;
/** Past valid-until plus this much (clock skew, RPC lag) a transfer that has not landed never will. */
const EXPIRY_GRACE_SECONDS = 30;
/** Per-wallet send chains, so two senders of one wallet in this process never race for a seqno. */
const walletQueues = new Map<string, Promise<unknown>>();

/**
 * Sends internal messages from one wallet through a TonClient: one signed V5R1 transfer per call, then
 * waits until the wallet's seqno advances past the one it used. Sends of one wallet are serialized.
 */
export class WalletSender {
  private readonly timeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly validForSeconds: number;
  private readonly now: () => number;

  constructor(
    private readonly client: TonClient,
    readonly wallet: Wallet,
    opts: WalletSenderOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 90_000;
    this.pollIntervalMs = opts.pollIntervalMs ?? 1000;
    this.validForSeconds = opts.validForSeconds ?? 60;
    this.now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  }

  get address(): Address {
    return this.wallet.address;
  }

  /** The wallet's seqno now (0 before it is deployed). */
  async seqno(): Promise<number> {
    const state = await this.client.getContractState(this.wallet.address);
    if (state.state !== 'active') return 0;
    const res = await this.client.runMethod(this.wallet.address, 'seqno');
    return res.stack.readNumber();
  }

  /** Sends all `messages` in one transfer and resolves once the chain has applied it. */
  send(messages: OutgoingMessage[]): Promise<TransferResult> {
    const key = this.wallet.address.toRawString();
    const prev = walletQueues.get(key) ?? Promise.resolve();
    const run = prev.then(
      () => this.sendNow(messages),
      () => this.sendNow(messages),
    );
    const tail = run.catch(() => undefined);
    walletQueues.set(key, tail);
    void tail.then(() => {
      if (walletQueues.get(key) === tail) walletQueues.delete(key);
    });
    return run;
  }

  private async sendNow(messages: OutgoingMessage[]): Promise<TransferResult> {
    if (messages.length === 0) throw new TransferFailedError('Nothing to send: the message list is empty.');
    if (messages.length > MAX_MESSAGES_PER_TRANSFER) {
      throw new TransferFailedError(
        `A V5 wallet transfer carries at most ${MAX_MESSAGES_PER_TRANSFER} messages, got ${messages.length}.`,
      );
    }
    let total = 0n;
    for (const m of messages) {
      if (m.value < 0n) throw new TransferFailedError('Message values must not be negative.');
      total += m.value;
    }
    const address = this.wallet.address;
    const state = await this.client.getContractState(address);
    if (state.balance < total) {
      throw new InsufficientFundsError(
        `Wallet ${address.toString()} holds ${formatTon(state.balance)} TON; this transfer needs ` +
          `${formatTon(total)} TON plus fees.`,
      );
    }
    let seqno = 0;
    if (state.state === 'active') {
      seqno = (await this.client.runMethod(address, 'seqno')).stack.readNumber();
    } else if (state.balance === 0n) {
      throw new InsufficientFundsError(`Wallet ${address.toString()} is not funded yet.`);
    }

    const validUntil = this.now() + this.validForSeconds;
    const outgoing: MessageRelaxed[] = messages.map((m) =>
      internal({ to: m.to, value: m.value, body: m.body, init: m.init, bounce: m.bounce ?? true }),
    );
    const body = this.wallet.contract.createTransfer({
      seqno,
      secretKey: this.wallet.keyPair.secretKey,
      messages: outgoing,
      // V5 requires IGNORE_ERRORS for externally signed transfers.
      sendMode: SendMode.PAY_GAS_SEPARATELY + SendMode.IGNORE_ERRORS,
      timeout: validUntil,
    });
    const ext = external({
      to: address,
      init: state.state === 'active' ? undefined : this.wallet.contract.init,
      body,
    });
    const boc = beginCell().store(storeMessage(ext)).endCell();
    await this.client.sendFile(boc.toBoc());

    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      await sleep(this.pollIntervalMs);
      let current: number | null = null;
      try {
        current = await this.seqno();
      } catch {
        // transient RPC trouble: keep polling until the deadline
      }
      if (current !== null && current > seqno) break;
      if (Date.now() >= deadline) {
        throw new GatewayTimeoutError(
          `Wallet ${address.toString()}: transfer with seqno ${seqno} was not applied within ` +
            `${Math.round(this.timeoutMs / 1000)} s (seqno is still ${current ?? 'unknown'}); it can still ` +
            `land until unix time ${validUntil}, so check the seqno before sending again.`,
        );
      }
      if (current !== null && this.now() > validUntil + EXPIRY_GRACE_SECONDS) {
        throw new TransferFailedError(
          `Wallet ${address.toString()}: transfer with seqno ${seqno} expired without being applied.`,
        );
      }
    }

    const transaction = await this.findTransaction(body.hash()).catch(() => null);
    if (transaction) checkApplied(transaction, messages.length, address);
    return { seqno, messageHash: boc.hash(), transaction };
  }

  /** The wallet's transaction whose external message carried this transfer body, if history shows it. */
  private async findTransaction(bodyHash: Buffer): Promise<Transaction | null> {
    const txs = await this.client.getTransactions(this.wallet.address, { limit: 10, archival: false });
    for (const tx of txs) {
      const msg = tx.inMessage;
      if (msg?.info.type === 'external-in' && msg.body.hash().equals(bodyHash)) return tx;
    }
    return null;
  }
}

function checkApplied(tx: Transaction, expected: number, address: Address): void {
  const d = tx.description;
  if (d.type !== 'generic') return;
  const where = `Wallet ${address.toString()} (tx lt ${tx.lt})`;
  if (d.computePhase.type !== 'vm' || !d.computePhase.success) {
    const code = d.computePhase.type === 'vm' ? d.computePhase.exitCode : d.computePhase.reason;
    throw new TransferFailedError(`${where}: the wallet rejected the transfer (compute phase: ${code}).`);
  }
  const action = d.actionPhase;
  if (!action?.success) {
    throw new TransferFailedError(
      `${where}: the action phase failed (result code ${action?.resultCode ?? 'none'}); nothing was sent.`,
    );
  }
  if (action.messagesCreated < expected) {
    throw new TransferFailedError(
      `${where}: only ${action.messagesCreated} of ${expected} messages were sent ` +
        `(${action.skippedActions} skipped: balance too low for value plus fees?).`,
    );
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
