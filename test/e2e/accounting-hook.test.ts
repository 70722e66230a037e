import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import OpenAI from 'openai';
import type { FinishedRequest } from '../../src/proxy/proxy-node.ts';
import { Harness } from './harness.ts';

describe('the proxy accounting hook (the seam payments plug into)', () => {
  const h = new Harness();
  after(() => h.stop());

  test('sees every finished request once, with the final token counts the caller saw', async () => {
    const proxy = await h.proxy();
    const worker = await h.worker(proxy, { coefficient: 1500 });
    const client = await h.client(proxy);
    const records: FinishedRequest[] = [];
    proxy.onRequestFinished = (r) => records.push(r);
    const openai = new OpenAI({ baseURL: client.baseUrl, apiKey: 'x', maxRetries: 0 });

    const a = await openai.chat.completions.create({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'one' }],
      max_tokens: 9,
    });
    const s = await openai.chat.completions.create({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'two' }],
      max_tokens: 12,
      stream: true,
      stream_options: { include_usage: true },
    });
    let streamed: OpenAI.CompletionUsage | undefined;
    for await (const c of s) if (c.usage) streamed = c.usage;

    assert.equal(records.length, 2);
    const [r1, r2] = records;
    assert.equal(r1!.ok, true);
    assert.equal(r1!.usage.promptTokens, a.usage!.prompt_tokens);
    assert.equal(r1!.usage.completionTokens, a.usage!.completion_tokens);
    assert.equal(r2!.usage.completionTokens, streamed!.completion_tokens);
    assert.equal(r1!.worker.coefficient, 1500);
    assert.match(r1!.worker.publicKey, /^[0-9a-f]{64}$/);
    assert.equal(r1!.worker.name, worker.stats().name);
    assert.equal(r1!.client.role, 'client');
    assert.equal(r1!.request.maxTokens, 9);
    assert.notEqual(r1!.requestId, r2!.requestId);
  });
});
