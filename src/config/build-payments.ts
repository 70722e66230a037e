import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Address, toNano } from '@ton/core';
import type { NodeKey } from '../attest/identity.ts';
import { ContractState, MIN_FORWARD_VALUE, STORAGE_RESERVE } from '../chain/contracts/opcodes.ts';
import type { RootParams } from '../chain/contracts/params.ts';
import { addStakeBody, ProxyContract, raiseCloseDelayBody } from '../chain/contracts/proxy-contract.ts';
import { RootContract } from '../chain/contracts/root-contract.ts';
import { formatTon, parseTon } from '../chain/money.ts';
import { loadCodes, TonPayments } from '../chain/payments-chain.ts';
import { TonChain } from '../chain/ton-chain.ts';
import { loadWalletFile, WALLET_FILE, WalletSender, walletFromMnemonic } from '../chain/wallet.ts';

export { WALLET_FILE };

import { ClientPayments } from '../client/client-payments.ts';
import { PaymentRefusedError } from '../errors.ts';
import { backoffDelay } from '../net/peer-link.ts';
import type { Logger } from '../ops/log.ts';
import { Ledger } from '../pay/ledger.ts';
import { publicKeyToUint } from '../pay/signed-messages.ts';
import { ProxyBilling } from '../proxy/billing.ts';
import { WorkerPayments } from '../worker/worker-payments.ts';
import { ConfigError } from './config.ts';

/** What every paying node has: the chain, its wallet, the root's contracts and its ledger. */
export interface NodeChain {
  chain: TonChain;
  payments: TonPayments;
  sender: WalletSender;
  ledger: Ledger;
  root: Address;
}

interface ChainConfig {
  dataDir: string;
  chainEndpoint: string;
  chainApiKey?: string | undefined;
  root?: string | undefined;
  ledgerDurability: 'disk' | 'process';
}

/** What a node last read from the chain at boot: enough to start without it (see `chainInfo`). */
export const CHAIN_INFO_FILE = 'chain-info.json';

interface ChainInfo {
  globalId: number;
  params: RootParams;
}

/**
 * The chain's global id and the root's parameters, read from the chain and kept in `<dataDir>/chain-info.json`
 * (for this endpoint and root). When the chain does not answer at boot, the kept copy is used and the node
 * starts anyway (prices are re-read once the chain is back); a node that never reached this chain retries
 * with backoff (one line per try) until it does: it never exits for it.
 */
