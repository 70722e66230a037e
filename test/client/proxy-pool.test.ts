import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { ClientPayments } from '../../src/client/client-payments.ts';
import { type ProxyConnection, ProxyPool } from '../../src/client/proxy-pool.ts';
import { type CocoonError, ServiceUnavailableError } from '../../src/errors.ts';
import type { Session } from '../../src/net/session.ts';
import type { TlsCredentials } from '../../src/net/tls.ts';
import { silentLogger } from '../../src/ops/log.ts';
import { until } from '../e2e/harness.ts';
import { anyRole, credentialsFor, startServer } from '../net/peers.ts';

// The pool's choice reads only each connection's figures; links are never started here, and a
// connection counts as up when its link holds an open session.
const up = { closed: false, close() {} } as unknown as Session;

function poolOf(n: number): { pool: ProxyPool; conns: ProxyConnection[] } {
  const pool = new ProxyPool({
    link: {
      credentials: {} as TlsCredentials,
      trust: { verifiers: new Map(), roles: ['proxy'], minTier: 'dev' },
      session: { hello: { role: 'client', name: 't' } },
    },
    log: silentLogger,
    onOffer: () => {},
  });
  pool.update(Array.from({ length: n }, (_, i) => ({ host: '127.0.0.1', port: 1 + i })));
  const conns = pool.all();
  for (const c of conns) {
    c.link.stop(); // never dial
    c.link.session = up;
  }
  return { pool, conns };
}

describe('choosing a proxy', () => {
  test('the faster of two idle proxies; under load, the one with the least expected wait', () => {
    const { pool, conns } = poolOf(2);
    const [slow, fast] = conns as [ProxyConnection, ProxyConnection];
    slow.recordSuccess(100);
    fast.recordSuccess(10);
    assert.equal(pool.choose(new Set()), fast);
    fast.inFlight = 20; // 21 × 10 > 1 × 100
    assert.equal(pool.choose(new Set()), slow);
  });

  test('proxies that are down, draining or already tried are skipped; none left -> 503', () => {
    const { pool, conns } = poolOf(3);
    const [a, b, c] = conns as [ProxyConnection, ProxyConnection, ProxyConnection];
    a.link.session = null;
    b.draining = true;
    assert.equal(pool.choose(new Set()), c);
    assert.throws(
      () => pool.choose(new Set([c])),
      (e: CocoonError) => e.status === 503 && e.code === 'proxy_draining' && e.retryAfter === 1,
    );
    b.draining = false;
    assert.equal(pool.choose(new Set([c])), b);
  });

  test('a failing proxy is cooled down, and used only as the last resort', () => {
    const { pool, conns } = poolOf(2);
    const [flaky, steady] = conns as [ProxyConnection, ProxyConnection];
    flaky.recordFailure();
    flaky.recordFailure();
    assert.equal(flaky.health.state, 'cooling');
    assert.equal(pool.choose(new Set()), steady);
    assert.equal(pool.choose(new Set([steady])), flaky);
  });

  test('a proxy no longer listed is let go; a new one is added', () => {
    const { pool, conns } = poolOf(2);
    pool.update([
      { host: '127.0.0.1', port: 2 },
      { host: '127.0.0.1', port: 9 },
    ]);
    assert.deepEqual(
      pool.all().map((c) => c.address),
      ['127.0.0.1:2', '127.0.0.1:9'],
    );
    assert.equal(conns[0]!.draining, true);
    pool.stop();
  });
});

describe('why a proxy cannot be used', () => {
  /** A paying desk that never hears from the proxy: the session is up, the account never confirmed. */
  const unconfirmed = () =>
    ({
      helloInfo: { wallet: 'w' },
      isReady: false,
      payer: { account: null, authorisedTotal: 0n },
      attach() {},
      ready: () => new Promise<void>(() => {}),
      onOffer() {},
    }) as unknown as ClientPayments;

  test('a proxy that hangs up before confirming our account (chain_unavailable) is shown refused, in stats and in the 503', async () => {
    const server = await startServer();
    after(() => server.close());
    const why = new ServiceUnavailableError(
      'the proxy cannot read your client contract now',
      'chain_unavailable',
    );
    const hangUp = setInterval(() => {
      for (const s of server.sessions) if (!s.closed) s.close(why);
    }, 5);
    after(() => clearInterval(hangUp));
    const pool = new ProxyPool({
      link: {
        credentials: await credentialsFor('client'),
        trust: anyRole,
        session: { hello: { role: 'client', name: 't' } },
        minBackoffMs: 20,
      },
      newPayments: unconfirmed,
      log: silentLogger,
      onOffer: () => {},
    });
    after(() => pool.stop());
    pool.update([{ host: '127.0.0.1', port: server.port }]);
    const c = pool.all()[0]!;
    await until(() => c.refusal !== null, 'the refusal is recorded');
    assert.deepEqual(c.refusal, { code: 'chain_unavailable', message: why.message });
    const snap = c.snapshot();
    assert.equal(snap.usable, false);
    assert.equal(snap.refused?.code, 'chain_unavailable');
    assert.throws(
      () => pool.choose(new Set()),
      (e: CocoonError) =>
        e.status === 503 &&
        e.code === 'chain_unavailable' &&
        e.message.includes(`127.0.0.1:${server.port}: the proxy cannot read your client contract now`) &&
        (e.retryAfter ?? 0) >= 1,
    );
  });
});
