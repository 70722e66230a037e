import { join } from 'node:path';
import type { ClientNode } from '../client/client-node.ts';
import { buildClient, buildProxy, buildWorker } from '../config/build-nodes.ts';
import { clientConfigSchema, proxyConfigSchema, workerConfigSchema } from '../config/config.ts';
import type { LogLevel } from '../ops/log.ts';
import type { ProxyNode } from '../proxy/proxy-node.ts';
import type { WorkerNode } from '../worker/worker-node.ts';

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
}

export interface LocalNetwork {
  proxy: ProxyNode;
  worker: WorkerNode;
  client: ClientNode;
  stop(): Promise<void>;
}

/**
 * One proxy, one worker with the built-in model and one client, in this process, wired over real
 * mutually authenticated TLS on loopback, in dev trust. What `cocoon local` runs and the e2e tests start.
 */
export async function startLocalNetwork(o: LocalNetworkOptions): Promise<LocalNetwork> {
  const host = o.host ?? '127.0.0.1';
  const logLevel = o.logLevel ?? 'warn';
  const proxy = buildProxy(
    proxyConfigSchema.parse({
      name: 'local-proxy',
      dataDir: join(o.dataDir, 'proxy'),
      host,
      workerPort: o.proxyWorkerPort ?? 0,
      clientPort: o.proxyClientPort ?? 0,
      statsPort: o.proxyStatsPort === undefined ? 0 : o.proxyStatsPort,
      logLevel,
    }),
  );
  await proxy.start();
  const worker = await buildWorker(
    workerConfigSchema.parse({
      name: 'local-worker',
      dataDir: join(o.dataDir, 'worker'),
      proxy: [`${host}:${proxy.workerPort}`],
      backend: 'builtin',
      models: o.models ?? ['cocoon-tiny'],
      tokenDelayMs: o.tokenDelayMs ?? 0,
      statsPort: o.workerStatsPort === undefined ? 0 : o.workerStatsPort,
      logLevel,
    }),
  );
  const client = buildClient(
    clientConfigSchema.parse({
      name: 'local-client',
      dataDir: join(o.dataDir, 'client'),
      httpHost: host,
      httpPort: o.httpPort ?? 0,
      proxy: `${host}:${proxy.clientPort}`,
      logLevel,
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
  return {
    proxy,
    worker,
    client,
    stop: async () => {
      await client.stop();
      await worker.stop();
      await proxy.stop();
    },
  };
}
