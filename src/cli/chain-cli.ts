import { Address } from '@ton/core';
import type { Command } from 'commander';
import { formatTon, parseTon } from '../chain/money.ts';
import { TonChain } from '../chain/ton-chain.ts';
import { WalletFileError, WalletSender } from '../chain/wallet.ts';
import type { NodeChain } from '../config/build-payments.ts';
import { ConfigError } from '../config/config.ts';

/**
 * What the money commands (`wallet`, `deploy-root`, `client deposit`, …) share: the common flags, one way
 * to report errors (one line, exit 1; configuration errors exit 2), output in TON with 9 decimals or JSON,
 * and opening the chain, the node's wallet and the root.
 */

/** A refusal or failure to tell the user in one line (exit code 1). */
export class CliError extends Error {}

/** The flags every money command takes (values as commander gives them, merged with the parent's). */
export interface ChainFlags {
  config?: string;
  dataDir?: string;
  chainEndpoint?: string;
  chainApiKey?: string;
  root?: string;
  json?: boolean;
}

/** Adds the common flags: data dir, config file, chain endpoint and API key, root, --json. */
export function chainFlags(
  cmd: Command,
  dataDirHelp = 'the node data dir (its wallet.json, key and ledger)',
  withRoot = true,
) {
  cmd
    .option('--data-dir <dir>', dataDirHelp)
    .option(
      '--config <file>',
      'JSON config file of the node (keys as the flags, camelCase); flags override it',
    )
    .option(
      '--chain-endpoint <url>',
      'toncenter-style TON API (default http://127.0.0.1:10100, the local chain)',
    )
    .option('--chain-api-key <key>', 'API key of the TON API');
  if (withRoot) cmd.option('--root <address>', 'root contract of the network');
  return cmd.option('--json', 'print the result as JSON');
}

/** The chain-related flags, as `loadConfig` takes them (unset flags do not override the config file). */
export function chainFlagValues(f: ChainFlags): Record<string, unknown> {
  return { dataDir: f.dataDir, chainEndpoint: f.chainEndpoint, chainApiKey: f.chainApiKey, root: f.root };
}

/**
 * Wraps a command's implementation: passes the options merged with the parent command's (a parent such as
 * `client` parses its own flags wherever they appear), reports an error in one line, and exits.
 */
export function run<F extends ChainFlags>(fn: (flags: F, ...args: string[]) => Promise<void>) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const positional = args.slice(0, -2) as string[];
    let code = 0;
    try {
      await fn(cmd.optsWithGlobals() as F, ...positional);
    } catch (err) {
      code = reportError(err);
    }
    process.exit(code);
  };
}

export function reportError(err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`cocoon: ${err.message}\n`);
    return 2;
  }
  process.stderr.write(`cocoon: ${describeError(err)}\n`);
  return 1;
}

/** One line: the message, plus what a toncenter-style API answered when a TonClient call failed. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const answer = (err as { response?: { data?: { error?: unknown } } }).response?.data?.error;
  const msg = answer ? `${err.message}: ${String(answer)}` : err.message;
  return msg.replace(/\s*\n\s*/g, ' ').trim();
}

// ─── output ───

export const ton = (nano: bigint) => `${formatTon(nano)} TON`;

export function out(text: string): void {
  process.stdout.write(text);
}

export function printJson(value: unknown): void {
  out(`${JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? formatTon(v) : v), 2)}\n`);
}

/** Aligned "label  value" lines, indented. */
export function rows(items: [string, string][], indent = '  '): string {
  const width = Math.max(...items.map(([k]) => k.length));
  return items.map(([k, v]) => `${indent}${k.padEnd(width)}  ${v}\n`).join('');
}

export const STATE_NAMES = ['open', 'closing', 'closed'] as const;
export const stateName = (s: number) => STATE_NAMES[s] ?? `state ${s}`;

/** A wallet address as one sends TON to it: non-bounceable (safe before it is deployed). */
export function walletText(address: Address, globalId: number): string {
  return address.toString({ bounceable: false, testOnly: globalId !== -239 });
}

/** "2025-01-01T00:00:00Z (in 60 s)" */
export function whenText(unix: number, now: number): string {
  const iso = new Date(unix * 1000).toISOString().replace('.000Z', 'Z');
  const d = unix - now;
  return d > 0 ? `${iso} (in ${d} s)` : `${iso} (${-d} s ago)`;
}

/** A positive amount of TON from the command line; a clear error otherwise. */
export function parseAmount(text: string): bigint {
  let nano: bigint;
  try {
    nano = parseTon(text);
  } catch (err) {
    throw new CliError(`invalid amount: ${(err as Error).message}`);
  }
  if (nano === 0n) throw new CliError(`invalid amount: "${text}" is zero; give an amount above 0 TON.`);
  return nano;
}

