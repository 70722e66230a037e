import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Address, toNano } from '@ton/core';
import { startLocalTon } from '../../src/local/local-ton.ts';
import { post, until } from '../e2e/harness.ts';
import { DaemonProcess, freePort, jsonstats } from './daemon-process.ts';

interface ClientStats {
  proxies: {
    address: string;
    usable: boolean;
    refused: { code: string | null; message: string } | null;
    retryInMs: number | null;
  }[];
}

/**
 * A paying client process whose proxy's contract is not in the root's registry: it refuses to pay that
 * proxy, says why in /jsonstats and in 503s, retries with backoff (a warning per step, not a flood), and
 * never dies of it. Once governance registers the proxy, the same process pays it and serves.
 */
test('a client refusing its proxy (contract not registered in the root) stays up, backs off, says why, and recovers once registered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-refused-'));
  const ton = await startLocalTon(dir, 0);
  const procs: DaemonProcess[] = [];
  after(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await ton.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const chain = { chainEndpoint: ton.endpoint, root: ton.root.toString() };
  const proxyDir = join(dir, 'proxy');
  await ton.fundNode(proxyDir, toNano('30'));
  const [workerPort, clientPort, proxyStats, httpPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const proxy = await DaemonProcess.start(
    'proxy',
    {
      ...chain,
      name: 'unlisted',
      dataDir: proxyDir,
      workerPort,
      clientPort,
      statsPort: proxyStats,
      logLevel: 'warn',
    },
    dir,
  );
  procs.push(proxy);
  const contract = Address.parse(
    (await jsonstats<{ payments: { contract: string } }>(proxyStats)).payments.contract,
  );
  const clientDir = join(dir, 'client');
  await ton.fundNode(clientDir, toNano('6'));
  await ton.ensureDeposit(clientDir, contract, toNano('2'));
  const workerDir = join(dir, 'worker');
  await ton.fundNode(workerDir, toNano('1'));
  procs.push(
    await DaemonProcess.start(
      'worker',
      {
        ...chain,
        name: 'w',
        dataDir: workerDir,
        proxy: [`127.0.0.1:${workerPort}`],
        statsPort: 'off',
        logLevel: 'warn',
      },
      dir,
    ),
  );
  const client = await DaemonProcess.start(
    'client',
    {
      ...chain,
      name: 'payer',
      dataDir: clientDir,
      httpPort,
      proxy: `127.0.0.1:${clientPort}`,
      logLevel: 'info',
    },
    dir,
  );
  procs.push(client);
  let exitCode: number | null | undefined;
  void client.exited.then((c) => {
    exitCode = c;
  });
  const api = `http://127.0.0.1:${httpPort}`;
  const entry = async () => (await jsonstats<ClientStats>(httpPort)).proxies[0]!;
  await until(async () => (await entry()).refused !== null, 'the refusal is shown in /jsonstats', 20_000);
  const started = Date.now();
  // Long enough for the old flood (8 dials a second) to show, and to crash the old client.
  await new Promise((r) => setTimeout(r, 6000));
  assert.equal(exitCode, undefined, `the client is still running:\n${client.stderr.slice(-3000)}`);
  const e = await entry();
  assert.equal(e.refused?.code, 'proxy_not_registered', JSON.stringify(e));
  assert.match(e.refused!.message, /not registered in the root/);
  assert.equal(e.usable, false);
  assert.ok(e.retryInMs === null || e.retryInMs >= 0, JSON.stringify(e));

  const r = await post(`${api}/v1/chat/completions`, {
    model: 'cocoon-tiny',
    messages: [{ role: 'user', content: 'hi' }],
    max_tokens: 5,
  });
  assert.equal(r.status, 503, r.text);
  assert.match(r.json.error!.message, /not registered in the root/, r.text);
  assert.ok(r.headers.get('retry-after'), 'a 503 says when to come back');

  // Backoff: in ~6 s at 100 ms doubling to 10 s, a handful of tries; each logs one warning.
  const warnings = client.logs().filter((l) => (l.level as number) === 40);
  const refusals = warnings.filter((l) => String(l.msg).includes('refused'));
  assert.ok(refusals.length >= 2, `retried: ${JSON.stringify(warnings)}`);
  assert.ok(
    refusals.length <= 10,
    `with backoff, not ~8 a second: ${refusals.length} in ${(Date.now() - started) / 1000 + 3} s`,
  );
  assert.ok(
    warnings.length <= refusals.length + 1,
    `one warning per step: ${JSON.stringify(warnings.map((w) => w.msg))}`,
  );
  assert.doesNotMatch(client.stderr, /Unhandled|PaymentRefusedError/);

  // Registered by governance: the next try pays the proxy and requests are served.
  await ton.registerProxy(contract, `127.0.0.1:${clientPort}`);
  await until(async () => (await entry()).usable, 'the client uses the proxy once registered', 30_000);
  const ok = await post(`${api}/v1/chat/completions`, {
    model: 'cocoon-tiny',
    messages: [{ role: 'user', content: 'hi' }],
    max_tokens: 5,
  });
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await entry()).refused, null);
  assert.equal(exitCode, undefined);
});
