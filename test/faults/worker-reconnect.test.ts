import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { until } from '../e2e/harness.ts';
import { DaemonProcess, freePort, jsonstats } from './daemon-process.ts';

/**
 * A worker process with its stats server off has nothing open but its proxy link: when the proxy goes
 * away it must stay up (the link's retry keeps it alive) and register again when the proxy is back,
 * whether the proxy was killed or shut down and cut its workers off.
 */
test('a worker with --stats-port off outlives its proxy (killed, or shut down) and registers again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-worker-reconnect-'));
  const procs: DaemonProcess[] = [];
  after(() => {
    for (const p of procs) p.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const [workerPort, clientPort, statsPort] = [await freePort(), await freePort(), await freePort()];
  const startProxy = async () => {
    const p = await DaemonProcess.start(
      'proxy',
      {
        name: 'p',
        dataDir: join(dir, 'proxy'),
        workerPort,
        clientPort,
        statsPort,
        drainSeconds: 1,
        logLevel: 'warn',
      },
      dir,
    );
    procs.push(p);
    return p;
  };
  const registered = async () => {
    try {
      return (await jsonstats<{ workers: { name: string }[] }>(statsPort)).workers.some(
        (w) => w.name === 'quiet',
      );
    } catch {
      return false;
    }
  };
  let proxy = await startProxy();
  const worker = await DaemonProcess.start(
    'worker',
    {
      name: 'quiet',
      dataDir: join(dir, 'worker'),
      proxy: [`127.0.0.1:${workerPort}`],
      statsPort: 'off',
      logLevel: 'info',
    },
    dir,
  );
  procs.push(worker);
  let exited: number | null | undefined;
  void worker.exited.then((c) => {
    exited = c;
  });
  await until(registered, 'the worker registered', 15_000);

  for (const how of ['SIGKILL', 'SIGTERM'] as const) {
    await proxy.kill(how); // SIGTERM: the proxy drains and hangs up on its workers
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(exited, undefined, `the worker is still up after the proxy's ${how}:\n${worker.stderr}`);
    proxy = await startProxy();
    await until(registered, `the worker registered again after the proxy's ${how}`, 20_000);
  }
  assert.equal(exited, undefined);
  const downs = worker.logs().filter((l) => l.msg === 'proxy link down');
  assert.ok(downs.length >= 2, 'each loss is logged');
  // With backoff: a few tries in each ~3 s outage, not one every 100 ms.
  assert.ok(downs.length <= 20, `backoff between tries: ${downs.length}`);
  assert.ok(
    downs.every((l) => typeof l.retryInMs === 'number'),
    'each line says when the next try is',
  );
});
