import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PeerHealth } from '../../src/net/peer-health.ts';

const opts = { failuresToCool: 2, baseCooldownMs: 1000, maxCooldownMs: 4000 };

describe('worker health (circuit breaker)', () => {
  test('one failure only raises the failure rate; two in a row cool the worker down', () => {
    const h = new PeerHealth(opts);
    h.recordFailure(0);
    assert.equal(h.state, 'ok');
    assert.ok(h.failureRate > 0 && h.weightFactor > 1);
    h.recordFailure(0);
    assert.equal(h.state, 'cooling');
    assert.equal(h.cooldownUntil, 1000);
    assert.equal(h.admits(0, 999), false);
  });

  test('after the cool-down one probe at a time is let through; its success restores the worker', () => {
    const h = new PeerHealth(opts);
    h.recordFailure(0);
    h.recordFailure(0);
    assert.equal(h.admits(0, 1000), true);
    assert.equal(h.state, 'probing');
    assert.equal(h.admits(1, 1000), false, 'a second request waits for the probe');
    h.recordSuccess();
    assert.equal(h.state, 'ok');
    assert.equal(h.admits(5, 1000), true);
  });

  test('a failed probe cools it again for twice as long, up to the maximum; success resets the backoff', () => {
    const h = new PeerHealth(opts);
    h.recordFailure(0);
    h.recordFailure(0); // 1 s
    const expect = [2000, 4000, 4000];
    let now = 1000;
    for (const ms of expect) {
      assert.equal(h.admits(0, now), true);
      h.recordFailure(now);
      assert.equal(h.cooldownUntil - now, ms);
      now = h.cooldownUntil;
    }
    h.admits(0, now);
    h.recordSuccess();
    h.recordFailure(now);
    h.recordFailure(now);
    assert.equal(h.cooldownUntil - now, 1000);
  });

  test('successes decay the failure rate', () => {
    const h = new PeerHealth(opts);
    h.recordFailure(0);
    const rate = h.failureRate;
    for (let i = 0; i < 10; i++) h.recordSuccess();
    assert.ok(h.failureRate < rate / 5);
  });
});
