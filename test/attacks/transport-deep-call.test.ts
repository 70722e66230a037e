import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Stream } from '../../src/net/stream.ts';
import { FrameType } from '../../src/protocol/frames.ts';
import { MAX_JSON_DEPTH } from '../../src/protocol/limits.ts';
import { RawPeer, startServer, until } from '../net/peers.ts';

// Attack: a peer skips the client's edge and opens a call whose body nests thousands of levels deep. JSON
// parses it, but every hop re-serializes the call and JSON.stringify recurses: the stack would overflow in
// the proxy. The session refuses such a call with the edge's own 400 and keeps serving the peer.
test('a call nested deeper than the shared limit is refused with json_too_deep; the session goes on', async () => {
  const opened: Stream[] = [];
  const srv = await startServer({ onStream: (s) => opened.push(s) });
  after(() => srv.close());
  const attacker = await RawPeer.connect(srv.port);
  after(() => attacker.destroy());
  const session = await srv.session(0);
  const call = (depth: number) =>
    `{"method":"inference","request":{"body":${'['.repeat(depth)}${']'.repeat(depth)}}}`;

  attacker.send(FrameType.Open, 1, call(5000));
  attacker.send(FrameType.Open, 3, call(MAX_JSON_DEPTH + 1));
  // The deepest body the edge accepts, inside its call header: served.
  attacker.send(FrameType.Open, 5, call(MAX_JSON_DEPTH));
  await until(() => attacker.resets().length === 2 && opened.length === 1, 'two refusals, one call served');
  assert.deepEqual(attacker.resets(), [
    { id: 1, code: 'json_too_deep' },
    { id: 3, code: 'json_too_deep' },
  ]);
  assert.equal(opened[0]!.id, 5);
  assert.equal(session.closed, false);
});
