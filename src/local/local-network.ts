import { join } from 'node:path';
import { Address, toNano } from '@ton/core';
import type { ClientNode } from '../client/client-node.ts';
import { buildClient, buildProxy, buildWorker } from '../config/build-nodes.ts';
import { clientConfigSchema, proxyConfigSchema, workerConfigSchema } from '../config/config.ts';
import type { LogLevel } from '../ops/log.ts';
import type { ProxyNode } from '../proxy/proxy-node.ts';
import type { WorkerNode } from '../worker/worker-node.ts';
import { type LocalTon, startLocalTon } from './local-ton.ts';

export interface LocalNetworkOptions {
  dataDir: string;
  host?: string;
  /** Client OpenAI API port (0 = any free port). */
  httpPort?: number;
  proxyWorkerPort?: number;
  proxyClientPort?: number;
  /** Stats ports: null disables the proxy's and worker's stats servers (the client serves its own). */
  proxyStatsPort?: number | null;
  workerStatsPort?: number | null;
  models?: string[];
  tokenDelayMs?: number;
  logLevel?: LogLevel;
  /** Payments on the embedded TON chain (root, proxy stake, client deposit); off by default. */
  payments?: LocalPaymentOptions;
}

export interface LocalPaymentOptions {
  /** Port of the local chain's toncenter-style API (0 = any free port). */
  chainPort?: number;
  /** TON the client keeps deposited (topped up at start). */
  depositTon?: bigint;
  settleIntervalSeconds?: number;
  payoutIntervalSeconds?: number;
  workerPayoutIntervalSeconds?: number;
  ledgerDurability?: 'disk' | 'process';
  /** The chain's clock (unix seconds); default the system clock. */
  chainClock?: () => number;
}

export interface LocalNetwork {
  proxy: ProxyNode;
  worker: WorkerNode;
  client: ClientNode;
  /** The embedded chain, when payments are on. */
  ton: LocalTon | null;
  stop(): Promise<void>;
}

/**
 * One proxy, one worker with the built-in model and one client, in this process, wired over real
 * mutually authenticated TLS on loopback, in dev trust. What `cocoon local` runs and the e2e tests start.
 */
export async function startLocalNetwork(o: LocalNetworkOptions): Promise<LocalNetwork> {
  const host = o.host ?? '127.0.0.1';
  const logLevel = o.logLevel ?? 'warn';
  const pay = o.payments;
  const dirs = {
    proxy: join(o.dataDir, 'proxy'),
    worker: join(o.dataDir, 'worker'),
    client: join(o.dataDir, 'client'),
  };
  const ton = pay ? await startLocalTon(o.dataDir, pay.chainPort ?? 0, pay.chainClock) : null;
  let chain: Record<string, unknown> = {};
  if (ton && pay) {
    await ton.fundNode(dirs.proxy, toNano('30'));
    await ton.fundNode(dirs.worker, toNano('2'));
    await ton.fundNode(dirs.client, (pay.depositTon ?? toNano('10')) * 2n + toNano('1'));
    chain = {
      chainEndpoint: ton.endpoint,
      root: ton.root.toString(),
      ...(pay.ledgerDurability ? { ledgerDurability: pay.ledgerDurability } : {}),
    };
  }
  const proxy = await buildProxy(
    proxyConfigSchema.parse({
      name: 'local-proxy',
      dataDir: dirs.proxy,
      host,
      workerPort: o.proxyWorkerPort ?? 0,
      clientPort: o.proxyClientPort ?? 0,
      statsPort: o.proxyStatsPort === undefined ? 0 : o.proxyStatsPort,
      logLevel,
      ...chain,
      ...(pay
        ? {
            settleIntervalSeconds: pay.settleIntervalSeconds ?? 10,
            payoutIntervalSeconds: pay.payoutIntervalSeconds ?? 2,
          }
        : {}),
    }),
  );
  await proxy.start();
  const proxyContract = proxy.billing ? Address.parse(proxy.billing.proxyContract) : null;
  if (ton && pay && proxyContract) {
    await ton.registerProxy(proxyContract, `${host}:${proxy.clientPort}`);
    await ton.ensureDeposit(dirs.client, proxyContract, pay.depositTon ?? toNano('10'));
  }
  const worker = await buildWorker(
    workerConfigSchema.parse({
      name: 'local-worker',
      dataDir: dirs.worker,
      proxy: [`${host}:${proxy.workerPort}`],
      backend: { kind: 'builtin', tokenDelayMs: o.tokenDelayMs ?? 0 },
      models: o.models ?? ['cocoon-tiny'],
      statsPort: o.workerStatsPort === undefined ? 0 : o.workerStatsPort,
      logLevel,
      ...chain,
      ...(pay ? { payoutIntervalSeconds: pay.workerPayoutIntervalSeconds ?? 10 } : {}),
    }),
  );
  const client = await buildClient(
    clientConfigSchema.parse({
      name: 'local-client',
      dataDir: dirs.client,
      httpHost: host,
      httpPort: o.httpPort ?? 0,
      proxy: `${host}:${proxy.clientPort}`,
      logLevel,
      ...chain,
    }),
  );
  await Promise.all([worker.start(), client.start()]);
  await client.waitForProxy();
  // Ready means a completion can be served: wait until the proxy has the worker registered.
  const deadline = Date.now() + 10_000;
  while (proxy.registry.size === 0) {
    if (Date.now() > deadline) throw new Error('worker did not register with the proxy');
    await new Promise((r) => setTimeout(r, 20));
  }
  if (client.payments) await client.payments.ready();
  return {
    proxy,
    worker,
    client,
    ton,
    stop: async () => {
      await client.stop();
      await worker.stop();
      await proxy.stop();
      await ton?.stop();
    },
  };
}
