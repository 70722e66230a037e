import { Address } from '@ton/core';
import { loadOrCreateNodeKey } from '../attest/identity.ts';
import { StaticPolicy } from '../attest/policy.ts';
import type { TrustSetup } from '../attest/trust-setup.ts';
import { ProxyContract, proxyCommissionAt } from '../chain/contracts/proxy-contract.ts';
import { RootContract } from '../chain/contracts/root-contract.ts';
import { RootPolicy } from '../chain/root-policy.ts';
import { TonChain } from '../chain/ton-chain.ts';
import { ClientNode } from '../client/client-node.ts';
import type { ProxyAddress } from '../client/proxy-pool.ts';
import type { Logger } from '../ops/log.ts';
import { createLogger } from '../ops/log.ts';
import { cachedRead, type NodeMetrics, tonGauge } from '../ops/metrics.ts';
import { ProxyNode } from '../proxy/proxy-node.ts';
import { WorkerNode } from '../worker/worker-node.ts';
import {
  buildClientPayments,
  buildProxyBilling,
  buildWorkerPayments,
  type NodeChain,
} from './build-payments.ts';
import {
  type ClientConfig,
  ConfigError,
  hostPortSchema,
  type ProxyConfig,
  type WorkerConfig,
} from './config.ts';
import { type TrustModeConfig, trustModeOf } from './trust-mode.ts';

/** Builds each daemon from its validated configuration. */

interface TrustConfig extends TrustModeConfig {
  trustFromRoot: boolean;
  root?: string | undefined;
  chainEndpoint: string;
  chainApiKey?: string | undefined;
  allowedProxyImages?: string[] | undefined;
  allowedWorkerImages?: string[] | undefined;
  allowedModels?: string[] | undefined;
  certValiditySeconds: number;
}

/** The trust mode plus its allow-lists: from the root contract, from config, or none (dev). */
async function trustFor(c: TrustConfig, log: Logger): Promise<TrustSetup> {
  const setup = trustModeOf(c);
  const base = { ...setup, certValidityMs: c.certValiditySeconds * 1000 };
  if (c.trustFromRoot) {
    if (!c.root) throw new ConfigError('trustFromRoot: needs root (the root contract address)');
    const chain = TonChain.connect({
      endpoint: c.chainEndpoint,
      ...(c.chainApiKey ? { apiKey: c.chainApiKey } : {}),
    });
    // Boot does not wait for the chain: nothing is accepted until the lists are first read (retried with backoff).
    return { ...base, policy: new RootPolicy(chain.client, Address.parse(c.root), log).startInBackground() };
  }
  if (c.allowedProxyImages || c.allowedWorkerImages || c.allowedModels) {
    return { ...base, policy: StaticPolicy.fromConfig(c) };
  }
  return base;
}

/** Async because a paying proxy first opens the chain, its wallet and ledger (and deploys its contract). */
export async function buildProxy(c: ProxyConfig): Promise<ProxyNode> {
  const logger = createLogger(`proxy:${c.name}`, c.logLevel);
  const billing = c.root ? await buildProxyBilling(c, await loadOrCreateNodeKey(c.dataDir), logger) : null;
  const proxy = new ProxyNode({
    name: c.name,
    dataDir: c.dataDir,
    host: c.host,
    workerPort: c.workerPort,
    clientPort: c.clientPort,
    statsHost: c.statsHost,
    statsPort: c.statsPort,
    maxAttempts: c.maxAttempts,
    trust: await trustFor(c, logger),
    logger,
    ...(billing ? { billing } : {}),
  });
  if (billing) {
    walletGauge(proxy.metrics, billing.nodeChain);
    const contract = billing.nodeChain.chain.open(
      ProxyContract.fromAddress(Address.parse(billing.proxyContract)),
    );
    const data = cachedRead(() => contract.getProxyData());
    proxy.metrics.gauge(
      'cocoon_proxy_contract_ton',
      'The proxy contract on-chain: stake, pool of client money, commission (withdrawable, and maturing).',
      async () => {
        const d = await data();
        if (!d) return [];
        const c = proxyCommissionAt(d, Math.floor(Date.now() / 1000));
        return [
          [{ part: 'stake' }, tonGauge(d.stake)],
          [{ part: 'pool' }, tonGauge(d.pool)],
          [{ part: 'commission' }, tonGauge(c.withdrawable)],
          [{ part: 'commission_maturing' }, tonGauge(c.maturing)],
        ];
      },
      ['part'],
    );
  }
  return proxy;
}

/** This node's wallet balance on-chain, read when scraped (at most every 15 s). */
function walletGauge(metrics: NodeMetrics, nc: NodeChain): void {
  const balance = cachedRead(() => nc.chain.getBalance(nc.sender.address));
  metrics.gauge('cocoon_wallet_balance_ton', "This node's wallet balance on-chain.", async () => {
    const b = await balance();
    return b === null ? [] : tonGauge(b);
  });
}

