import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FrameType } from '../../src/protocol/frames.ts';
import { RawPeer, served, startServer, violationOf } from '../net/peers.ts';

// Attack: control frames within the frame limit but far beyond what they ever need to carry (each is
// parsed, kept or echoed). Default limits: HELLO 256 KiB, CONTROL 1 MiB, RESET/GOAWAY 64 KiB.
const KiB = 1024;
const cases: [string, number, (p: RawPeer, pad: string) => void][] = [
  ['CONTROL', 1024 * KiB, (p, pad) => p.send(FrameType.Control, 0, JSON.stringify({ type: 'x', pad }))],
  [
    'RESET',
    64 * KiB,
    (p, pad) => {
      p.send(FrameType.Open, 1, '{}');
      p.send(FrameType.Reset, 1, JSON.stringify({ status: 500, type: 'x', code: 'x', message: pad }));
    },
  ],
  [
    'GOAWAY',
    64 * KiB,
    (p, pad) => p.send(FrameType.GoAway, 0, JSON.stringify({ status: 500, message: pad })),
  ],
];
for (const [what, limit, misbehave] of cases) {
  test(`oversized ${what} (over ${limit / KiB} KiB): cut off with frame_too_large`, async () => {
    const srv = await startServer({ onStream: () => {} });
    after(() => srv.close());
    const attacker = await RawPeer.connect(srv.port);
    const s = await srv.session(0);
    misbehave(attacker, 'x'.repeat(limit));
    assert.equal(await violationOf(s), 'frame_too_large');
    assert.ok(await served(srv.port, 256 * 1024));
  });
}

test('oversized HELLO (over 256 KiB): refused before any session, frame_too_large', async () => {
  const srv = await startServer();
  after(() => srv.close());
  const attacker = await RawPeer.connect(srv.port, { sayHello: false });
  const hello = {
    protocol: 'cocoon',
    minVersion: 1,
    maxVersion: 1,
    role: 'client',
    name: 'r',
    info: 'x'.repeat(256 * KiB),
  };
  attacker.send(FrameType.Hello, 0, JSON.stringify(hello));
  assert.equal(await attacker.goAwayCode(), 'frame_too_large');
  assert.equal(srv.refused[0]?.code, 'frame_too_large');
  assert.ok(await served(srv.port, 256 * 1024));
});
