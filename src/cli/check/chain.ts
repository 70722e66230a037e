import { join } from 'node:path';
import type { Address } from '@ton/core';
import { RootContract, type RootData } from '../../chain/contracts/root-contract.ts';
import { loadWalletFile, WALLET_FILE, WalletFileError, walletFromMnemonic } from '../../chain/wallet.ts';
import { describeError, type Reach, reachChain, ton, walletText } from '../chain-cli.ts';
import { parseRoot } from './identity.ts';
import type { CheckList } from './report.ts';

/** The chain, the root and what it publishes, once they answered. */
export interface ChainContext {
  reach: Reach;
  root: Address;
  data: RootData;
}

interface ChainConfig {
  chainEndpoint: string;
  chainApiKey?: string | undefined;
  root?: string | undefined;
}

const hex = (n: bigint) => n.toString(16).padStart(64, '0');

/** The root's allow-lists as hex sets (as RootPolicy enforces them: exactly, an empty list allows nothing). */
export function rootLists(data: RootData) {
  return {
    proxyImages: new Set(data.proxyHashes.map(hex)),
    workerImages: new Set(data.workerHashes.map(hex)),
    models: new Set(data.modelHashes.map(hex)),
  };
}

const isLoopbackUrl = (url: string) => /^https?:\/\/(127\.|localhost|\[::1\])/.test(url);

/** The TON API answers, and the configured root is a root contract: adds the `chain` checks. */
export async function checkChain(
  list: CheckList,
  c: ChainConfig,
  timeoutMs: number,
): Promise<{ reach: Reach | null; ctx: ChainContext | null }> {
  const section = 'chain';
  const none = { reach: null, ctx: null };
  let reach: Reach;
  try {
    reach = await reachChain(c, timeoutMs);
  } catch (err) {
    const port = /:(\d+)/.exec(c.chainEndpoint.replace(/^https?:\/\//, ''))?.[1];
    list.add({
      section,
      name: 'TON API',
      status: 'fail',
      code: 'chain_unreachable',
      message: describeError(err),
      fix: isLoopbackUrl(c.chainEndpoint)
        ? `start the local chain (cocoon chain${port ? ` --port ${port}` : ''}), or set "chainEndpoint" in the config (--config) to a reachable TON API`
        : 'check "chainEndpoint" (and "chainApiKey") in the config (--config): the TON API must answer from here',
    });
    return none;
  }
  list.add({
    section,
    name: 'TON API',
    status: 'ok',
    message: `${reach.endpoint} answers (${reach.local ? 'local dev chain, ' : ''}global id ${reach.globalId})`,
  });
  const root = parseRoot(c.root!);
  if (!root) {
    list.add({
      section,
      name: 'root',
      status: 'fail',
      code: 'bad_root',
      message: `not a TON address: ${c.root}`,
      fix: 'set "root" in the config (--config) to the root contract of the network (cocoon root show prints it)',
    });
    return { reach, ctx: null };
  }
  if (!(await reach.chain.isDeployed(root).catch(() => false))) {
    list.add({
      section,
      name: 'root',
      status: 'fail',
      code: 'root_not_deployed',
      message: `no contract is deployed at ${root.toString()} on ${reach.endpoint}`,
      fix: `check "root" in the config; the network's root is what cocoon root show --root <address> --chain-endpoint ${reach.endpoint} describes (governance deploys one with cocoon root deploy)`,
    });
    return { reach, ctx: null };
  }
  let data: RootData;
  try {
    data = await reach.chain.open(RootContract.fromAddress(root)).getRootData();
  } catch (err) {
    list.add({
      section,
      name: 'root',
      status: 'fail',
      code: 'not_a_root',
      message: `${root.toString()} does not answer as a root contract: ${describeError(err)}`,
      fix: 'check "root" in the config',
    });
    return { reach, ctx: null };
  }
  list.add({
    section,
    name: 'root',
    status: 'ok',
    message:
      `${root.toString()} (version ${data.version}; allows ${data.proxyHashes.length} proxy images, ` +
      `${data.workerHashes.length} worker images, ${data.modelHashes.length} models; ${data.proxies.length} proxies registered)`,
  });
  return { reach, ctx: { reach, root, data } };
}

/** The governance command that puts a hash on one of the root's lists. */
export function allowFix(kind: 'worker-image' | 'proxy-image' | 'model', hash: string, ctx: ChainContext) {
  return (
    `governance (the wallet that owns the root) runs: cocoon root allow ${kind} ${hash} ` +
    `--root ${ctx.root.toString()} --chain-endpoint ${ctx.reach.endpoint}`
  );
}

/** How to put `amount` TON into a wallet: the faucet on the local chain, a transfer elsewhere. */
export function fundFix(reach: Reach, dataDir: string, amount: string, address: string): string {
  return reach.local
    ? `cocoon wallet fund ${amount} --data-dir ${dataDir} --chain-endpoint ${reach.endpoint}`
    : `send at least ${amount} TON to ${address} from another wallet`;
}

export interface WalletFacts {
  file: string;
  address: string | null;
  rawAddress: string | null;
  /** Nanoton; null when the chain did not answer. */
  balance: bigint | null;
  status: string | null;
}

/**
 * The node's wallet (what the daemon opens when a root is configured): its file, address and balance.
 * Adds a `wallet` check for a missing or unreadable file; the caller judges the balance.
 */
export async function checkWallet(
  list: CheckList,
  dataDir: string,
  reach: Reach | null,
  /** TON the node needs to start with (the fix funds that much). */
  fundAmount: string,
): Promise<WalletFacts | null> {
  const file = join(dataDir, WALLET_FILE);
  let words: string[];
  try {
    words = await loadWalletFile(file);
  } catch (err) {
    const missing = err instanceof WalletFileError && err.code === 'wallet_not_found';
    list.add({
      section: 'wallet',
      name: 'wallet',
      status: 'fail',
      code: missing ? 'wallet_not_found' : 'wallet_unreadable',
      message: missing
        ? `no wallet file at ${file}: with a root configured the daemon does not start without one`
        : (err as Error).message,
      fix: missing
        ? reach?.local
          ? `cocoon wallet fund ${fundAmount} --data-dir ${dataDir} --chain-endpoint ${reach.endpoint} (creates it on the local chain)`
          : `cocoon wallet create --data-dir ${dataDir}, then send at least ${fundAmount} TON to the address it prints`
        : `fix or replace ${file}`,
    });
    return null;
  }
  if (!reach) {
    list.add({
      section: 'wallet',
      name: 'wallet',
      status: 'info',
      message: `${file}; its address and balance are unknown until the chain answers`,
    });
    return { file, address: null, rawAddress: null, balance: null, status: null };
  }
  const w = await walletFromMnemonic(words, reach.globalId);
  const address = walletText(w.address, reach.globalId);
  try {
    const state = await reach.chain.client.getContractState(w.address);
    const status =
      state.state === 'active' ? 'deployed' : state.balance > 0n ? 'funded, not deployed yet' : 'empty';
    return { file, address, rawAddress: w.address.toRawString(), balance: state.balance, status };
  } catch (err) {
    list.add({
      section: 'wallet',
      name: 'wallet',
      status: 'warn',
      message: `${address}: balance unknown (${describeError(err)})`,
    });
    return { file, address, rawAddress: w.address.toRawString(), balance: null, status: null };
  }
}

export const walletLine = (w: WalletFacts) =>
  `${w.address} balance ${w.balance === null ? 'unknown' : ton(w.balance)}${w.status ? ` (${w.status})` : ''}`;
