import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { type LocalNetwork, startLocalNetwork } from '../../src/local/local-network.ts';

describe('the official openai SDK against a local network (client -> proxy -> worker)', () => {
  let net: LocalNetwork;
  let openai: OpenAI;
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-sdk-'));

  before(async () => {
    net = await startLocalNetwork({ dataDir: dir, tokenDelayMs: 5 });
    openai = new OpenAI({ baseURL: net.client.baseUrl, apiKey: 'local', maxRetries: 0 });
  });
  after(async () => {
    await net.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('chat completion, non-streaming, with usage', async () => {
    const r = await openai.chat.completions.create({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'Tell me about TON.' }],
      max_tokens: 30,
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, 'cocoon-tiny');
    assert.equal(r.choices.length, 1);
    assert.ok((r.choices[0]!.message.content ?? '').length > 0);
    assert.ok(r.usage && r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
    assert.ok(r.usage.completion_tokens <= 30);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  });

  test('chat completion, streaming: chunks arrive incrementally, usage at the end', async () => {
    const stream = await openai.chat.completions.create({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'Stream please.' }],
      max_tokens: 20,
      stream: true,
      stream_options: { include_usage: true },
    });
    const arrivals: number[] = [];
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined = null;
    for await (const chunk of stream) {
      arrivals.push(performance.now());
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(arrivals.length >= 5, `expected several chunks, got ${arrivals.length}`);
    // With 5 ms per token the chunks must be spread out in time, not delivered in one burst.
    assert.ok(arrivals.at(-1)! - arrivals[0]! >= 20, 'chunks arrived in one burst');
    assert.ok(text.length > 0);
    assert.ok(usage && usage.completion_tokens > 0 && usage.completion_tokens <= 20);
  });

  test('streaming without include_usage sends no usage, and ends with a chunk carrying the receipt', async () => {
    const stream = await openai.chat.completions.create({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'No usage.' }],
      max_tokens: 5,
      stream: true,
    });
    const chunks: (typeof stream extends AsyncIterable<infer C> ? C : never)[] = [];
    for await (const chunk of stream) {
      assert.ok(!chunk.usage, 'unexpected usage');
      chunks.push(chunk);
    }
    const last = chunks.pop() as unknown as {
      choices: unknown[];
      cocoon: { receipt: { requestId: string } };
    };
    assert.deepEqual(last.choices, []);
    assert.ok(last.cocoon.receipt.requestId);
    assert.ok(chunks.every((c) => c.choices.length > 0));
  });

  test('legacy completions, streaming and not', async () => {
    const r = await openai.completions.create({
      model: 'cocoon-tiny',
      prompt: 'Once upon a time',
      max_tokens: 12,
    });
    assert.equal(r.object, 'text_completion');
    assert.ok(r.choices[0]!.text.length > 0);
    assert.ok(r.usage && r.usage.completion_tokens <= 12);
    const s = await openai.completions.create({
      model: 'cocoon-tiny',
      prompt: 'Once',
      max_tokens: 8,
      stream: true,
    });
    let text = '';
    for await (const c of s) text += c.choices[0]?.text ?? '';
    assert.ok(text.length > 0);
  });

  test('models list and retrieve', async () => {
    const list = await openai.models.list();
    assert.deepEqual(
      list.data.map((m) => m.id),
      ['cocoon-tiny'],
    );
    const m = await openai.models.retrieve('cocoon-tiny');
    assert.equal(m.id, 'cocoon-tiny');
    await assert.rejects(
      openai.models.retrieve('nope'),
      (e: InstanceType<typeof OpenAI.NotFoundError>) => e.status === 404,
    );
  });

  test('unknown model is a 404 model_not_found the SDK raises', async () => {
    await assert.rejects(
      openai.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
      (e: InstanceType<typeof OpenAI.APIError>) => e.status === 404 && e.code === 'model_not_found',
    );
  });

  test('same seed gives the same answer through the whole chain', async () => {
    const ask = () =>
      openai.chat.completions.create({
        model: 'cocoon-tiny',
        messages: [{ role: 'user', content: 'determinism' }],
        max_tokens: 15,
        seed: 7,
      });
    const [a, b] = await Promise.all([ask(), ask()]);
    assert.equal(a.choices[0]!.message.content, b.choices[0]!.message.content);
  });
});
