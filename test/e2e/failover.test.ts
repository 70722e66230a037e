import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import OpenAI from 'openai';
import { FakeVllmEngine } from '../fakes/fake-vllm.ts';
import { Harness, post, until } from './harness.ts';

const ask = (model = 'cocoon-tiny', max_tokens = 12) => ({
  model,
  messages: [{ role: 'user' as const, content: 'hello there' }],
  max_tokens,
});

interface Served {
  cocoon?: { worker: string };
  choices: { message: { content: string }; finish_reason: string }[];
}

describe('re-dispatch: a worker that fails before the first token is replaced', () => {
  const h = new Harness();
  const engines: FakeVllmEngine[] = [];
  after(async () => {
    await h.stop();
    for (const e of engines) await e.close();
  });

  test('a worker lost before its first token: another serves the stream, the caller never notices', async () => {
    const proxy = await h.proxy();
    // Registered first, so chosen first; its first token takes long enough to lose it before.
    const doomed = await h.worker(proxy, { name: 'doomed', backend: { tokenDelayMs: 400 } });
    await h.worker(proxy, { name: 'steady', backend: { tokenDelayMs: 1 } });
    const client = await h.client(proxy);
    const openai = new OpenAI({ baseURL: client.baseUrl, apiKey: 'x', maxRetries: 0 });
    // The client answers once the first token is there, so the request is started, not awaited.
    const pending = openai.chat.completions.create({
      ...ask(),
      stream: true,
      stream_options: { include_usage: true },
    });
    // The request has reached the doomed worker (its role chunk is held back by the proxy); lose it.
    await until(() => doomed.counters.running === 1, 'doomed worker got the request');
    void doomed.stop();
    let text = '';
    let usage: { completion_tokens: number } | null = null;
    for await (const c of await pending) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
    assert.ok(text.length > 0);
    assert.equal(usage?.completion_tokens, 12);
    assert.equal(proxy.counters.redispatched, 1);
    assert.equal(proxy.counters.succeeded, 1);
    assert.equal(proxy.counters.failed, 0);
    const [recent] = proxy.recent.list();
    assert.equal(recent?.worker, 'steady');
    assert.equal(recent?.attempts, 2);
    assert.equal(recent?.outcome, 'ok');
    await until(() => proxy.counters.inFlight === 0, 'nothing in flight');
  });

  test('an engine failing before the first token: re-dispatched, and the failure weighs on the worker', async () => {
    const broken = new FakeVllmEngine({ servedModel: 'm', tokens: 5 });
    engines.push(broken);
    broken.options.failWithStatus = { status: 500, message: 'engine exploded' };
    const upstream = await broken.start();
    const proxy = await h.proxy();
    await h.worker(proxy, {
      name: 'broken',
      backend: { kind: 'openai-compatible', upstream },
      models: ['m'],
    });
    await h.worker(proxy, { name: 'fine', models: ['m'] });
    const client = await h.client(proxy);
    const r = await post(`${client.baseUrl}/chat/completions`, ask('m'));
    assert.equal(r.status, 200, r.text);
    assert.equal((r.json as unknown as Served).cocoon?.worker, 'fine');
    assert.equal(broken.requests, 1);
    const stats = proxy.stats();
    const b = stats.workers.find((w) => w.name === 'broken')!;
    assert.equal(b.failed, 1);
    assert.ok(b.health.failureRate > 0);
    assert.equal(stats.requests.redispatched, 1);
    // Routing now prefers the healthy worker.
    const again = await post(`${client.baseUrl}/chat/completions`, ask('m'));
    assert.equal((again.json as unknown as Served).cocoon?.worker, 'fine');
    assert.equal(broken.requests, 1);
  });

  test('a client error (engine 400) is not retried elsewhere and does not count against the worker', async () => {
    const strict = new FakeVllmEngine({ servedModel: 'm2' });
    engines.push(strict);
    strict.options.failWithStatus = { status: 400, message: "This model's maximum context length is 8" };
    const upstream = await strict.start();
    const proxy = await h.proxy();
    await h.worker(proxy, {
      name: 'strict',
      backend: { kind: 'openai-compatible', upstream },
      models: ['m2'],
    });
    await h.worker(proxy, { name: 'other', models: ['m2'] });
    const client = await h.client(proxy);
    const r = await post(`${client.baseUrl}/chat/completions`, ask('m2'));
    assert.equal(r.status, 400);
    assert.match(r.json.error!.message, /maximum context length/);
    assert.equal(proxy.counters.redispatched, 0);
    const w = proxy.stats().workers.find((x) => x.name === 'strict')!;
    assert.equal(w.health.failureRate, 0);
  });

  test('10x the capacity at once: the excess is refused fast with Retry-After, the admitted complete', async () => {
    const proxy = await h.proxy();
    await h.worker(proxy, { name: 'small', backend: { tokenDelayMs: 15 }, maxConcurrent: 2 });
    const client = await h.client(proxy);
    const done: { status: number; retryAfter: string | null }[] = [];
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const r = await post(`${client.baseUrl}/chat/completions`, ask('cocoon-tiny', 30));
        done.push({ status: r.status, retryAfter: r.headers.get('retry-after') });
      }),
    );
    const served = done.filter((d) => d.status === 200);
    const refused = done.filter((d) => d.status !== 200);
    assert.ok(served.length >= 2, `served ${served.length}`);
    assert.ok(refused.length >= 10, `refused ${refused.length}`);
    for (const r of refused) {
      assert.equal(r.status, 503);
      assert.equal(r.retryAfter, '1');
    }
    // Refusals did not queue behind the admitted requests: they all came back before the first success.
    const firstServed = done.findIndex((d) => d.status === 200);
    assert.ok(done.slice(firstServed).every((d) => d.status === 200));
    assert.equal(proxy.counters.inFlight, 0);
  });
});
