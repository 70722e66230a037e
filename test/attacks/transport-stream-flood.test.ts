import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FrameType } from '../../src/protocol/frames.ts';
import { RawPeer, served, startServer, violationOf } from '../net/peers.ts';

// Attack: open far more streams than the session allows, and keep opening after being refused.
test('stream flood: at most maxConcurrentStreams are served, refusals beyond add up to a cut-off', async () => {
  let calls = 0;
  const srv = await startServer({
    session: { maxConcurrentStreams: 50, maxStreamResetsPerWindow: 100, rateWindowMs: 60_000 },
    onStream: () => void calls++, // holds every call open
  });
  after(() => srv.close());
  const attacker = await RawPeer.connect(srv.port);
  const s = await srv.session(0);
  const cut = violationOf(s);
  const open = JSON.stringify({ method: 'inference', request: { pad: 'x'.repeat(1000) } });
  for (let id = 1; id < 20_000; id += 2) attacker.send(FrameType.Open, id, open);
  assert.equal(await cut, 'stream_reset_flood');
  assert.equal(calls, 50, 'the service saw only the streams within the limit');
  assert.ok(s.peakBufferedBytes <= 50 * 1100, `held ${s.peakBufferedBytes}`);
  assert.ok(attacker.resets().every((r) => r.code === 'too_many_streams'));
  assert.ok(await served(srv.port, 256 * 1024));
});
