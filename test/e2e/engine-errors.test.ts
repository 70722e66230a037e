import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import type { ClientNode } from '../../src/client/client-node.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import { FakeVllmEngine } from '../fakes/fake-vllm.ts';
import { Harness, post } from './harness.ts';

describe('engine failures reach the caller as OpenAI errors; the network keeps serving', () => {
  const h = new Harness();
  const engine = new FakeVllmEngine({ tokens: 10, servedModel: 'm' });
  let proxy: ProxyNode;
  let client: ClientNode;
  let openai: OpenAI;
  const ask = { model: 'm', messages: [{ role: 'user' as const, content: 'x' }], max_tokens: 10 };

  before(async () => {
    const upstream = await engine.start();
    proxy = await h.proxy();
    await h.worker(proxy, { backend: { kind: 'openai-compatible', upstream }, models: ['m'] });
    client = await h.client(proxy);
    openai = new OpenAI({ baseURL: client.baseUrl, apiKey: 'x', maxRetries: 0 });
  });
  after(async () => {
    await h.stop();
    await engine.close();
  });

  test('engine 500 -> 502 with the engine message', async () => {
    engine.options.failWithStatus = { status: 500, message: 'engine exploded' };
    const r = await post(`${client.baseUrl}/chat/completions`, ask);
    engine.options.failWithStatus = undefined;
    assert.equal(r.status, 502);
    assert.equal(r.json.error?.code, 'engine_error');
    assert.match(r.json.error!.message, /engine exploded/);
  });

  test('engine 400 (e.g. prompt too long) -> 400 for the caller', async () => {
    engine.options.failWithStatus = {
      status: 400,
      message: "This model's maximum context length is 8 tokens",
    };
    const r = await post(`${client.baseUrl}/chat/completions`, ask);
    engine.options.failWithStatus = undefined;
    assert.equal(r.status, 400);
    assert.match(r.json.error!.message, /maximum context length/);
  });

  test('engine error mid-stream: chunks first, then an error event the SDK raises', async () => {
    engine.options.failAfterTokens = 3;
    const stream = await openai.chat.completions.create({ ...ask, stream: true });
    let text = '';
    await assert.rejects(
      async () => {
        for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
      },
      (e: Error) => /CUDA out of memory/.test(e.message),
    );
    engine.options.failAfterTokens = undefined;
    assert.equal(text, ' w0 w1 w2');
    assert.equal(proxy.counters.inFlight, 0);
  });

  test('after the failures a request succeeds', async () => {
    const r = await openai.chat.completions.create(ask);
    assert.equal(r.choices[0]!.finish_reason, 'stop');
    assert.equal(r.usage?.completion_tokens, 10);
  });

  test('the client bounds concurrent requests with 429', async () => {
    const tight = await h.client(proxy, { maxConcurrentRequests: 1 });
    engine.options.tokenDelayMs = 30;
    const body = { ...ask, stream: true };
    const [a, b] = await Promise.all([
      post(`${tight.baseUrl}/chat/completions`, body),
      post(`${tight.baseUrl}/chat/completions`, body),
    ]);
    engine.options.tokenDelayMs = 0;
    assert.deepEqual([a.status, b.status].sort(), [200, 429]);
    const refused = a.status === 429 ? a : b;
    assert.equal(refused.json.error?.type, 'rate_limit_error');
  });
});
