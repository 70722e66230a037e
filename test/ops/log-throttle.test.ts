import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LogThrottle } from '../../src/ops/log-throttle.ts';

test('a flood of one key logs a few lines per window, and the next line says how many were dropped', () => {
  let now = 0;
  const t = new LogThrottle(3, 1000, () => now);
  const logged = Array.from({ length: 100 }, () => t.admit('handshake_timeout').log).filter(Boolean);
  assert.equal(logged.length, 3);
  assert.deepEqual(t.admit('other'), { log: true, suppressed: 0 }, 'keys are throttled apart');
  now = 1000;
  assert.deepEqual(t.admit('handshake_timeout'), { log: true, suppressed: 97 });
  assert.deepEqual(t.admit('handshake_timeout'), { log: true, suppressed: 0 });
});

test('a stranger choosing keys cannot grow it past its bound', () => {
  const t = new LogThrottle(1, 1000, () => 0, 16);
  for (let i = 0; i < 10_000; i++) t.admit(`code-${i}`);
  assert.ok((t as unknown as { keys: Map<string, unknown> }).keys.size <= 16);
});
