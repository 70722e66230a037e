import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FrameType } from '../../src/protocol/frames.ts';
import { RawPeer, served, startServer, violationOf } from '../net/peers.ts';

// Attack: grant credit we never asked for — 2^32-1 at once, or many grants summing past 2^32 — so the
// victim would send without bound (or wrap a u32 counter).
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

for (const [what, grants] of [
  ['a grant of 2^32-1', [0xffff_ffff]],
  ['grants summing past 2^32', Array.from({ length: 3 }, () => 0x8000_0000)],
  ['small grants summing past the window', Array.from({ length: 20 }, () => 64 * 1024)],
  ['a zero grant', [0]],
] as const) {
  test(`window credit overflow (${what}): cut off with flow_control_violation`, async () => {
    const srv = await startServer({ onStream: (st) => void st.write('answer') });
    after(() => srv.close());
    const attacker = await RawPeer.connect(srv.port);
    const s = await srv.session(0);
    attacker.send(FrameType.Open, 1, '{}');
    await attacker.next((f) => f.type === FrameType.Data);
    for (const g of grants) attacker.send(FrameType.Window, 1, u32(g));
    assert.equal(await violationOf(s), 'flow_control_violation');
    assert.ok(await served(srv.port, 256 * 1024));
  });
}
