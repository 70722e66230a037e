import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PeerIdentity } from '../../src/attest/types.ts';
import type { CocoonError } from '../../src/errors.ts';
import type { Session } from '../../src/net/session.ts';
import { chooseWorker } from '../../src/proxy/router.ts';
import { RECENTLY_SERVED_MS, WorkerRegistry } from '../../src/proxy/worker-registry.ts';

// The router reads only the registry's figures; sessions and identities are irrelevant to it.
const noSession = {} as Session;
const noPeer = { attestation: { kind: 'dev', tier: 'dev', imageHash: '00' } } as PeerIdentity;

function registryWith(...workers: { name: string; coefficient?: number; max?: number; model?: string }[]) {
  const r = new WorkerRegistry();
  const conns = workers.map((w) =>
    r.add(noSession, noPeer, w.name, {
      models: [{ name: w.model ?? 'm', maxConcurrent: w.max ?? 4, coefficient: w.coefficient ?? 1000 }],
      enabled: true,
    }),
  );
  return { r, conns };
}

describe('chooseWorker', () => {
  test('unknown model -> 404 model_not_found', () => {
    const { r } = registryWith({ name: 'a' });
    assert.throws(
      () => chooseWorker(r, 'other', 4000),
      (e: CocoonError) => e.status === 404 && e.code === 'model_not_found',
    );
  });

  test('a model whose last worker just left -> 503 no_worker_connected with Retry-After; later 404', () => {
    const { r, conns } = registryWith({ name: 'a' }, { name: 'b' });
    const t0 = 1_000_000;
    r.remove(conns[0]!, t0);
    assert.equal(chooseWorker(r, 'm', 4000, 'dev', undefined, t0).name, 'b', 'b still serves it');
    r.remove(conns[1]!, t0);
    assert.throws(
      () => chooseWorker(r, 'm', 4000, 'dev', undefined, t0 + 1000),
      (e: CocoonError) =>
        e.status === 503 &&
        e.code === 'no_worker_connected' &&
        e.retryAfter === 1 &&
        /retry shortly/.test(e.message),
    );
    assert.throws(
      () => chooseWorker(r, 'm', 4000, 'dev', undefined, t0 + RECENTLY_SERVED_MS + 1),
      (e: CocoonError) => e.status === 404 && e.code === 'model_not_found',
    );
    assert.throws(
      () => chooseWorker(r, 'never-served', 4000, 'dev', undefined, t0 + 1000),
      (e: CocoonError) => e.status === 404 && e.code === 'model_not_found',
    );
  });

  test('lowest (running + 1) × average time wins; idle fast beats idle slow', () => {
    const { r, conns } = registryWith({ name: 'slow' }, { name: 'fast' });
    conns[0]!.avgQueryMs = 100;
    conns[1]!.avgQueryMs = 10;
    assert.equal(chooseWorker(r, 'm', 4000).name, 'fast');
    conns[1]!.running = 3; // 4 × 10 = 40 < 1 × 100
    assert.equal(chooseWorker(r, 'm', 4000).name, 'fast');
    conns[1]!.running = 3;
    conns[0]!.running = 0;
    conns[1]!.avgQueryMs = 50; // 4 × 50 = 200 > 100
    assert.equal(chooseWorker(r, 'm', 4000).name, 'slow');
  });

  test('a worker without history is tried as if it were the fastest', () => {
    const { r, conns } = registryWith({ name: 'known' }, { name: 'new' });
    conns[0]!.avgQueryMs = 20;
    conns[0]!.running = 1;
    assert.equal(chooseWorker(r, 'm', 4000).name, 'new');
  });

  test('full workers are skipped; all full -> 503 workers_busy', () => {
    const { r, conns } = registryWith({ name: 'a', max: 1 }, { name: 'b', max: 1 });
    conns[0]!.running = 1;
    assert.equal(chooseWorker(r, 'm', 4000).name, 'b');
    conns[1]!.running = 1;
    assert.throws(
      () => chooseWorker(r, 'm', 4000),
      (e: CocoonError) => e.status === 503 && e.code === 'workers_busy',
    );
  });

  test('coefficient above the caller max is skipped and named in the error', () => {
    const { r } = registryWith({ name: 'a', coefficient: 3000 }, { name: 'b', coefficient: 2000 });
    assert.equal(chooseWorker(r, 'm', 2500).name, 'b');
    assert.throws(
      () => chooseWorker(r, 'm', 1000),
      (e: CocoonError) => e.code === 'coefficient_too_low' && /coefficient=2000/.test(e.message),
    );
  });

  test('disabled workers are skipped', () => {
    const { r, conns } = registryWith({ name: 'a' }, { name: 'b' });
    conns[0]!.info = { ...conns[0]!.info, enabled: false };
    assert.equal(chooseWorker(r, 'm', 4000).name, 'b');
  });

  test("workers below the caller's min trust tier are skipped; none left -> 503 trust_tier_unavailable", () => {
    const { r } = registryWith({ name: 'a' }, { name: 'b' });
    assert.equal(chooseWorker(r, 'm', 4000, 'dev').name, 'a');
    assert.throws(
      () => chooseWorker(r, 'm', 4000, 'tee-gpu'),
      (e: CocoonError) =>
        e.status === 503 && e.code === 'trust_tier_unavailable' && /tee-gpu.*at most 'dev'/.test(e.message),
    );
  });

  test('a worker cooling down after failures is skipped, and used only as the last resort', () => {
    const { r, conns } = registryWith({ name: 'a' }, { name: 'b' });
    const now = 1_000_000;
    conns[0]!.health.recordFailure(now);
    conns[0]!.health.recordFailure(now);
    assert.equal(conns[0]!.health.state, 'cooling');
    assert.equal(chooseWorker(r, 'm', 4000, 'dev', undefined, now).name, 'b');
    conns[1]!.info = { ...conns[1]!.info, enabled: false };
    assert.equal(chooseWorker(r, 'm', 4000, 'dev', undefined, now).name, 'a');
  });

  test('workers a re-dispatched request already tried are excluded', () => {
    const { r, conns } = registryWith({ name: 'a' }, { name: 'b' });
    assert.equal(chooseWorker(r, 'm', 4000, 'dev', new Set([conns[0]!])).name, 'b');
    assert.throws(
      () => chooseWorker(r, 'm', 4000, 'dev', new Set(conns)),
      (e: CocoonError) => e.status === 503,
    );
  });

  test('the failure rate weighs routing: of two equally fast workers the reliable one wins', () => {
    const { r, conns } = registryWith({ name: 'flaky' }, { name: 'reliable' });
    for (const c of conns) c.avgQueryMs = 10;
    conns[0]!.health.recordFailure();
    assert.equal(conns[0]!.health.state, 'ok');
    assert.equal(chooseWorker(r, 'm', 4000).name, 'reliable');
  });
});
