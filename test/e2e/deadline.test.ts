import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Harness, post, until } from './harness.ts';

describe('deadlines: the time budget travels with the request and shrinks at each hop', () => {
  const h = new Harness();
  after(() => h.stop());

  test('a reply that cannot finish in time: 504 from the hop with the least budget, and the engine stops', async () => {
    const proxy = await h.proxy();
    const worker = await h.worker(proxy, { backend: { tokenDelayMs: 50 } });
    const client = await h.client(proxy);
    const started = Date.now();
    const r = await post(`${client.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'slow' }],
      max_tokens: 100,
      timeout: 0.5,
    });
    assert.equal(r.status, 504);
    assert.equal(r.json.error?.code, 'timeout');
    // The worker got less than the caller's 500 ms: each hop keeps a share for itself.
    const budget = Number(/its (\d+) ms budget/.exec(r.json.error!.message)?.[1]);
    assert.ok(budget > 0 && budget < 500, r.json.error!.message);
    assert.ok(Date.now() - started < 3000);
    await until(() => worker.counters.running === 0 && proxy.counters.inFlight === 0, 'nothing left running');
  });

  test('a stream that runs out of time: tokens, then a timeout event saying how many were delivered', async () => {
    const proxy = await h.proxy();
    await h.worker(proxy, { backend: { tokenDelayMs: 40 } });
    const client = await h.client(proxy);
    const r = await post(`${client.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'slow' }],
      max_tokens: 100,
      stream: true,
      timeout: 0.6,
    });
    assert.equal(r.status, 200);
    const events = r.text.split('\n\n').filter((e) => e.startsWith('data: '));
    assert.equal(events.at(-1), 'data: [DONE]');
    const last = JSON.parse(events.at(-2)!.slice(6)) as { error: { code: string; message: string } };
    assert.equal(last.error.code, 'timeout');
    assert.match(last.error.message, /\d+ tokens were delivered/);
    assert.ok(events.length > 3, 'some tokens arrived first');
  });
});
