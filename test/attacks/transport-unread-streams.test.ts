import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FrameType } from '../../src/protocol/frames.ts';
import { answerWithoutReading, RawPeer, served, startServer, violationOf } from '../net/peers.ts';

// Attack: open many calls the service answers without reading (like `models`), push DATA on each within
// its window, and never read anything back. Unbounded before: every stream queued up to 18 MiB.
const KiB = 1024;
const tweaks = { streamWindowBytes: 128 * KiB };

test('unread streams: the session budget caps what is held, refused streams add up to a cut-off', async () => {
  const srv = await startServer({
    session: { ...tweaks, maxBufferedBytes: 2048 * KiB, maxStreamResetsPerWindow: 20, rateWindowMs: 60_000 },
    onStream: answerWithoutReading,
  });
  after(() => srv.close());
  const attacker = await RawPeer.connect(srv.port);
  const s = await srv.session(0);
  const cut = violationOf(s);
  for (let id = 1; id < 200; id += 2) {
    attacker.send(FrameType.Open, id, JSON.stringify({ method: 'models' }));
    attacker.send(FrameType.Data, id, Buffer.alloc(128 * KiB)); // exactly its window: no violation
  }
  assert.equal(await cut, 'stream_reset_flood');
  assert.equal(await attacker.goAwayCode(), 'stream_reset_flood'); // after every frame we sent it
  assert.ok(s.peakBufferedBytes <= 2048 * KiB, `held at most ${s.peakBufferedBytes} bytes`);
  const refusals = attacker.resets();
  assert.ok(refusals.length >= 20, `${refusals.length} refusals seen`);
  assert.ok(refusals.every((r) => r.code === 'session_buffer_full'));
  assert.ok(
    await served(srv.port, 3 * 1024 * KiB, tweaks),
    'an honest peer streams 3 MiB on the same listener',
  );
});
