import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientNode } from '../../src/client/client-node.ts';
import { buildClient, buildProxy, buildWorker } from '../../src/config/build-nodes.ts';
import { clientConfigSchema, proxyConfigSchema, workerConfigSchema } from '../../src/config/config.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import type { WorkerNode } from '../../src/worker/worker-node.ts';

/**
 * Starts real daemons on 127.0.0.1 (ephemeral ports, temporary data dirs) the way the CLI builds them,
 * and tears everything down in one call.
 */
export class Harness {
  private readonly dir = mkdtempSync(join(tmpdir(), 'cocoon-test-'));
  private readonly stoppers: (() => Promise<void>)[] = [];
  private n = 0;

  async proxy(extra: Record<string, unknown> = {}): Promise<ProxyNode> {
    const p = await buildProxy(
      proxyConfigSchema.parse({
        name: `proxy-${++this.n}`,
        dataDir: join(this.dir, `proxy-${this.n}`),
        workerPort: 0,
        clientPort: 0,
        statsPort: 0,
        logLevel: 'silent',
        ...extra,
      }),
    );
    await p.start();
    this.stoppers.push(() => p.stop());
    return p;
  }

  /** Starts a worker and waits until the proxy registered it (`register: false`: does not wait). */
  async worker(
    proxy: ProxyNode,
    extra: Record<string, unknown> = {},
    { register = true } = {},
  ): Promise<WorkerNode> {
    const before = proxy.registry.size;
    const w = await buildWorker(
      workerConfigSchema.parse({
        name: `worker-${++this.n}`,
        dataDir: join(this.dir, `worker-${this.n}`),
        proxy: [`127.0.0.1:${proxy.workerPort}`],
        statsPort: 0,
        logLevel: 'silent',
        ...extra,
      }),
    );
    await w.start();
    this.stoppers.push(() => w.stop());
    if (register) await until(() => proxy.registry.size > before, 'worker registered at the proxy');
    return w;
  }

  async client(proxy: ProxyNode, extra: Record<string, unknown> = {}): Promise<ClientNode> {
    const c = await buildClient(
      clientConfigSchema.parse({
        name: `client-${++this.n}`,
        dataDir: join(this.dir, `client-${this.n}`),
        httpPort: 0,
        proxy: `127.0.0.1:${proxy.clientPort}`,
        logLevel: 'silent',
        ...extra,
      }),
    );
    await c.start();
    this.stoppers.push(() => c.stop());
    await c.waitForProxy();
    return c;
  }

  get dataDir(): string {
    return this.dir;
  }

  async stop(): Promise<void> {
    for (const s of this.stoppers.reverse()) await s();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** POSTs JSON (or raw text) to the client and returns status + parsed body. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return {
    status: res.status,
    json: json as { error?: { message: string; type: string; code: string | null; param: string | null } },
    text,
    headers: res.headers,
  };
}

/** A daemon's refused requests by error code, read from its `/metrics` text. */
export function rejectedByCode(metrics: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of metrics.matchAll(
    /^cocoon_requests_total\{outcome="rejected",code="([^"]*)"[^}]*\} (\d+)$/gm,
  )) {
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}
