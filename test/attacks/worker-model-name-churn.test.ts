import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PeerIdentity } from '../../src/attest/types.ts';
import type { Session } from '../../src/net/session.ts';
import { RECENTLY_SERVED_MAX, WorkerRegistry } from '../../src/proxy/worker-registry.ts';

/**
 * A model whose last worker just left is answered 503 (retry) rather than 404 for a while, so the proxy
 * remembers such models. Workers that connect and leave, each with a new model name, must not grow that
 * memory without bound: the oldest are forgotten first.
 */
const noSession = {} as Session;
const noPeer = { attestation: { kind: 'dev', tier: 'dev', imageHash: '00' } } as PeerIdentity;

test("attack: workers leave with ever new model names to grow the proxy's memory of recently served models", () => {
  const r = new WorkerRegistry();
  const t0 = 1_000_000;
  for (let i = 0; i < RECENTLY_SERVED_MAX + 100; i++) {
    const w = r.add(noSession, noPeer, `w${i}`, {
      models: [{ name: `m${i}`, maxConcurrent: 1, coefficient: 1000 }],
      enabled: true,
    });
    r.remove(w, t0);
  }
  const remembered = Array.from({ length: RECENTLY_SERVED_MAX + 100 }, (_, i) =>
    r.recentlyServed(`m${i}`, t0),
  );
  assert.equal(remembered.filter(Boolean).length, RECENTLY_SERVED_MAX);
  assert.equal(remembered[0], false, 'the oldest went first');
  assert.equal(remembered.at(-1), true);
});
