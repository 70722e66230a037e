import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import type { ClientNode } from '../../src/client/client-node.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import type { WorkerNode } from '../../src/worker/worker-node.ts';
import { Harness, post, until } from '../e2e/harness.ts';
import { FakeVllmEngine } from '../fakes/fake-vllm.ts';

/**
 * Attack (or accident): the engine behind an honest worker goes past what it was asked for — it ignores
 * max_tokens, emits more choices than n, lies about usage, or answers with more than one frame can carry.
 * The worker stops it, cuts its output at the bound and reports within the bound, so the proxy has no
 * reason to cut the worker off, and the worker's other streams go on. Real daemons, honest client.
 */
describe('attack: an engine that overruns its bounds is stopped and cut; the worker stays', () => {
  const h = new Harness();
  const engine = new FakeVllmEngine({ tokens: 5000, servedModel: 'engine-model', ignoreMaxTokens: true });
  let proxy: ProxyNode;
  let worker: WorkerNode;
  let client: ClientNode;
  let openai: OpenAI;

  before(async () => {
    const upstream = await engine.start();
    proxy = await h.proxy();
    worker = await h.worker(proxy, {
      name: 'honest',
      backend: { kind: 'openai-compatible', upstream, upstreamModel: 'engine-model' },
      models: ['m'],
    });
    client = await h.client(proxy);
    openai = new OpenAI({ baseURL: client.baseUrl, apiKey: 'x', maxRetries: 0 });
  });
  after(async () => {
    await h.stop();
    await engine.close();
  });

  const assertWorkerKept = () => {
    assert.deepEqual(proxy.refusals, {}, 'no worker was refused or cut off');
    assert.equal(proxy.registry.size, 1);
    assert.equal(worker.connectedProxies, 1);
  };

  async function stream(maxTokens: number, n = 1) {
    const s = await openai.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'go on forever' }],
      max_tokens: maxTokens,
      n,
      stream: true,
      stream_options: { include_usage: true },
    });
    const parts = new Map<number, number>();
    const finish = new Map<number, string>();
    let usage: OpenAI.CompletionUsage | null = null;
    for await (const c of s) {
      for (const ch of c.choices) {
        if (ch.delta?.content) parts.set(ch.index, (parts.get(ch.index) ?? 0) + 1);
        if (ch.finish_reason) finish.set(ch.index, ch.finish_reason);
      }
      if (c.usage) usage = c.usage;
    }
    return { parts, finish, usage: usage! };
  }

  test('ignoring max_tokens: two concurrent streams each stopped at max_tokens, billed for it, both complete', async () => {
    engine.options.tokenDelayMs = 2;
    const abortedBefore = engine.aborted;
    const [a, b] = await Promise.all([stream(20), stream(7, 2)]);
    engine.options.tokenDelayMs = 0;
    assert.deepEqual([...a.parts], [[0, 20]]);
    assert.equal(a.finish.get(0), 'length');
    assert.equal(a.usage.completion_tokens, 20);
    assert.deepEqual([...b.parts].sort(), [
      [0, 7],
      [1, 7],
    ]);
    assert.equal(b.usage.completion_tokens, 14);
    await until(() => engine.aborted === abortedBefore + 2, 'both engine requests aborted');
    assert.equal(engine.inFlight, 0);
    assertWorkerKept();
  });

  test('more choices than n and inflated usage: extra choices dropped, usage within the bound', async () => {
    engine.options.extraChoices = 3;
    engine.options.reportUsage = { completion_tokens: 1_000_000, prompt_tokens: 1_000_000 };
    const r = await post(`${client.baseUrl}/chat/completions`, {
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      max_tokens: 6,
      n: 2,
    });
    engine.options.extraChoices = 0;
    engine.options.reportUsage = undefined;
    assert.equal(r.status, 200, r.text);
    const body = r.json as unknown as {
      choices: { index: number; message: { content: string }; finish_reason: string }[];
      usage: { completion_tokens: number; prompt_tokens: number };
    };
    assert.deepEqual(
      body.choices.map((c) => c.index),
      [0, 1],
    );
    for (const c of body.choices) assert.ok(Buffer.byteLength(c.message.content) <= 6);
    assert.ok(body.usage.completion_tokens <= 12, String(body.usage.completion_tokens));
    assert.ok(body.usage.prompt_tokens < 1000, String(body.usage.prompt_tokens));
    assertWorkerKept();
  });

  test('a reply larger than a frame is refused by the worker (502), not sent: the worker is not cut off', async () => {
    engine.options.tokens = 2_500_000; // ~10 MB of JSON, over the 8 MiB frame limit
    const r = await post(`${client.baseUrl}/chat/completions`, {
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      max_tokens: 10,
    });
    engine.options.tokens = 5000;
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error?.code, 'engine_reply_too_large');
    assertWorkerKept();
  });

  test('the worker counts its engine’s overruns in /jsonstats and /metrics', async () => {
    const stats = worker.stats();
    assert.ok(stats.engine && stats.engine.engineOverruns >= 3, JSON.stringify(stats.engine));
    const metrics = await (await fetch(`${worker.statsUrl}/metrics`)).text();
    const line = metrics.split('\n').find((l) => l.startsWith('cocoon_engine_overruns_total'));
    assert.ok(line && Number(line.split(' ').at(-1)) >= 3, line);
  });

  test('an honest request afterwards is served in full', async () => {
    engine.options.ignoreMaxTokens = false;
    engine.options.tokens = 4;
    const r = await openai.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 10,
    });
    assert.equal(r.choices[0]!.message.content, 'w0 w1 w2 w3');
    assert.equal(r.usage!.completion_tokens, 4);
    assertWorkerKept();
  });
});
