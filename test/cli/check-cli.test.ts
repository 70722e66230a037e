import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Address, toNano } from '@ton/core';
import { HashKind } from '../../src/chain/contracts/opcodes.ts';
import { RootContract } from '../../src/chain/contracts/root-contract.ts';
import { buildProxy } from '../../src/config/build-nodes.ts';
import { proxyConfigSchema } from '../../src/config/config.ts';
import { type LocalTon, startLocalTon } from '../../src/local/local-ton.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import { cocoon, type Result } from './run-cocoon.ts';

/** What a dev node's quote measures: the same for every dev node, worker or proxy. */
const DEV_IMAGE = createHash('sha256').update('dev-image:cocoon-dev').digest('hex');
/** The local root allows one model, sha256('cocoon-tiny'), served under that identity. */
const MODEL = `cocoon-tiny@builtin:${createHash('sha256').update('cocoon-tiny').digest('hex')}`;

function exits(r: Result, code: number): string {
  assert.equal(
    r.code,
    code,
    `expected exit ${code}, got ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
  );
  return r.stdout;
}

/** A port nothing listens on (bound for a moment, then released). */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('cocoon worker check / proxy check against a local chain with a root', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-check-cli-'));
  const proxyDir = join(dir, 'proxy');
  const workerDir = join(dir, 'worker');
  let ton: LocalTon;
  let proxy: ProxyNode;
  let dead: number;
  let chain: { chainEndpoint: string; root: string };
  const file = (name: string, config: Record<string, unknown>) => {
    const path = join(dir, `${name}.json`);
    writeFileSync(path, JSON.stringify(config));
    return path;
  };
  const workerConfig = (extra: Record<string, unknown> = {}) => ({
    name: 'check-worker',
    dataDir: workerDir,
    proxy: [`127.0.0.1:${proxy.workerPort}`],
    models: [MODEL],
    ...chain,
    ...extra,
  });
  let proxyConfig: string;

  before(async () => {
    ton = await startLocalTon(join(dir, 'ton'), 0);
    chain = { chainEndpoint: ton.endpoint, root: ton.root.toString() };
    await ton.fundNode(proxyDir, toNano('30'));
    await ton.fundNode(workerDir, toNano('1'));
    // A paying proxy that takes its allow-lists from the root, as production proxies do.
    proxy = await buildProxy(
      proxyConfigSchema.parse({
        name: 'check-proxy',
        dataDir: proxyDir,
        workerPort: 0,
        clientPort: 0,
        statsPort: null,
        trustFromRoot: true,
        logLevel: 'silent',
        ...chain,
      }),
    );
    await proxy.start();
    await ton.registerProxy(Address.parse(proxy.billing!.proxyContract), `127.0.0.1:${proxy.clientPort}`);
    dead = await deadPort();
    proxyConfig = file('proxy', {
      name: 'check-proxy',
      dataDir: proxyDir,
      workerPort: proxy.workerPort,
      clientPort: proxy.clientPort,
      statsPort: 'off',
      trustFromRoot: true,
      ...chain,
    });
  });

  after(async () => {
    await proxy?.stop();
    await ton?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('not allowed, unreachable, no chain: each reported with its fix, exit 1', async () => {
    const [notAllowed, proxyCheck, noChain, deadProxy] = await Promise.all([
      cocoon('worker', 'check', '--config', file('worker', workerConfig())),
      cocoon('proxy', 'check', '--config', proxyConfig),
      cocoon(
        'worker',
        'check',
        '--config',
        file('no-chain', workerConfig({ chainEndpoint: `http://127.0.0.1:${dead}` })),
      ),
      cocoon(
        'worker',
        'check',
        '--json',
        '--config',
        file('dead-proxy', workerConfig({ proxy: [`127.0.0.1:${dead}`] })),
      ),
    ]);

    const w = exits(notAllowed, 1);
    assert.match(w, /DEV TRUST/);
    assert.match(
      w,
      new RegExp(`FAIL\\s+worker image\\s+${DEV_IMAGE} is not on the root's worker-image list`),
    );
    assert.match(
      w,
      new RegExp(`fix: governance .* cocoon root allow worker-image ${DEV_IMAGE} --root ${chain.root}`),
    );
    // The proxy itself refused the worker's real credentials, and says why.
    assert.match(
      w,
      new RegExp(
        `FAIL\\s+127\\.0\\.0\\.1:${proxy.workerPort}\\s+proxy .*refused this worker: image_not_allowed`,
      ),
    );
    assert.match(w, /ok\s+model\s+cocoon-tiny@builtin:\w+: its hash is on the root's list/);
    assert.match(w, /ok\s+wallet\s+\S+ balance 2\.000000000 TON/);
    assert.match(w, /problems? blocks? this worker.*\(exit 1\)/);

    const p = exits(proxyCheck, 1);
    assert.match(p, new RegExp(`FAIL\\s+proxy image\\s+${DEV_IMAGE} is not on the root's proxy-image list`));
    assert.match(p, new RegExp(`cocoon root allow proxy-image ${DEV_IMAGE}`));
    assert.match(p, /WARN\s+worker images\s+the root lists no worker image/);
    assert.match(
      p,
      new RegExp(
        `ok\\s+worker port\\s+127\\.0\\.0\\.1:${proxy.workerPort} is in use by this proxy \\(it is running\\)`,
      ),
    );
    assert.match(
      p,
      new RegExp(
        `ok\\s+proxy contract\\s+${proxy.billing!.proxyContract} deployed, open, stake 10\\.000000000 TON`,
      ),
    );
    assert.match(p, new RegExp(`ok\\s+registered\\s+as #\\d+ at 127\\.0\\.0\\.1:${proxy.clientPort}`));

    const n = exits(noChain, 1);
    assert.match(n, /FAIL\s+TON API\s+cannot reach the TON API at http:\/\/127\.0\.0\.1:\d+/);
    assert.match(n, new RegExp(`fix: start the local chain \\(cocoon chain --port ${dead}\\)`));

    const d = JSON.parse(exits(deadProxy, 1));
    assert.equal(d.ok, false);
    assert.equal(d.exitCode, 1);
    assert.equal(d.attestation.imageHash, DEV_IMAGE);
    assert.equal(d.attestation.devImage, true);
    assert.equal(d.imageOnRoot, false);
    assert.deepEqual(
      d.proxies.map((x: { address: string; outcome: string }) => [x.address, x.outcome]),
      [[`127.0.0.1:${dead}`, 'unreachable']],
    );
    const item = d.checks.find((c: { section: string }) => c.section === 'proxies');
    assert.equal(item.status, 'fail');
    assert.match(item.fix, /start the proxy/);
  });

  test('once governance allows the image, the proxy accepts the worker: exit 0', async () => {
    // Governance through the root wrapper (the LocalTon helper sends add-hash from the root's owner).
    await ton.setAllowed(HashKind.worker, DEV_IMAGE, true);
    await ton.setAllowed(HashKind.proxy, DEV_IMAGE, true);
    const root = ton.chain.open(RootContract.fromAddress(ton.root));
    assert.equal(await root.getIsAllowed(HashKind.worker, BigInt(`0x${DEV_IMAGE}`)), true);
    const policy = (proxy as unknown as { opts: { trust: { policy: { refresh(): Promise<boolean> } } } }).opts
      .trust.policy;
    await policy.refresh();

    const [json, withDead, proxyCheck] = await Promise.all([
      cocoon('worker', 'check', '--config', file('worker', workerConfig()), '--json'),
      cocoon(
        'worker',
        'check',
        '--config',
        file('and-dead', workerConfig({ proxy: [`127.0.0.1:${proxy.workerPort}`, `127.0.0.1:${dead}`] })),
      ),
      cocoon('proxy', 'check', '--config', proxyConfig),
    ]);
    const j = JSON.parse(exits(json, 0));
    assert.equal(j.ok, true);
    assert.equal(j.problems, 0);
    assert.equal(j.imageOnRoot, true);
    assert.equal(j.models[0].onRoot, true);
    assert.equal(j.chain.reachable, true);
    assert.equal(j.wallet.balance, '2.000000000', 'the faucet tops up to twice the minimum');
    assert.equal(j.proxies[0].outcome, 'accepted');
    assert.equal(j.proxies[0].proxy.name, 'check-proxy');
    assert.equal(j.proxies[0].proxy.proxyContract, proxy.billing!.proxyContract);
    // The probe announced itself disabled (nothing was routed to it) and hung up.
    for (let i = 0; proxy.registry.size > 0 && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(proxy.registry.size, 0, 'the probe hung up');

    const t = exits(withDead, 0);
    assert.match(t, /ok\s+worker image\s+\w+ is on the root's list/);
    assert.match(
      t,
      new RegExp(
        `ok\\s+127\\.0\\.0\\.1:${proxy.workerPort}\\s+accepts this worker: session up with proxy 'check-proxy'`,
      ),
    );
    assert.match(t, new RegExp(`WARN\\s+127\\.0\\.0\\.1:${dead}\\s+unreachable`));
    assert.match(t, /no problem blocks this worker; \d+ warnings \(exit 0\)/);

    const p = exits(proxyCheck, 0);
    assert.match(p, /ok\s+proxy image\s+\w+ is on the root's list/);
  });
});
