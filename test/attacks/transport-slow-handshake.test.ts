import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { hello, RawPeer, served, startServer, tcpConnect, until, waitClosed } from '../net/peers.ts';

// Attack (slowloris): hold connections in their handshake — no TLS at all, TLS and then silence, or a
// HELLO dribbled a byte at a time — so they never become sessions and never time out.
test('slow handshakes: each is dropped with handshake_timeout within handshakeTimeoutMs', async () => {
  const srv = await startServer({ listener: { handshakeTimeoutMs: 300 } });
  after(() => srv.close());
  const t0 = Date.now();
  const noTls = await tcpConnect(srv.port);
  const noHello = await RawPeer.connect(srv.port, { sayHello: false });
  const dribbler = await RawPeer.connect(srv.port, { sayHello: false });
  const bytes = hello();
  let i = 0;
  const drip = setInterval(() => {
    if (i < bytes.length - 1 && !dribbler.socket.destroyed) dribbler.socket.write(bytes.subarray(i, ++i));
  }, 20);
  after(() => clearInterval(drip));
  assert.ok(await served(srv.port, 256 * 1024), 'an honest peer is served meanwhile');
  await Promise.all([waitClosed(noTls), noHello.closed, dribbler.closed]);
  clearInterval(drip);
  assert.ok(Date.now() - t0 < 2000);
  await until(() => srv.refused.length === 3, 'three refusals');
  assert.deepEqual(
    srv.refused.map((e) => e.code),
    ['handshake_timeout', 'handshake_timeout', 'handshake_timeout'],
  );
  assert.equal(srv.sessions.length, 1, 'only the honest peer got a session');
});