export function parseAddress(text: string, what: string): Address {
  try {
    return Address.parse(text);
  } catch {
    throw new ConfigError(`${what}: not a TON address: ${text}`);
  }
}

// ─── chain ───

export interface Reach {
  chain: TonChain;
  endpoint: string;
  globalId: number;
  /** The local dev chain (instant blocks, a faucet). */
  local: boolean;
}

/** Connects to the TON API and reads the network's global id; a clear error when it is not reachable. */
export async function reachChain(
  c: { chainEndpoint: string; chainApiKey?: string | undefined },
  timeoutMs = 30_000,
): Promise<Reach> {
  const chain = TonChain.connect({
    endpoint: c.chainEndpoint,
    ...(c.chainApiKey ? { apiKey: c.chainApiKey } : {}),
    timeoutMs,
  });
  let globalId: number;
  try {
    globalId = await chain.globalId();
  } catch (err) {
    const msg = describeError(err);
    throw new CliError(
      /fetch failed|ECONNREFUSED|ENOTFOUND|timeout/i.test(msg)
        ? `cannot reach the TON API at ${c.chainEndpoint}: is the chain running? (set it with --chain-endpoint)`
        : `cannot use the TON API at ${c.chainEndpoint}: ${msg}`,
    );
  }
  const local = await chain.localInfo().then(
    () => true,
    () => false,
  );
  return { chain, endpoint: c.chainEndpoint, globalId, local };
}

/** Chain time (unix seconds): the local chain's clock, else this machine's. */
export async function chainNow(reach: Reach): Promise<number> {
  if (reach.local) {
    const info = await reach.chain.localInfo().catch(() => null);
    if (info) return info.now;
  }
  return Math.floor(Date.now() / 1000);
}

interface NodeChainConfig {
  dataDir: string;
  chainEndpoint: string;
  chainApiKey?: string | undefined;
  root?: string | undefined;
  ledgerDurability: 'disk' | 'process';
}

/** The configured root, on a chain that answers, deployed there; each problem a one-line error. */
export async function reachRoot(
  c: Parameters<typeof reachChain>[0] & { root?: string | undefined; chainEndpoint: string },
): Promise<{ root: Address; reach: Reach }> {
  if (!c.root) {
    throw new ConfigError(
      'no root contract configured: pass --root <address> or set "root" in the --config file',
    );
  }
  const root = parseAddress(c.root, 'root');
  const reach = await reachChain(c);
  if (!(await reach.chain.isDeployed(root))) {
    throw new CliError(`no root contract is deployed at ${root.toString()} on ${c.chainEndpoint}`);
  }
  return { root, reach };
}

/** Opens the chain, the node's wallet, the root's contracts and the node's ledger; checks the root exists. */
export async function openNode(c: NodeChainConfig): Promise<{ nc: NodeChain; reach: Reach }> {
  const { root, reach } = await reachRoot(c);
  // A missing or unreadable wallet file is a configuration error (exit 2), as for the daemons.
  let nc: NodeChain;
  try {
    // Loaded here, not at start-up: it brings the payments of every role (ledger, billing) with it.
    const { openNodeChain } = await import('../config/build-payments.ts');
    nc = (await openNodeChain(c))!;
  } catch (err) {
    if (err instanceof ConfigError || !/get method|exit_code/i.test(describeError(err))) throw err;
    throw new CliError(
      `${root.toString()} does not answer as a root contract (get_params: ${describeError(err)}); check --root`,
    );
  }
  // The local chain applies a transfer at once: poll for it at its pace (as `LocalTon` does), not toncenter's.
  if (reach.local) nc.sender = new WalletSender(nc.chain.client, nc.sender.wallet, { pollIntervalMs: 100 });
  return { nc, reach };
}

/** A wallet file problem as a one-line error with the way out (a ConfigError, exit 2, if `asConfig`). */
export function walletError(err: unknown, dataDir: string, asConfig = false): unknown {
  if (!(err instanceof WalletFileError)) return err;
  const msg =
    err.code === 'wallet_not_found'
      ? `${err.message} Create one with: cocoon wallet create --data-dir ${dataDir}`
      : err.message;
  return asConfig ? new ConfigError(msg) : new CliError(msg);
}

/**
 * Waits until a message we sent has had its effect on a contract (`check` returns it). Local chain:
 * immediately or never; public networks: the message lands a few blocks after the wallet's transfer.
 */
export async function awaitEffect<T>(
  reach: Reach,
  check: () => Promise<T | null>,
  failure: string,
): Promise<T> {
  try {
    return (await reach.chain.waitFor(check, reach.local ? 3000 : 120_000, {
      intervalMs: reach.local ? 100 : 2000,
    })) as T;
  } catch {
    throw new CliError(failure);
  }
}
