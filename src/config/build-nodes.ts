import { loadOrCreateNodeKey } from '../attest/identity.ts';
import { trustSetup } from '../attest/trust-setup.ts';
import { ClientNode } from '../client/client-node.ts';
import { createLogger } from '../ops/log.ts';
import { ProxyNode } from '../proxy/proxy-node.ts';
import { WorkerNode } from '../worker/worker-node.ts';
import { buildClientPayments, buildProxyBilling, buildWorkerPayments } from './build-payments.ts';
import { type ClientConfig, ConfigError, type ProxyConfig, type WorkerConfig } from './config.ts';

/** Builds each daemon from its validated configuration. */

/** Async because a paying proxy first opens the chain, its wallet and ledger (and deploys its contract). */
export async function buildProxy(c: ProxyConfig): Promise<ProxyNode> {
  const logger = createLogger(`proxy:${c.name}`, c.logLevel);
  const billing = c.root ? await buildProxyBilling(c, await loadOrCreateNodeKey(c.dataDir), logger) : null;
  return new ProxyNode({
    name: c.name,
    dataDir: c.dataDir,
    host: c.host,
    workerPort: c.workerPort,
    clientPort: c.clientPort,
    statsHost: c.statsHost,
    statsPort: c.statsPort,
    trust: trustSetup(c.trust),
    logger,
    ...(billing ? { billing } : {}),
  });
}

/** Async because backends load on demand: a proxy or client never pays for the tokenizer's tables. */
export async function buildWorker(c: WorkerConfig): Promise<WorkerNode> {
  if (c.backend === 'openai-compatible' && !c.upstream) {
    throw new ConfigError('backend openai-compatible needs --upstream (e.g. http://127.0.0.1:8000/v1)');
  }
  const { createBackend } = await import('../worker/backends/create-backend.ts');
  const backend =
    c.backend === 'builtin'
      ? createBackend({ backend: 'builtin', models: c.models, tokenDelayMs: c.tokenDelayMs })
      : createBackend({
          backend: 'openai-compatible',
          models: c.models,
          upstream: c.upstream!,
          ...(c.upstreamModel ? { upstreamModel: c.upstreamModel } : {}),
          ...(c.upstreamApiKey ? { upstreamApiKey: c.upstreamApiKey } : {}),
        });
  const logger = createLogger(`worker:${c.name}`, c.logLevel);
  const paid = await buildWorkerPayments(c, logger);
  return new WorkerNode({
    name: c.name,
    dataDir: c.dataDir,
    proxies: c.proxy,
    backend,
    maxConcurrent: c.maxConcurrent,
    coefficient: c.coefficient,
    statsHost: c.statsHost,
    statsPort: c.statsPort,
    trust: trustSetup(c.trust),
    logger,
    ...(paid ? { payments: paid.payments } : {}),
  });
}

export async function buildClient(c: ClientConfig): Promise<ClientNode> {
  const logger = createLogger(`client:${c.name}`, c.logLevel);
  const paid = c.root ? await buildClientPayments(c, await loadOrCreateNodeKey(c.dataDir), logger) : null;
  return new ClientNode({
    name: c.name,
    dataDir: c.dataDir,
    httpHost: c.httpHost,
    httpPort: c.httpPort,
    proxy: c.proxy,
    trust: trustSetup(c.trust),
    defaults: {
      maxTokens: c.maxTokens,
      timeoutMs: Math.round(c.timeoutSeconds * 1000),
      maxCoefficient: c.maxCoefficient,
      minTier: c.minTrustTier,
    },
    maxBodyBytes: c.maxBodyBytes,
    maxConcurrentRequests: c.maxConcurrentRequests,
    apiKeys: c.apiKeys,
    logger,
    ...(paid ? { payments: paid.payments } : {}),
  });
}
