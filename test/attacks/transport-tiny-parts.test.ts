import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { PART_OVERHEAD_BYTES } from '../../src/net/stream.ts';
import { encodeFrame, FrameType } from '../../src/protocol/frames.ts';
import { RawPeer, served, startServer, violationOf } from '../net/peers.ts';

// Attack: within the byte window, send the most parts possible — empty or 1-byte DATA — each of which
// costs a queue slot and an object far larger than its byte (and may pin the socket chunk it came in).
test('tiny parts: each queued part is charged its overhead; empty parts hold nothing', async () => {
  const budget = 256 * 1024;
  const srv = await startServer({
    session: { maxBufferedBytes: budget, maxStreamResetsPerWindow: 5, rateWindowMs: 60_000 },
    onStream: () => {}, // never reads
  });
  after(() => srv.close());
  const attacker = await RawPeer.connect(srv.port);
  const s = await srv.session(0);
  attacker.send(FrameType.Open, 1, '{}');
  const empty = encodeFrame(FrameType.Data, 1, Buffer.alloc(0));
  attacker.socket.write(Buffer.concat(Array.from({ length: 20_000 }, () => empty)));
  attacker.send(FrameType.Ping, 0, Buffer.alloc(8));
  await attacker.next((f) => f.type === FrameType.Pong); // every empty part was taken in
  assert.equal(s.bufferedBytes, 2, 'only the OPEN header is held');
  const burst: Buffer[] = [];
  for (let id = 3; id < 30; id += 2) {
    burst.push(encodeFrame(FrameType.Open, id, '{}'));
    for (let i = 0; i < 5000; i++) burst.push(encodeFrame(FrameType.Data, id, 'x'));
  }
  attacker.socket.write(Buffer.concat(burst));
  assert.equal(await violationOf(s), 'stream_reset_flood');
  assert.equal(await attacker.goAwayCode(), 'stream_reset_flood'); // after every frame we sent it
  assert.ok(s.peakBufferedBytes <= budget, `held ${s.peakBufferedBytes}`);
  // Charged per part: the budget filled after ~budget / (1 + overhead) parts, not after `budget` bytes.
  assert.ok(attacker.resets().some((r) => r.code === 'session_buffer_full'));
  assert.ok(budget / (1 + PART_OVERHEAD_BYTES) < 5000);
  assert.ok(await served(srv.port, 256 * 1024));
});
