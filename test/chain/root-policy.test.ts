import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import type { TrustLists } from '../../src/attest/policy.ts';
import { RootPolicy } from '../../src/chain/root-policy.ts';
import { TonChain } from '../../src/chain/ton-chain.ts';
import { type LocalTon, startLocalTon } from '../../src/local/local-ton.ts';
import { until } from '../e2e/harness.ts';
import { freePort } from '../faults/daemon-process.ts';

/** A logger whose JSON lines the test reads back. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { lines, log };
}

test('a daemon with trustFromRoot boots while the chain is down: nothing is accepted, the read is retried with backoff, and the lists load once the chain answers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-root-policy-down-'));
  const port = await freePort();
  let ton: LocalTon | null = await startLocalTon(dir, port);
  const root = ton.root;
  await ton.stop(); // deployed; now a closed port
  ton = null;
  const policy = { current: null as RootPolicy | null };
  after(async () => {
    policy.current?.stop();
    await ton?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const chain = TonChain.connect({ endpoint: `http://127.0.0.1:${port}`, network: 'local' });
  const { lines, log } = capture();
  const changes: TrustLists[] = [];
  const started = performance.now();
  const p = new RootPolicy(chain.client, root, log).startInBackground();
  policy.current = p;
  p.onChange((l) => changes.push(l));
  assert.ok(performance.now() - started < 100, 'returns at once');
  const empty = p.current();
  assert.deepEqual(
    [empty.models?.size, empty.workerImages?.size, empty.proxyImages?.size],
    [0, 0, 0],
    'empty lists, enforced exactly: nothing is allowed',
  );

  await new Promise((r) => setTimeout(r, 3500));
  const retries = lines.filter((l) => l.level === 40);
  // 1 s doubling with ±25% jitter: tries near 0, 1 and 3 s.
  assert.ok(retries.length >= 2 && retries.length <= 4, JSON.stringify(retries));
  assert.ok(
    retries.every((l) => typeof l.retryInMs === 'number'),
    'each line says when the next try is',
  );
  assert.ok(p.lastError, 'why it has no lists yet');

  ton = await startLocalTon(dir, port);
  await until(() => changes.length === 1, 'the lists are read once the chain answers', 30_000);
  assert.equal(p.current().models?.size, 1, 'the local root allows the built-in model');
  assert.equal(p.lastError, null);
  assert.ok(lines.some((l) => l.level === 30 && String(l.msg).includes('answers again')));
});
