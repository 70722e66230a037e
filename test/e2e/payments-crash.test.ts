import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Address, toNano } from '@ton/core';
import { ClientContract } from '../../src/chain/contracts/client-contract.ts';
import { WorkerContract } from '../../src/chain/contracts/worker-contract.ts';
import type { ClientNode } from '../../src/client/client-node.ts';
import { buildClient, buildWorker } from '../../src/config/build-nodes.ts';
import { clientConfigSchema, workerConfigSchema } from '../../src/config/config.ts';
import { LOCAL_PARAMS, startLocalTon } from '../../src/local/local-ton.ts';
import type { WorkerNode } from '../../src/worker/worker-node.ts';
import { freePort } from '../faults/daemon-process.ts';
import { post, until } from './harness.ts';

const bin = join(import.meta.dirname, '../../bin/cocoon.mjs');

/**
 * kill -9 of the proxy after replies were released but before anything was settled on-chain: the restarted
 * proxy redeems exactly what the client signed, the worker is paid exactly its share, nothing twice.
 */
test('a proxy killed between replies and settlement loses nothing and counts nothing twice', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-crash-'));
  const ton = await startLocalTon(dir, 0);
  const dirs = { proxy: join(dir, 'proxy'), worker: join(dir, 'worker'), client: join(dir, 'client') };
  let proxy: ChildProcess | null = null;
  let worker: WorkerNode | null = null;
  let client: ClientNode | null = null;
  after(async () => {
    proxy?.kill('SIGKILL');
    await client?.stop();
    await worker?.stop();
    await ton.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await ton.fundNode(dirs.proxy, toNano('30'));
  await ton.fundNode(dirs.worker, toNano('2'));
  await ton.fundNode(dirs.client, toNano('10'));
  const [workerPort, clientPort, statsPort] = [await freePort(), await freePort(), await freePort()];
  const chain = { chainEndpoint: ton.endpoint, root: ton.root.toString() };

  const startProxy = async (settleIntervalSeconds: number) => {
    const config = join(dir, `proxy-${settleIntervalSeconds}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        ...chain,
        name: 'crash-proxy',
        dataDir: dirs.proxy,
        workerPort,
        clientPort,
        statsPort,
        settleIntervalSeconds,
        payoutIntervalSeconds: 1,
        logLevel: 'warn',
      }),
    );
    const child = spawn(process.execPath, [bin, 'proxy', '--config', config], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`proxy exited with ${code}`)));
      child.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('workers on')) resolve();
      });
    });
    const stats = (await (await fetch(`http://127.0.0.1:${statsPort}/jsonstats`)).json()) as {
      payments: { contract: string };
    };
    return { child, contract: Address.parse(stats.payments.contract) };
  };

  // First life: a long settle interval, so nothing is redeemed on-chain before the kill.
  const first = await startProxy(3600);
  proxy = first.child;
  await ton.registerProxy(first.contract, `127.0.0.1:${clientPort}`);
  const clientContract = await ton.ensureDeposit(dirs.client, first.contract, toNano('5'));
  worker = await buildWorker(
    workerConfigSchema.parse({
      ...chain,
      name: 'crash-worker',
      dataDir: dirs.worker,
      proxy: [`127.0.0.1:${workerPort}`],
      statsPort: 'off',
      payoutAmountTon: '0.000000001',
      payoutIntervalSeconds: 1,
      logLevel: 'silent',
    }),
  );
  client = await buildClient(
    clientConfigSchema.parse({
      ...chain,
      name: 'crash-client',
      dataDir: dirs.client,
      httpPort: 0,
      proxy: `127.0.0.1:${clientPort}`,
      logLevel: 'silent',
    }),
  );
  await worker.start();
  await client.start();
  await client.waitForProxy();

  let total = 0n;
  const ask = async (i: number) => {
    await until(
      async () => {
        const r = await post(`${client!.baseUrl}/chat/completions`, {
          model: 'cocoon-tiny',
          messages: [{ role: 'user', content: `crash test ${i}` }],
          max_tokens: 4 + (i % 5),
        });
        if (r.status !== 200) return false;
        total += BigInt((r.json as unknown as { usage: { total_cost: number } }).usage.total_cost);
        return true;
      },
      `request ${i} served`,
      15_000,
    );
  };
  for (let i = 0; i < 8; i++) await ask(i);
  const charged = async () =>
    (await ton.chain.open(ClientContract.fromAddress(clientContract)).getClientData()).charged;
  assert.equal(await charged(), 0n, 'nothing settled before the kill');

  proxy.kill('SIGKILL');
  await new Promise((r) => proxy!.once('exit', r));

  // Second life: settles within a second; the client and worker reconnect on their own.
  proxy = (await startProxy(1)).child;
  await until(async () => (await charged()) === total, 'the restarted proxy settles', 20_000);
  for (let i = 8; i < 11; i++) await ask(i);
  await until(async () => (await charged()) === total, 'later requests settle', 20_000);

  const workerContract = Address.parse(worker.payments!.stats()[0]!.contract);
  const workerShare = (total / LOCAL_PARAMS.pricePerToken) * LOCAL_PARAMS.workerFeePerToken;
  const paid = async () =>
    (await ton.chain.isDeployed(workerContract))
      ? (await ton.chain.open(WorkerContract.fromAddress(workerContract)).getWorkerData()).paidWorker
      : 0n;
  await until(async () => (await paid()) === workerShare, 'the worker is paid its share', 20_000);
  // Stable: nothing more arrives afterwards.
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(await charged(), total);
  assert.equal(await paid(), workerShare);
});
