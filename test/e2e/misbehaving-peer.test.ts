import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { trustSetup } from '../../src/attest/trust-setup.ts';
import type { CocoonError } from '../../src/errors.ts';
import type { Session } from '../../src/net/session.ts';
import { encodeFrame, FrameType } from '../../src/protocol/frames.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import { rogueWorker } from '../attacks/rogue-worker.ts';
import { Harness, post } from './harness.ts';

const _dev = trustSetup('dev');
const ask = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 };

function closed(s: Session): Promise<CocoonError | null> {
  return new Promise((res) => s.once('close', res));
}

describe('a peer breaking the protocol is cut off and counted; the proxy keeps serving the others', () => {
  const h = new Harness();
  let proxy: ProxyNode;
  let url: string;
  after(() => h.stop());

  test('setup: a network that serves', async () => {
    proxy = await h.proxy();
    await h.worker(proxy);
    const client = await h.client(proxy);
    url = `${client.baseUrl}/chat/completions`;
    assert.equal((await post(url, ask)).status, 200);
  });

  const cases: [string, string, (s: Session) => void][] = [
    [
      'garbage bytes',
      'bad_frame',
      (s) => s.socket.write(Buffer.from([0, 0, 0, 9, 0xee, 0, 0, 0, 1, 9, 9, 9, 9])),
    ],
    [
      'an oversized frame',
      'frame_too_large',
      (s) => {
        const header = Buffer.alloc(9);
        header.writeUInt32BE(64 * 1024 * 1024, 0); // declares 64 MiB, over the 8 MiB limit
        header.writeUInt8(FrameType.Data, 4);
        s.socket.write(header);
      },
    ],
    [
      'DATA on a stream never opened',
      'bad_stream',
      (s) => s.socket.write(encodeFrame(FrameType.Data, 7, 'x')),
    ],
    [
      'a malformed control message',
      'bad_message',
      (s) =>
        s.socket.write(encodeFrame(FrameType.Control, 0, '{"type":"worker.status","info":{"models":[]}}')),
    ],
    ['a second Hello', 'bad_handshake', (s) => s.socket.write(encodeFrame(FrameType.Hello, 0, '{}'))],
  ];
  for (const [what, code, misbehave] of cases) {
    test(`${what}: disconnected with '${code}', counted, others served`, async () => {
      const before = proxy.refusals[code] ?? 0;
      const rogue = await rogueWorker(proxy, 'rogue-model');
      const gone = closed(rogue);
      misbehave(rogue);
      const err = await gone;
      assert.ok(err, 'the proxy hung up');
      assert.equal(proxy.refusals[code], before + 1, JSON.stringify(proxy.refusals));
      assert.equal(proxy.registry.all().filter((w) => w.name === 'rogue').length, 0);
      assert.equal((await post(url, ask)).status, 200, 'the proxy still serves');
    });
  }

  test('a worker answering with an empty reply, then DATA after END: refused and cut off; others served', async () => {
    const rogue = await rogueWorker(proxy, 'rogue-model');
    // Serve the rogue model badly: END without a body, then more DATA on the same stream (a late part
    // after END is dropped as a race would be; the empty reply is what is refused).
    const usage = { promptTokens: 1, cachedTokens: 0, completionTokens: 1, reasoningTokens: 0 };
    rogue.on('stream', (s) => {
      rogue.socket.write(encodeFrame(FrameType.End, s.id, JSON.stringify({ usage })));
      rogue.socket.write(encodeFrame(FrameType.Data, s.id, 'late'));
    });
    const gone = closed(rogue);
    const r = await post(url, { ...ask, model: 'rogue-model' });
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error?.code, 'empty_reply');
    await gone;
    assert.equal(proxy.refusals.empty_reply, 1);
    assert.equal((await post(url, ask)).status, 200, 'the proxy still serves');
  });
});
