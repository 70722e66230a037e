import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import type { ClientNode } from '../../src/client/client-node.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import { FakeVllmEngine } from '../fakes/fake-vllm.ts';
import { Harness, until } from './harness.ts';

describe('cancellation reaches the inference engine', () => {
  const h = new Harness();
  const engine = new FakeVllmEngine({ tokens: 200, tokenDelayMs: 20, servedModel: 'engine-model' });
  let proxy: ProxyNode;
  let client: ClientNode;

  before(async () => {
    const upstream = await engine.start();
    proxy = await h.proxy();
    await h.worker(proxy, {
      backend: { kind: 'openai-compatible', upstream, upstreamModel: 'engine-model' },
      models: ['llama-test'],
    });
    client = await h.client(proxy);
  });
  after(async () => {
    await h.stop();
    await engine.close();
  });

  test('the caller aborts mid-stream: the engine request is aborted and the proxy has nothing in flight', async () => {
    const openai = new OpenAI({ baseURL: client.baseUrl, apiKey: 'x', maxRetries: 0 });
    const ac = new AbortController();
    const stream = await openai.chat.completions.create(
      { model: 'llama-test', messages: [{ role: 'user', content: 'long answer' }], stream: true },
      { signal: ac.signal },
    );
    let chunks = 0;
    // The SDK ends the iteration quietly on abort (or throws an abort error, depending on timing).
    try {
      for await (const _ of stream) {
        if (++chunks === 3) ac.abort();
      }
    } catch (err) {
      assert.match(String((err as Error).name), /Abort/);
    }
    // A chunk the SDK had parsed already may still come out after the abort.
    assert.ok(chunks >= 3 && chunks < 10, `${chunks} chunks`);
    await until(() => engine.aborted === 1, 'engine saw the abort');
    await until(() => proxy.counters.inFlight === 0, 'proxy in-flight back to 0');
    assert.equal(engine.completed, 0);
    assert.equal(proxy.counters.cancelled, 1);
  });

  test('a full request through the openai-compatible backend still works afterwards', async () => {
    engine.options.tokenDelayMs = 0;
    const openai = new OpenAI({ baseURL: client.baseUrl, apiKey: 'x', maxRetries: 0 });
    const r = await openai.chat.completions.create({
      model: 'llama-test',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 10,
    });
    assert.equal(r.model, 'llama-test');
    assert.ok(r.usage && r.usage.completion_tokens > 0);
  });
});
