import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Address, toNano } from '@ton/core';
import { type LocalTon, startLocalTon } from '../../src/local/local-ton.ts';
import { until } from '../e2e/harness.ts';
import { DaemonProcess, freePort, jsonstats } from './daemon-process.ts';

const waitLines = (d: DaemonProcess) =>
  d.logs().filter((l) => typeof l.msg === 'string' && /retrying after backoff/.test(l.msg));

/**
 * What docs/operations.md ("When the chain is unreachable") says of a daemon that has never reached its
 * chain (no chain-info.json yet): a proxy and a worker started with the chain down wait at boot, one
 * warning per backoff step (1 s doubling), and never exit; once the chain answers they finish booting on
 * their own (the proxy deploys its contract) and the worker registers at the proxy.
 */
test('a proxy and a worker that never reached their chain wait at boot with backoff, never exit, and come up once it answers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-boot-no-chain-'));
  const chainPort = await freePort();
  let ton: LocalTon | null = await startLocalTon(dir, chainPort);
  const procs: DaemonProcess[] = [];
  after(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await ton?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const chain = { chainEndpoint: ton.endpoint, root: ton.root.toString() };
  const proxyDir = join(dir, 'proxy');
  const workerDir = join(dir, 'worker');
  await ton.fundNode(proxyDir, toNano('30'));
  await ton.fundNode(workerDir, toNano('1'));
  await ton.stop(); // the wallets exist and are funded; the chain is now a closed port
  ton = null;

  const [workerPort, clientPort, statsPort] = [await freePort(), await freePort(), await freePort()];
  const proxy = DaemonProcess.launch(
    'proxy',
    { ...chain, name: 'p', dataDir: proxyDir, workerPort, clientPort, statsPort, logLevel: 'warn' },
    dir,
  );
  procs.push(proxy);
  const worker = DaemonProcess.launch(
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
  );
  procs.push(worker);
  const exits: string[] = [];
  for (const d of [proxy, worker]) void d.exited.then((code) => exits.push(`exited with ${code}`));

  // The window starts at each daemon's first try: start-up itself (loading TypeScript) is slow under load.
  const down = 6000;
  for (const d of [proxy, worker]) await until(() => waitLines(d).length > 0, 'a first try', 30_000);
  const firstTry = new Map([proxy, worker].map((d) => [d, waitLines(d)[0]!.time as number]));
  await new Promise((r) => setTimeout(r, down));
  assert.deepEqual(exits, [], `nothing exits while the chain is down:\n${proxy.stderr}\n${worker.stderr}`);
  for (const d of [proxy, worker]) {
    assert.doesNotMatch(d.stdout, /workers on|serving/, 'not up yet: it waits for the chain');
    const lines = waitLines(d).filter((l) => (l.time as number) < firstTry.get(d)! + down);
    // 1 s doubling with ±25% jitter: tries near 0, 1, 3 s (and perhaps 7): a few lines, not a flood.
    assert.ok(lines.length >= 2 && lines.length <= 5, `${lines.length} lines in ${down} ms:\n${d.stderr}`);
    assert.ok(
      lines.every((l) => typeof l.retryInMs === 'number' && l.level === 40),
      'each line is one warning that says when the next try is',
    );
    assert.doesNotMatch(d.stderr, /Unhandled|\n\s+at /, 'no crash, no stack');
  }

  // The chain answers again (the same state, on the same port).
  const back = Date.now();
  ton = await startLocalTon(dir, chainPort);
  await proxy.ready(60_000);
  await worker.ready(60_000);
  const registered = async () =>
    (await jsonstats<{ workers: { name: string }[] }>(statsPort)).workers.some((w) => w.name === 'w');
  await until(registered, 'the worker registered at the proxy', 30_000);
  const stats = await jsonstats<{ payments: { contract?: string } | string }>(statsPort);
  assert.equal(typeof stats.payments, 'object', 'the proxy takes payments');
  const contract = (stats.payments as { contract: string }).contract;
  assert.ok(await ton.chain.isDeployed(Address.parse(contract)), 'the proxy deployed its contract');
  assert.deepEqual(exits, []);
  console.log(JSON.stringify({ upAfterChainBackMs: Date.now() - back }));
});