async function chainInfo(chain: TonChain, c: ChainConfig, root: Address, log?: Logger): Promise<ChainInfo> {
  const file = join(c.dataDir, CHAIN_INFO_FILE);
  const read = async (): Promise<ChainInfo> => {
    const [globalId, params] = await Promise.all([
      chain.globalId(),
      chain.open(RootContract.fromAddress(root)).getParams(),
    ]);
    return { globalId, params };
  };
  const kept = async (): Promise<ChainInfo | null> => {
    try {
      const j = JSON.parse(await readFile(file, 'utf8'), (_k, v) =>
        typeof v === 'string' && /^\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v,
      ) as ChainInfo & { endpoint: string; root: string };
      return j.endpoint === c.chainEndpoint && j.root === root.toString() ? j : null;
    } catch {
      return null;
    }
  };
  if (!log) return read(); // not a daemon's boot (a CLI command): the chain must answer now
  for (let failures = 0; ; failures++) {
    try {
      const info = await read();
      const text = JSON.stringify({ endpoint: c.chainEndpoint, root: root.toString(), ...info }, (_k, v) =>
        typeof v === 'bigint' ? `${v}n` : v,
      );
      await writeFile(`${file}.tmp`, text);
      await rename(`${file}.tmp`, file);
      return info;
    } catch (err) {
      const cached = await kept();
      if (cached) {
        log?.warn(
          { endpoint: c.chainEndpoint, err: (err as Error).message },
          'chain unreachable; starting from the chain info kept at the last boot',
        );
        return { globalId: cached.globalId, params: cached.params };
      }
      const delay = backoffDelay(failures, 1000, 30_000);
      log?.warn(
        { endpoint: c.chainEndpoint, err: (err as Error).message, retryInMs: Math.round(delay) },
        'chain unreachable and never reached before; retrying after backoff',
      );
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Runs `step` (a chain operation of boot) until it succeeds, with backoff and one log line per try. */
async function untilChainAnswers<T>(what: string, step: () => Promise<T>, log: Logger): Promise<T> {
  for (let failures = 0; ; failures++) {
    try {
      return await step();
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      const delay = backoffDelay(failures, 1000, 30_000);
      log.warn(
        { err: (err as Error).message, retryInMs: Math.round(delay) },
        `${what}; retrying after backoff`,
      );
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/**
 * Opens the chain and this node's wallet and ledger; null when no root is configured (payments off). With
 * `log` (a daemon booting), an unreachable chain does not stop it: see `chainInfo`.
 */
export async function openNodeChain(c: ChainConfig, log?: Logger): Promise<NodeChain | null> {
  if (!c.root) return null;
  let root: Address;
  try {
    root = Address.parse(c.root);
  } catch {
    throw new ConfigError(`root: not a TON address: ${c.root}`);
  }
  const chain = TonChain.connect({
    endpoint: c.chainEndpoint,
    ...(c.chainApiKey ? { apiKey: c.chainApiKey } : {}),
  });
  const { globalId, params } = await chainInfo(chain, c, root, log);
  const walletPath = join(c.dataDir, WALLET_FILE);
  let words: string[];
  try {
    words = await loadWalletFile(walletPath);
  } catch (err) {
    throw new ConfigError(
      `${(err as Error).message} (create one with: cocoon wallet create --data-dir ${c.dataDir})`,
    );
  }
  const wallet = await walletFromMnemonic(words, globalId);
  const sender = new WalletSender(chain.client, wallet, { pollIntervalMs: chain.pollIntervalMs });
  const payments = new TonPayments(chain.client, root, await loadCodes(), params, globalId, sender);
  const ledger = Ledger.open(join(c.dataDir, 'ledger'), c.ledgerDurability);
  return { chain, payments, sender, ledger, root };
}

/**
 * The proxy contract of this proxy node: its wallet owns it, its node key signs for it. The address
 * depends only on that identity (and the root and worker code), so a restarted proxy finds its contract
 * again whatever the root's parameters became.
 */
export function proxyContractOf(nc: NodeChain, key: NodeKey): ProxyContract {
  return ProxyContract.fromInit(
    {
      owner: nc.sender.address,
      root: nc.root,
      proxyKey: publicKeyToUint(key.publicKey),
      workerCode: nc.payments.codes.worker,
    },
    nc.payments.codes.proxy,
  );
}

/**
 * Deploys the proxy contract with its stake and the root's `proxy_close_delay` (add_stake, then
 * raise_close_delay, in one transfer) if it is not on-chain yet; raises the close delay of an existing one
 * that is below the root's (clients refuse a proxy contract whose delay is shorter).
 */
export async function ensureProxyContract(
  nc: NodeChain,
  key: NodeKey,
  stakeTon: string | undefined,
  log: Logger,
) {
  const contract = proxyContractOf(nc, key);
  const delay = nc.payments.rootParams.proxyCloseDelay;
  if (await nc.payments.isDeployed(contract.address)) {
    const d = await nc.chain.open(ProxyContract.fromAddress(contract.address)).getProxyData();
    if (d.state === ContractState.open && d.closeDelay < delay) {
      await nc.sender.send([
        { to: contract.address, value: MIN_FORWARD_VALUE, body: raiseCloseDelayBody(delay) },
      ]);
      log.info(
        { contract: contract.address.toString(), closeDelay: delay },
        'proxy contract close delay raised',
      );
    }
    return contract;
  }
  const min = nc.payments.rootParams.minProxyStake;
  const stake = stakeTon ? parseTon(stakeTon) : min;
  if (stake < min) throw new ConfigError(`stakeTon: the root requires at least ${formatTon(min)} TON`);
  await nc.sender.send([
    {
      to: contract.address,
      value: stake + MIN_FORWARD_VALUE + STORAGE_RESERVE,
      body: addStakeBody(stake),
      init: contract.init!,
    },
    { to: contract.address, value: MIN_FORWARD_VALUE, body: raiseCloseDelayBody(delay) },
  ]);
  log.info(
    { contract: contract.address.toString(), stake: formatTon(stake), closeDelay: delay },
    'proxy contract deployed',
  );
  return contract;
}

export interface ProxyBillingConfig extends ChainConfig {
  settleAmountTon: string;
  settleIntervalSeconds: number;
  payoutIntervalSeconds: number;
  billTimeoutSeconds: number;
  stakeTon?: string | undefined;
}

export async function buildProxyBilling(c: ProxyBillingConfig, key: NodeKey, log: Logger) {
  const nc = await openNodeChain(c, log);
  if (!nc) return null;
  // The proxy's contract must be on-chain before it bills anyone: boot waits for the chain (never exits).
  await untilChainAnswers('chain unreachable', () => nc.payments.refreshPrices(), log);
  const contract = await untilChainAnswers(
    'cannot check or deploy the proxy contract',
    () => ensureProxyContract(nc, key, c.stakeTon, log),
    log,
  );
  const desk = new ProxyBilling({
    ledger: nc.ledger,
    chain: nc.payments,
    proxyContract: contract.address,
    key: key.privateKey,
    log,
    settleAmount: parseTon(c.settleAmountTon),
    settleIntervalMs: c.settleIntervalSeconds * 1000,
    payoutIntervalMs: c.payoutIntervalSeconds * 1000,
    refreshIntervalMs: 5000,
    billTimeoutMs: c.billTimeoutSeconds * 1000,
  });
  await desk.start();
  return { desk, proxyContract: contract.address.toString(), nodeChain: nc };
}

/** A client pays each proxy through its own client contract: one ClientPayments per proxy, one ledger. */
export async function buildClientPayments(c: ChainConfig, key: NodeKey, log: Logger) {
  const nc = await openNodeChain(c, log);
  if (!nc) return null;
  const newPayments = () =>
    new ClientPayments({
      chain: nc.payments,
      wallet: nc.sender.address,
      ledger: nc.ledger,
      key: key.privateKey,
      log,
      checkProxy: async (proxyContract, proxyKey) => {
        const d = await nc.chain.open(ProxyContract.fromAddress(proxyContract)).getProxyData();
        if (d.proxyKey !== publicKeyToUint(proxyKey) || !d.root.equals(nc.root)) {
          throw new PaymentRefusedError(
            `proxy contract ${proxyContract.toString()} is not bound to this proxy's attested key under our root`,
            'proxy_not_bound',
          );
        }
        // Its close delay (how long workers and the pool are safe after request_close, and how long
        // commission matures) must be at least the root's.
        const want = nc.payments.rootParams.proxyCloseDelay;
        if (d.closeDelay < want) {
          throw new PaymentRefusedError(
            `proxy contract ${proxyContract.toString()} has a close delay of ${d.closeDelay} s, below the root's ${want} s`,
            'proxy_close_delay_too_short',
          );
        }
        const registry = await nc.chain.open(RootContract.fromAddress(nc.root)).getRootData();
        if (!registry.proxies.some((p) => p.address.equals(proxyContract))) {
          throw new PaymentRefusedError(
            `proxy contract ${proxyContract.toString()} is not registered in the root`,
            'proxy_not_registered',
          );
        }
      },
    });
  return { newPayments, close: () => nc.ledger.close(), nodeChain: nc };
}

export interface WorkerPaymentsConfig extends ChainConfig {
  payoutAmountTon: string;
  payoutIntervalSeconds: number;
}

export async function buildWorkerPayments(c: WorkerPaymentsConfig, log: Logger) {
  const nc = await openNodeChain(c, log);
  if (!nc) return null;
  const payments = new WorkerPayments({
    chain: nc.payments,
    owner: nc.sender.address,
    ledger: nc.ledger,
    redeemAmount: parseTon(c.payoutAmountTon),
    redeemIntervalMs: c.payoutIntervalSeconds * 1000,
    log,
  });
  return { payments, nodeChain: nc };
}

/** Gas to attach to a deposit beyond its amount (the contract returns what it does not use). */
export const DEPOSIT_GAS = toNano('0.1');
