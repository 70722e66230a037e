import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { encodeFrame, FrameType } from '../../src/protocol/frames.ts';
import { RawPeer, served, startServer, violationOf } from '../net/peers.ts';

// Attack ("rapid reset"): open a call and reset it at once, in a tight loop: never over the concurrency
// limit, yet every OPEN starts work on our side.
test('rapid reset: open-and-reset in a loop is cut off with stream_reset_flood', async () => {
  let calls = 0;
  const srv = await startServer({
    session: { maxStreamResetsPerWindow: 200, rateWindowMs: 60_000 },
    onStream: () => void calls++,
  });
  after(() => srv.close());
  const attacker = await RawPeer.connect(srv.port);
  const s = await srv.session(0);
  const cancel = JSON.stringify({
    status: 499,
    type: 'invalid_request_error',
    code: 'cancelled',
    message: 'x',
  });
  const burst: Buffer[] = [];
  for (let id = 1; id < 20_000; id += 2) {
    burst.push(
      encodeFrame(FrameType.Open, id, '{"method":"models"}'),
      encodeFrame(FrameType.Reset, id, cancel),
    );
  }
  attacker.socket.write(Buffer.concat(burst));
  assert.equal(await violationOf(s), 'stream_reset_flood');
  assert.equal(calls, 201, 'work started for at most the limit');
  assert.equal(s.openStreams, 0);
  assert.ok(await served(srv.port, 256 * 1024));
});
