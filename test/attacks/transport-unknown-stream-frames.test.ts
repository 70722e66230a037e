import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FrameType } from '../../src/protocol/frames.ts';
import { RawPeer, served, startServer, violationOf } from '../net/peers.ts';

// Attack: frames for streams that never existed (RESET, WINDOW, END, DATA), which a careless receiver
// might answer, log or allocate for.
const err = JSON.stringify({ status: 499, type: 'x', code: 'cancelled', message: 'x' });
const frames: [string, FrameType, string | Buffer][] = [
  ['RESET', FrameType.Reset, err],
  ['WINDOW', FrameType.Window, Buffer.from([0, 0, 1, 0])],
  ['END', FrameType.End, '{}'],
  ['DATA', FrameType.Data, 'x'],
];
for (const [what, type, payload] of frames) {
  test(`${what} for a stream never opened: cut off with bad_stream`, async () => {
    const srv = await startServer();
    after(() => srv.close());
    const attacker = await RawPeer.connect(srv.port);
    const s = await srv.session(0);
    attacker.send(type, 1001, payload);
    assert.equal(await violationOf(s), 'bad_stream');
    assert.ok(await served(srv.port, 64 * 1024));
  });
}
