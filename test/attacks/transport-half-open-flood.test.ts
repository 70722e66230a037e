import assert from 'node:assert/strict';
import type * as net from 'node:net';
import { after, test } from 'node:test';
import { served, startServer, tcpConnect, until, waitClosed } from '../net/peers.ts';

// Attack: open many connections from one address and leave them all in the handshake.
test('half-open flood: one address holds at most maxPendingPerAddress handshakes; others are served', async () => {
  const srv = await startServer({ listener: { maxPendingPerAddress: 8, handshakeTimeoutMs: 10_000 } });
  after(() => srv.close());
  const flood: net.Socket[] = [];
  after(() => {
    for (const s of flood) s.destroy();
  });
  for (let i = 0; i < 200; i++) {
    const s = await tcpConnect(srv.port, '127.0.0.2');
    s.on('error', () => {});
    flood.push(s);
  }
  const flooded = () => srv.refused.filter((e) => e.code === 'too_many_handshakes').length;
  await until(() => flooded() === 192, '192 refusals');
  assert.equal(srv.refused.length, 192);
  await Promise.all(flood.slice(8).map(waitClosed));
  assert.equal(flood.filter((s) => !s.destroyed).length, 8);
  assert.ok(await served(srv.port, 256 * 1024), 'a peer from another address is served');
  // Handshakes that end free their slot: the address may connect again.
  for (const s of flood.splice(0)) s.destroy();
  await new Promise((r) => setTimeout(r, 20));
  const again = await tcpConnect(srv.port, '127.0.0.2');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(again.destroyed, false);
  assert.equal(flooded(), 192, 'no new refusal');
  again.destroy();
});
