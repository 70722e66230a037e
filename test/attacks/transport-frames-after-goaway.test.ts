import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { encodeFrame, FrameType } from '../../src/protocol/frames.ts';
import { RawPeer, served, startServer } from '../net/peers.ts';

// Attack: say GOAWAY and keep going — open calls, send data — hoping they are still served or held.
test('frames after GOAWAY are neither served nor held', async () => {
  let calls = 0;
  const srv = await startServer({ onStream: () => void calls++ });
  after(() => srv.close());
  const attacker = await RawPeer.connect(srv.port);
  const s = await srv.session(0);
  const burst = [
    encodeFrame(FrameType.GoAway, 0, JSON.stringify({ status: 503, type: 'x', code: 'bye', message: 'bye' })),
  ];
  for (let id = 1; id < 2000; id += 2) {
    burst.push(encodeFrame(FrameType.Open, id, '{}'), encodeFrame(FrameType.Data, id, Buffer.alloc(1024)));
  }
  attacker.socket.write(Buffer.concat(burst));
  await attacker.closed;
  assert.equal(s.closed, true);
  assert.equal(s.closeError?.code, 'bye');
  assert.equal(calls, 0);
  assert.equal(s.peakBufferedBytes, 0);
  assert.ok(await served(srv.port, 64 * 1024));
});
