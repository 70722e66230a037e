import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { generateNodeKey, type NodeKey } from '../../src/attest/identity.ts';
import type { Session } from '../../src/net/session.ts';
import { encodeFrame, FrameType } from '../../src/protocol/frames.ts';
import { type ReceiptFields, signReceipt } from '../../src/protocol/receipt.ts';
import { Harness, post, until } from '../e2e/harness.ts';
import { rogueWorker } from './rogue-worker.ts';

/**
 * A worker's receipt goes to the client inside its bill, and the client refuses a bill above what the
 * worker signed. A worker that signs a receipt for other usage than it reports, for another request, or
 * with another key than its certificate's, gets nothing: the proxy refuses it before billing
 * (`bad_receipt`), cuts it off, and serves the request on another worker. The caller never notices.
 */
const usage = { promptTokens: 5, cachedTokens: 0, completionTokens: 2, reasoningTokens: 0 };

function fields(requestId: string, over: Partial<ReceiptFields> = {}): ReceiptFields {
  return {
    network: null,
    proxyContract: null,
    proxy: '00'.repeat(32),
    seqno: '1',
    requestId,
    requestHash: '11'.repeat(32),
    replyHash: '22'.repeat(32),
    model: 'cocoon-tiny',
    image: '33'.repeat(32),
    tier: 'dev',
    certificate: '44'.repeat(32),
    usage,
    coefficient: 1,
    cost: null,
    time: Date.now(),
    ...over,
  };
}

describe('attack: a worker signs a receipt that does not match what it reports', () => {
  const h = new Harness();
  after(() => h.stop());

  const cases: [string, (key: NodeKey, requestId: string) => unknown][] = [
    [
      'a receipt for more usage than the trailer reports',
      (key, id) => signReceipt(fields(id, { usage: { ...usage, completionTokens: 9 } }), key),
    ],
    ['a receipt for another request', (key) => signReceipt(fields('another-request'), key)],
    ['a receipt signed by another key', (_key, id) => signReceipt(fields(id), generateNodeKey())],
    ['no receipt at all', () => undefined],
  ];
  for (const [what, forge] of cases) {
    test(`${what}: refused as bad_receipt, the worker cut off, another worker serves`, async () => {
      const proxy = await h.proxy();
      const key = generateNodeKey();
      const rogue: Session = await rogueWorker(proxy, 'cocoon-tiny', {
        key,
        coefficient: 1,
        maxConcurrent: 4,
      });
      const gone = new Promise((r) => rogue.once('close', r));
      rogue.on('stream', (s) => {
        const header = s.header as { requestId: string };
        const trailer = { usage, receipt: forge(key, header.requestId), end: '' };
        rogue.socket.write(encodeFrame(FrameType.Data, s.id, 'a reply'));
        rogue.socket.write(encodeFrame(FrameType.End, s.id, JSON.stringify(trailer)));
      });
      await h.worker(proxy, { name: 'honest', models: ['cocoon-tiny'] });
      const client = await h.client(proxy);
      // Both idle and new: the rogue, first to come, is tried first.
      const r = await post(`${client.baseUrl}/chat/completions`, {
        model: 'cocoon-tiny',
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 4,
      });
      assert.equal(r.status, 200, r.text);
      assert.equal((r.json as unknown as { cocoon: { worker: string } }).cocoon.worker, 'honest');
      await until(() => proxy.refusals.bad_receipt === 1, 'the forged receipt refused and counted');
      await gone;
      assert.equal(proxy.registry.all().filter((w) => w.name === 'rogue').length, 0);
    });
  }
});
