import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ClientNode } from '../../src/client/client-node.ts';
import { Harness, post } from './harness.ts';

describe('bad input gets a 4xx OpenAI-shaped error and the daemon keeps serving', () => {
  const h = new Harness();
  let client: ClientNode;
  let chat: string;

  before(async () => {
    const proxy = await h.proxy();
    await h.worker(proxy);
    client = await h.client(proxy, { maxBodyBytes: 4096 });
    chat = `${client.baseUrl}/chat/completions`;
  });
  after(() => h.stop());

  const good = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 };

  function assertOpenAIError(
    r: Awaited<ReturnType<typeof post>>,
    status: number,
    code?: string,
    param?: string,
  ) {
    assert.equal(r.status, status, r.text);
    assert.equal(typeof r.json.error?.message, 'string');
    assert.ok(r.json.error!.message.length > 0);
    assert.equal(typeof r.json.error?.type, 'string');
    assert.ok('param' in r.json.error! && 'code' in r.json.error!);
    if (code) assert.equal(r.json.error?.code, code);
    if (param) assert.equal(r.json.error?.param, param);
  }

  test('malformed JSON -> 400 invalid_json', async () => {
    assertOpenAIError(await post(chat, '{"model": "cocoon-tiny", "messages": ['), 400, 'invalid_json');
  });

  test('missing messages -> 400 naming messages', async () => {
    assertOpenAIError(await post(chat, { model: 'cocoon-tiny' }), 400, undefined, 'messages');
  });

  test('wrong types -> 400 naming the field', async () => {
    assertOpenAIError(await post(chat, { ...good, temperature: 'hot' }), 400, undefined, 'temperature');
    assertOpenAIError(await post(chat, { ...good, messages: 'hello' }), 400, undefined, 'messages');
  });

  test('negative max_tokens -> 400 naming max_tokens', async () => {
    assertOpenAIError(await post(chat, { ...good, max_tokens: -1 }), 400, undefined, 'max_tokens');
  });

  test('unknown model -> 404 model_not_found', async () => {
    assertOpenAIError(await post(chat, { ...good, model: 'gpt-17' }), 404, 'model_not_found');
  });

  test('oversize body -> 413', async () => {
    const big = { ...good, messages: [{ role: 'user', content: 'x'.repeat(10_000) }] };
    assertOpenAIError(await post(chat, big), 413, 'request_too_large');
  });

  test('unknown route -> 404, wrong method -> 405', async () => {
    assertOpenAIError(await post(`${client.baseUrl}/embeddings`, good), 404, 'unknown_url');
    const r = await fetch(chat);
    assert.equal(r.status, 405);
  });

  test('after all of that the daemon still serves a good request', async () => {
    const r = await post(chat, good);
    assert.equal(r.status, 200, r.text);
    assert.equal((r.json as unknown as { object: string }).object, 'chat.completion');
  });
});
