import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { toNano } from '@ton/core';
import { StaticPolicy } from '../../src/attest/policy.ts';
import { HashKind } from '../../src/chain/contracts/opcodes.ts';
import { startLocalTon } from '../../src/local/local-ton.ts';
import { Harness, until } from './harness.ts';

/** The dev provider's image hash: what a dev worker's attestation measures. */
const DEV_IMAGE = createHash('sha256').update('dev-image:cocoon-dev').digest('hex');
const OTHER = 'ab'.repeat(32);
const MODEL_HASH = 'cd'.repeat(32);

async function refusals(url: string | null): Promise<Record<string, number>> {
  const s = (await (await fetch(`${url}/jsonstats`)).json()) as { refusals: Record<string, number> };
  return s.refusals;
}

describe('image and model allow-lists', () => {
  const h = new Harness();
  after(() => h.stop());

  test('a worker whose image is not allowed is refused at the handshake; the reason is in /jsonstats', async () => {
    const proxy = await h.proxy({ allowedWorkerImages: [OTHER] });
    await h.worker(proxy, {}, { register: false });
    await until(
      async () => ((await refusals(proxy.statsUrl)).image_not_allowed ?? 0) > 0,
      'image refusal',
      10_000,
    );
    assert.equal(proxy.registry.size, 0);
  });

  test('models are allow-listed by content hash: a bare name or another hash is refused, an allowed identity served', async () => {
    const proxy = await h.proxy({ allowedWorkerImages: [DEV_IMAGE], allowedModels: [MODEL_HASH] });
    await h.worker(proxy, { models: ['cocoon-tiny'] }, { register: false });
    await h.worker(proxy, { models: [`cocoon-tiny@v1:${'ee'.repeat(32)}`] }, { register: false });
    await until(
      async () => ((await refusals(proxy.statsUrl)).model_not_allowed ?? 0) >= 2,
      'model refusals',
      10_000,
    );
    assert.equal(proxy.registry.size, 0);
    await h.worker(proxy, { models: [`cocoon-tiny@v1:${MODEL_HASH}`] });
    assert.deepEqual(proxy.registry.models(), ['cocoon-tiny'], 'routing uses the base name');
    const c = await h.client(proxy);
    const r = await fetch(`${c.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'cocoon-tiny',
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 3,
      }),
    });
    assert.equal(r.status, 200);
    assert.equal(
      r.headers.get('x-cocoon-model'),
      `cocoon-tiny@v1:${MODEL_HASH}`,
      'the client sees the identity',
    );
  });

  test('when the lists change, the proxy drops workers that left them', async () => {
    const policy = new StaticPolicy({ proxyImages: null, workerImages: new Set([DEV_IMAGE]), models: null });
    const proxy = await h.proxy();
    // Swap in a policy we can change (as a root update would).
    (proxy as unknown as { opts: { trust: { policy: StaticPolicy } } }).opts.trust.policy = policy;
    policy.onChange(() => (proxy as unknown as { recheckWorkers(): void }).recheckWorkers());
    await h.worker(proxy);
    assert.equal(proxy.registry.size, 1);
    policy.update({ proxyImages: null, workerImages: new Set([OTHER]), models: null });
    await until(() => proxy.registry.size === 0, 'worker dropped');
    assert.ok(((await refusals(proxy.statsUrl)).image_not_allowed ?? 0) >= 1);
  });
});

describe('allow-lists from the root contract', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-root-policy-'));
  const h = new Harness();
  after(async () => {
    await h.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a worker is accepted once the root lists its image and model, and dropped when the image is removed', async () => {
    const ton = await startLocalTon(dir, 0);
    after(() => ton.stop());
    // A root makes both nodes pay and be paid on it too: they need funded wallets.
    const dirs = { proxy: join(dir, 'proxy'), worker: join(dir, 'worker') };
    await ton.fundNode(dirs.proxy, toNano('30'));
    await ton.fundNode(dirs.worker, toNano('1'));
    const chain = { chainEndpoint: ton.endpoint, root: ton.root.toString() };
    const proxy = await h.proxy({ ...chain, trustFromRoot: true, dataDir: dirs.proxy });
    const policy = (proxy as unknown as { opts: { trust: { policy: { refresh(): Promise<boolean> } } } }).opts
      .trust.policy;
    // The root lists no worker image yet, so none is allowed; governance allows the dev image.
    await ton.setAllowed(HashKind.worker, DEV_IMAGE, true);
    assert.equal(await policy.refresh(), true, 'the root version moved');
    // The local root allows one model, sha256('cocoon-tiny'), served under that identity.
    const modelHash = createHash('sha256').update('cocoon-tiny').digest('hex');
    await h.worker(proxy, { ...chain, dataDir: dirs.worker, models: [`cocoon-tiny@builtin:${modelHash}`] });
    assert.equal(proxy.registry.size, 1);
    await ton.setAllowed(HashKind.worker, DEV_IMAGE, false);
    await policy.refresh();
    await until(() => proxy.registry.size === 0, 'worker dropped after the root removed it', 5_000);
    assert.ok(((await refusals(proxy.statsUrl)).image_not_allowed ?? 0) >= 1);
  });
});
