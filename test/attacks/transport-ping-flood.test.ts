import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { encodeFrame, FrameType } from '../../src/protocol/frames.ts';
import { RawPeer, served, startServer, violationOf } from '../net/peers.ts';

// Attack: a flood of PINGs, each of which costs us a PONG (and would pile up if the attacker stops reading).
test('ping flood: cut off with ping_flood after maxPingsPerWindow; at most that many PONGs sent', async () => {
  const srv = await startServer({ session: { maxPingsPerWindow: 100, rateWindowMs: 60_000 } });
  after(() => srv.close());
  const attacker = await RawPeer.connect(srv.port);
  const s = await srv.session(0);
  const ping = encodeFrame(FrameType.Ping, 0, Buffer.alloc(8));
  attacker.socket.write(Buffer.concat(Array.from({ length: 10_000 }, () => ping)));
  assert.equal(await violationOf(s), 'ping_flood');
  await attacker.closed;
  assert.ok(attacker.frames.filter((f) => f.type === FrameType.Pong).length <= 100);
  assert.ok(s.framesOut <= 103, `sent ${s.framesOut} frames`);
  assert.ok(await served(srv.port, 256 * 1024));
});
