import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Address, toNano } from '@ton/core';
import { ClientContract } from '../../src/chain/contracts/client-contract.ts';
import type { ClientNode } from '../../src/client/client-node.ts';
import { buildClient, buildWorker } from '../../src/config/build-nodes.ts';
import { clientConfigSchema, workerConfigSchema } from '../../src/config/config.ts';
import { startLocalTon } from '../../src/local/local-ton.ts';
import { requestCost } from '../../src/pay/pricing.ts';
import type { WorkerNode } from '../../src/worker/worker-node.ts';
import { post, until } from '../e2e/harness.ts';
import { DaemonProcess, freePort, jsonstats } from './daemon-process.ts';

/**
 * Two paying proxies as processes; one is killed with SIGKILL while requests are in flight. The client
 * fails over to the other, and once the killed proxy restarts, each proxy redeems on-chain exactly what
 * the client signed to it: nothing lost, nothing twice. Then a paid worker process is killed mid-stream:
 * the caller is billed for exactly the tokens it received.
 */
test('a proxy killed mid-load: the client fails over; restarted, it settles exactly what was signed to it; a paid worker killed mid-stream is billed for the delivered tokens only', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-proxy-fault-'));
  const ton = await startLocalTon(dir, 0);
  const procs: DaemonProcess[] = [];
  let worker: WorkerNode | null = null;
  let client: ClientNode | null = null;
  after(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await client?.stop();
    await worker?.stop();
    await ton.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const chain = { chainEndpoint: ton.endpoint, root: ton.root.toString() };
  const proxies = await Promise.all(
    ['a', 'b'].map(async (name) => {
      const dataDir = join(dir, `proxy-${name}`);
      await ton.fundNode(dataDir, toNano('30'));
      const [workerPort, clientPort, statsPort] = [await freePort(), await freePort(), await freePort()];
      return { name, dataDir, workerPort, clientPort, statsPort, contract: null as Address | null };
    }),
  );
  const startProxy = async (p: (typeof proxies)[number], settleIntervalSeconds: number) => {
    const proc = await DaemonProcess.start(
      'proxy',
      {
        ...chain,
        name: `proxy-${p.name}`,
        dataDir: p.dataDir,
        workerPort: p.workerPort,
        clientPort: p.clientPort,
        statsPort: p.statsPort,
        settleIntervalSeconds,
        payoutIntervalSeconds: 1,
        logLevel: 'warn',
      },
      dir,
    );
    procs.push(proc);
    const s = await jsonstats<{ payments: { contract: string } }>(p.statsPort);
    p.contract = Address.parse(s.payments.contract);
    return proc;
  };
  const [a, b] = proxies as [(typeof proxies)[0], (typeof proxies)[0]];
  // Nothing is settled during the first life of a, so its signed state must survive the kill.
  const firstA = await startProxy(a, 3600);
  await startProxy(b, 1);
  const clientDir = join(dir, 'client');
  await ton.fundNode(clientDir, toNano('6'));
  for (const p of proxies) {
    await ton.registerProxy(p.contract!, `127.0.0.1:${p.clientPort}`);
    await ton.ensureDeposit(clientDir, p.contract!, toNano('2'));
  }
  const workerDir = join(dir, 'worker');
  await ton.fundNode(workerDir, toNano('1'));
  worker = await buildWorker(
    workerConfigSchema.parse({
      ...chain,
      name: 'shared-worker',
      dataDir: workerDir,
      proxy: proxies.map((p) => `127.0.0.1:${p.workerPort}`),
      backend: { tokenDelayMs: 20 },
      maxConcurrent: 32,
      statsPort: 'off',
      logLevel: 'silent',
    }),
  );
  await worker.start();
  client = await buildClient(
    clientConfigSchema.parse({
      ...chain,
      name: 'failover-client',
      dataDir: clientDir,
      httpPort: 0,
      proxy: proxies.map((p) => `127.0.0.1:${p.clientPort}`),
      logLevel: 'silent',
    }),
  );
  await client.start();
  const c = client;
  await until(
    () => c.proxies.every((p) => p.usable),
    'both proxies connected and accounts confirmed',
    20_000,
  );
  await until(() => worker!.connectedProxies === 2, 'the worker serves both proxies', 20_000);
  const conn = (p: (typeof proxies)[number]) =>
    c.proxies.find((x) => x.address === `127.0.0.1:${p.clientPort}`)!;
  const signedTo = (p: (typeof proxies)[number]) => conn(p).payments!.payer.authorisedTotal;
  const ask = (i: number) =>
    post(`${c.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: `request ${i}` }],
      max_tokens: 30,
    });

  // Load on both proxies, then a's process dies with requests in flight. Staggered, and kept coming
  // (up to 64) until a has finished some while others are still running there: the client routes by
  // latency, so how many go to a depends on the machine's load.
  const finishedAtA = () => conn(a).total - conn(a).inFlight - conn(a).failed;
  const ready = () => conn(a).inFlight > 0 && finishedAtA() > 0;
  const batch: ReturnType<typeof ask>[] = [];
  for (let i = 0; i < 64 && !ready(); i++) {
    batch.push(ask(i));
    await new Promise((r) => setTimeout(r, 80));
  }
  await until(ready, 'a has served and is serving', 20_000);
  await firstA.kill('SIGKILL');
  // What a released before it died: each of those replies was paid for in its ledger first.
  let releasedByA = 0n;
  for (const r of await Promise.all(batch)) {
    assert.equal(r.status, 200, r.text);
    const cost = BigInt((r.json as unknown as { usage: { total_cost: number } }).usage.total_cost);
    if (r.headers.get('x-cocoon-proxy') === `127.0.0.1:${a.clientPort}`) releasedByA += cost;
  }
  // With a gone, everything goes through b.
  for (let i = 0; i < 4; i++) assert.equal((await ask(100 + i)).status, 200);
  assert.ok(
    c.counters.failovers >= 1,
    `requests in flight at a were sent again through b: ${JSON.stringify(c.counters)} ${JSON.stringify(c.proxies.map((x) => x.snapshot()))}`,
  );

  // a restarts with its ledger; the client reconnects, and a settles what the client signed to it.
  await startProxy(a, 1);
  await until(() => conn(a).usable, 'client reconnected to a', 30_000);
  const charged = async (p: (typeof proxies)[number]) => {
    const contract = conn(p).payments!.payer.account!;
    return (await ton.chain.open(ClientContract.fromAddress(contract)).getClientData()).charged;
  };
  for (const p of proxies) {
    await until(
      async () => (await charged(p)) === signedTo(p),
      `proxy ${p.name} settled what was signed`,
      30_000,
    );
  }
  assert.ok(releasedByA > 0n, 'a released replies before it died');
  assert.ok(
    signedTo(a) >= releasedByA,
    `a's signed state survived the kill: released ${releasedByA}, signed ${signedTo(a)}`,
  );
  assert.ok(signedTo(b) > 0n);
  // And a serves again.
  assert.equal((await ask(200)).status, 200);

  // A paid worker process killed mid-stream: the caller gets an error event and pays for exactly the
  // tokens it received.
  const doomedDir = join(dir, 'doomed-worker');
  await ton.fundNode(doomedDir, toNano('1'));
  const doomed = await DaemonProcess.start(
    'worker',
    {
      ...chain,
      name: 'doomed',
      dataDir: doomedDir,
      proxy: [`127.0.0.1:${a.workerPort}`],
      backend: { tokenDelayMs: 40 },
      statsPort: 'off',
      logLevel: 'warn',
    },
    dir,
  );
  procs.push(doomed);
  worker.setEnabled(false); // only the doomed worker serves now
  await until(
    async () => {
      const s = await jsonstats<{ workers: { name: string; enabled: boolean }[] }>(a.statsPort);
      return (
        s.workers.some((w) => w.name === 'doomed') &&
        !s.workers.some((w) => w.name === 'shared-worker' && w.enabled)
      );
    },
    'a routes only to the doomed worker',
    20_000,
  );
  const billedAtA = async () =>
    BigInt((await jsonstats<{ payments: { billedNano: string } }>(a.statsPort)).payments.billedNano);
  const before = await billedAtA();
  const signedBefore = signedTo(a);
  const res = await fetch(`${c.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'go' }],
      max_tokens: 300,
      stream: true,
    }),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-cocoon-proxy'), `127.0.0.1:${a.clientPort}`);
  let text = '';
  let delivered = 0;
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    text += Buffer.from(part).toString();
    delivered = (text.match(/"delta":\{"content":"[^"]/g) ?? []).length;
    if (delivered >= 5 && doomed.child.exitCode === null && !doomed.child.killed)
      doomed.child.kill('SIGKILL');
  }
  const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
  const error = JSON.parse(events.at(-2)!.slice(6)) as { error: { code: string; message: string } };
  assert.equal(error.error.code, 'worker_failed_mid_stream');
  assert.match(error.error.message, new RegExp(`Only the ${delivered} delivered tokens are charged`));
  const expected = requestCost(
    { promptTokens: 0, cachedTokens: 0, completionTokens: delivered, reasoningTokens: 0 },
    1000,
    conn(a).payments!.payer.prices,
  ).totalCost;
  assert.equal((await billedAtA()) - before, expected, `billed for ${delivered} delivered tokens`);
  assert.equal(signedTo(a) - signedBefore, expected, 'and the client signed exactly that');
});
