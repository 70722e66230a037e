import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FrameType } from '../../src/protocol/frames.ts';
import { RawPeer, served, startServer, violationOf } from '../net/peers.ts';

// Attack: declare an enormous frame (4 GiB) so the receiver allocates or buffers for it.
test('oversized frame: refused on its length prefix with frame_too_large, nothing buffered', async () => {
  const srv = await startServer();
  after(() => srv.close());
  const attacker = await RawPeer.connect(srv.port);
  const s = await srv.session(0);
  const header = Buffer.alloc(9);
  header.writeUInt32BE(0xffff_ffff, 0);
  header.writeUInt8(FrameType.Data, 4);
  header.writeUInt32BE(1, 5);
  attacker.socket.write(header); // only the header: the body never comes
  assert.equal(await violationOf(s), 'frame_too_large');
  assert.equal(await attacker.goAwayCode(), 'frame_too_large');
  assert.equal(s.peakBufferedBytes, 0);
  assert.ok(await served(srv.port, 256 * 1024));
});
