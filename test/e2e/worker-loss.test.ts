import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import OpenAI from 'openai';
import { Harness, post, until } from './harness.ts';

describe('losing a worker mid-request', () => {
  const h = new Harness();
  after(() => h.stop());

  test('the stream ends with an OpenAI error event, the proxy forgets the worker and has nothing in flight', async () => {
    const proxy = await h.proxy();
    const worker = await h.worker(proxy, { backend: { tokenDelayMs: 20 } });
    const client = await h.client(proxy);
    const openai = new OpenAI({ baseURL: client.baseUrl, apiKey: 'x', maxRetries: 0 });
    const stream = await openai.chat.completions.create({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'long' }],
      max_tokens: 200,
      stream: true,
    });
    let chunks = 0;
    await assert.rejects(
      async () => {
        for await (const _ of stream) if (++chunks === 3) void worker.stop();
      },
      (e: Error) => /connection to peer lost/.test(e.message),
    );
    assert.ok(chunks >= 3);
    await until(() => proxy.registry.size === 0 && proxy.counters.inFlight === 0, 'proxy dropped the worker');
    assert.equal(proxy.counters.failed, 1);
    const r = await post(`${client.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'x' }],
    });
    // Its only worker has just left: unavailable for now (retry), not an unknown model.
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error?.code, 'no_worker_connected');
    assert.ok(r.headers.get('retry-after'));
  });
});
