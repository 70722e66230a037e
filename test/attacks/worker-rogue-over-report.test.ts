import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { trustSetup } from '../../src/attest/trust-setup.ts';
import { encodeFrame, FrameType } from '../../src/protocol/frames.ts';
import { Harness, post } from '../e2e/harness.ts';
import { rogueWorker } from './rogue-worker.ts';

/**
 * The other side of the worker's bound: an honest worker never reports beyond its call's bounds (it clamps
 * its engine), so a report beyond them comes from a worker that is not running our code. The proxy still
 * refuses it, cuts that worker off and serves the request elsewhere. (This used to be shown with a lying
 * engine behind an honest worker; the worker now clamps that, see worker-engine-overrun.test.ts.)
 */
const _dev = trustSetup('dev');

describe('attack: a rogue worker reporting more than its call allows is cut off; another serves', () => {
  const h = new Harness();
  after(() => h.stop());

  test('over-reported usage: refused as usage_over_bound, disconnected, re-dispatched', async () => {
    const proxy = await h.proxy();
    const rogue = await rogueWorker(proxy, 'cocoon-tiny', { coefficient: 1, maxConcurrent: 4 });
    const gone = new Promise((r) => rogue.once('close', r));
    let asked = 0;
    rogue.on('stream', (s) => {
      asked++;
      const reply = JSON.stringify({
        id: 'x',
        object: 'chat.completion',
        created: 0,
        model: 'cocoon-tiny',
        choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 100_000, total_tokens: 100_001 },
      });
      const usage = { promptTokens: 1, cachedTokens: 0, completionTokens: 100_000, reasoningTokens: 0 };
      rogue.socket.write(encodeFrame(FrameType.End, s.id, JSON.stringify({ usage, tail: reply })));
    });
    await h.worker(proxy, { name: 'honest', models: ['cocoon-tiny'] });
    const client = await h.client(proxy);
    // Both idle and new: the proxy tries them in the order they came, the rogue first.
    const r = await post(`${client.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 8,
    });
    assert.equal(r.status, 200, r.text);
    assert.equal((r.json as unknown as { cocoon: { worker: string } }).cocoon.worker, 'honest');
    assert.equal(asked, 1, 'the rogue was tried first');
    assert.equal(proxy.refusals.usage_over_bound, 1);
    await gone;
    assert.equal(proxy.registry.all().filter((w) => w.name === 'rogue').length, 0);
  });
});