/** Async because backends load on demand: a proxy or client never pays for the tokenizer's tables. */
export async function buildWorker(c: WorkerConfig): Promise<WorkerNode> {
  const { createBackend } = await import('../worker/backends/create-backend.ts');
  // Models may be given as identities `name@revision:hash`: the backend serves (and routing uses) the
  // base name; the identity goes into the worker's certificate for the proxy's model policy.
  const baseNames = c.models.map((m) => m.split('@')[0]!);
  const b = c.backend;
  const backend =
    b.kind === 'builtin'
      ? createBackend({ backend: 'builtin', models: baseNames, tokenDelayMs: b.tokenDelayMs })
      : createBackend({
          backend: 'openai-compatible',
          models: baseNames,
          upstream: b.upstream,
          ...(b.upstreamModel ? { upstreamModel: b.upstreamModel } : {}),
          ...(b.upstreamApiKey ? { upstreamApiKey: b.upstreamApiKey } : {}),
        });
  const logger = createLogger(`worker:${c.name}`, c.logLevel);
  const paid = await buildWorkerPayments(c, logger);
  const worker = new WorkerNode({
    name: c.name,
    dataDir: c.dataDir,
    proxies: c.proxy,
    backend,
    maxConcurrent: c.maxConcurrent,
    coefficient: c.coefficient,
    modelIdentities: c.models,
    statsHost: c.statsHost,
    statsPort: c.statsPort,
    trust: await trustFor(c, logger),
    logger,
    ...(paid ? { payments: paid.payments } : {}),
  });
  if (paid) walletGauge(worker.metrics, paid.nodeChain);
  return worker;
}

/** The proxies registered in the root contract, as `host:port` endpoints (malformed ones skipped). */
function proxiesFromRoot(c: ClientConfig, log: Logger): () => Promise<ProxyAddress[]> {
  if (!c.root) throw new ConfigError('proxiesFromRoot: needs root (the root contract address)');
  const chain = TonChain.connect({
    endpoint: c.chainEndpoint,
    ...(c.chainApiKey ? { apiKey: c.chainApiKey } : {}),
  });
  const root = chain.open(RootContract.fromAddress(Address.parse(c.root)));
  return async () => {
    const { proxies } = await root.getRootData();
    return proxies.flatMap((p) => {
      const a = hostPortSchema.safeParse(p.endpoint);
      if (!a.success) log.warn({ endpoint: p.endpoint }, 'registered proxy has no usable host:port');
      return a.success ? [a.data] : [];
    });
  };
}

export async function buildClient(c: ClientConfig): Promise<ClientNode> {
  if (!isLoopbackHost(c.httpHost) && c.apiKeys.length === 0) {
    throw new ConfigError(
      `httpHost ${c.httpHost} is reachable from other machines: set apiKeys, or listen on 127.0.0.1.`,
    );
  }
  if (!c.receipts && c.e2e) {
    throw new ConfigError(
      'receipts: false needs e2e: false too: a sealed prompt is bounded by nothing but the worker’s receipt.',
    );
  }
  const logger = createLogger(`client:${c.name}`, c.logLevel);
  const paid = c.root ? await buildClientPayments(c, await loadOrCreateNodeKey(c.dataDir), logger) : null;
  const client = new ClientNode({
    name: c.name,
    dataDir: c.dataDir,
    httpHost: c.httpHost,
    httpPort: c.httpPort,
    proxies: c.proxy,
    ...(c.proxiesFromRoot ? { listProxies: proxiesFromRoot(c, logger) } : {}),
    maxAttempts: c.maxAttempts,
    e2e: c.e2e,
    receipts: c.receipts,
    receiptSyncMs: c.receiptSyncMs,
    trust: await trustFor(c, logger),
    defaults: {
      maxTokens: c.maxTokens,
      timeoutMs: Math.round(c.timeoutSeconds * 1000),
      maxCoefficient: c.maxCoefficient,
      minTier: c.minTrustTier,
    },
    maxBodyBytes: c.maxBodyBytes,
    maxConcurrentRequests: c.maxConcurrentRequests,
    apiKeys: c.apiKeys,
    allowedHosts: c.allowedHosts,
    allowedOrigins: c.allowedOrigins,
    httpLimits: {
      headersTimeoutMs: Math.round(c.headersTimeoutSeconds * 1000),
      requestTimeoutMs: Math.round(c.requestTimeoutSeconds * 1000),
      keepAliveTimeoutMs: Math.round(c.idleTimeoutSeconds * 1000),
      maxConnections: c.maxConnections,
    },
    logger,
    ...(paid ? { payments: { newPayments: paid.newPayments, close: paid.close } } : {}),
  });
  if (paid) walletGauge(client.metrics, paid.nodeChain);
  return client;
}

/** Whether an API listening here is reachable only from this machine. */
function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
