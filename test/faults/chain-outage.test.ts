import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Address, toNano } from '@ton/core';
import type { ClientNode } from '../../src/client/client-node.ts';
import { buildClient, buildProxy, buildWorker } from '../../src/config/build-nodes.ts';
import { clientConfigSchema, proxyConfigSchema, workerConfigSchema } from '../../src/config/config.ts';
import { type LocalTon, startLocalTon } from '../../src/local/local-ton.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import type { WorkerNode } from '../../src/worker/worker-node.ts';
import { post, until } from '../e2e/harness.ts';
import { freePort } from './daemon-process.ts';

const ask = (c: ClientNode, i: number) =>
  post(`${c.baseUrl}/chat/completions`, {
    model: 'cocoon-tiny',
    messages: [{ role: 'user', content: `request ${i}` }],
    max_tokens: 8,
  });

/**
 * The chain goes away: a worker booting without it starts, connects and serves, accruing signed payouts,
 * and redeems them once the chain is back; a client booting without it starts and answers paid requests
 * with a 503 that says the chain does not answer, until it does.
 */
test('a worker boots and earns while the chain is down, and redeems once it is back; a client answers 503 until the chain answers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-chain-outage-'));
  const chainPort = await freePort();
  let ton: LocalTon | null = await startLocalTon(dir, chainPort);
  const nodes: { stop(): Promise<void> }[] = [];
  after(async () => {
    for (const n of nodes.reverse()) await n.stop();
    await ton?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const chain = { chainEndpoint: ton.endpoint, root: ton.root.toString() };
  const proxyDir = join(dir, 'proxy');
  await ton.fundNode(proxyDir, toNano('30'));
  const proxy: ProxyNode = await buildProxy(
    proxyConfigSchema.parse({
      ...chain,
      name: 'proxy',
      dataDir: proxyDir,
      workerPort: 0,
      clientPort: 0,
      statsPort: 0,
      payoutIntervalSeconds: 1,
      logLevel: 'silent',
    }),
  );
  await proxy.start();
  nodes.push(proxy);
  const contract = Address.parse(proxy.billing!.proxyContract);
  await ton.registerProxy(contract, `127.0.0.1:${proxy.clientPort}`);
  const clientDir = join(dir, 'client');
  await ton.fundNode(clientDir, toNano('6'));
  await ton.ensureDeposit(clientDir, contract, toNano('2'));
  const workerDir = join(dir, 'worker');
  const payoutTo = await ton.fundNode(workerDir, toNano('2'));
  const workerConfig = workerConfigSchema.parse({
    ...chain,
    name: 'worker',
    dataDir: workerDir,
    proxy: [`127.0.0.1:${proxy.workerPort}`],
    payoutIntervalSeconds: 1,
    statsPort: 'off',
    logLevel: 'silent',
  });
  const clientConfig = (name: string, dataDir: string) =>
    clientConfigSchema.parse({
      ...chain,
      name,
      dataDir,
      httpPort: 0,
      proxy: `127.0.0.1:${proxy.clientPort}`,
      logLevel: 'silent',
    });
  // One boot with the chain up: each node keeps what it needs to start without it.
  const first = await buildWorker(workerConfig);
  await first.start();
  await until(() => proxy.registry.size === 1, 'worker registered', 20_000);
  await first.stop();
  await until(() => proxy.registry.size === 0, 'worker gone');
  const client = await buildClient(clientConfig('client', clientDir));
  await client.start();
  await until(() => client.proxies[0]?.usable === true, 'client account confirmed', 20_000);

  // The chain goes away.
  await ton.stop();
  ton = null;
  const bootStarted = Date.now();
  const worker: WorkerNode = await buildWorker(workerConfig);
  await worker.start();
  nodes.push(worker);
  await until(() => proxy.registry.size === 1, 'worker registered without the chain', 20_000);
  const bootMs = Date.now() - bootStarted;
  for (let i = 0; i < 3; i++) {
    const r = await ask(client, i);
    assert.equal(r.status, 200, r.text);
  }
  const pay = worker.payments!;
  await until(() => pay.totals().signed > 0n, 'signed payouts accrue while the chain is down', 20_000);
  assert.equal(pay.redemptions, 0);

  // The client restarted now starts from what it kept, and says why it cannot serve paid requests.
  await client.stop();
  const late = await buildClient(clientConfig('client', clientDir));
  const lateStarted = Date.now();
  await late.start();
  nodes.push(late);
  const lateBootMs = Date.now() - lateStarted;
  await until(() => late.proxies[0]?.refusal !== null, 'the restarted client refuses for now', 20_000);
  const refused = await ask(late, 100);
  assert.equal(refused.status, 503, refused.text);
  assert.match(refused.json.error!.message, /No proxy can be used now/, refused.text);
  assert.ok(refused.headers.get('retry-after'));

  // The chain is back: the worker redeems what it earned.
  ton = await startLocalTon(dir, chainPort);
  await until(() => pay.redemptions > 0, 'the payouts are redeemed once the chain is back', 60_000);
  await until(() => pay.totals().paid > 0n, 'the worker contract paid out', 30_000);
  assert.ok(payoutTo);
  await until(() => late.proxies[0]?.usable === true, 'the client pays the proxy again', 30_000);
  assert.equal((await ask(late, 101)).status, 200);
  console.log(
    JSON.stringify({ bootMs, lateBootMs, totals: pay.totals() }, (_k, v) =>
      typeof v === 'bigint' ? v.toString() : v,
    ),
  );
});
