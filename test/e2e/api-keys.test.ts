import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import type { ClientNode } from '../../src/client/client-node.ts';
import { ApiKeys } from '../../src/ops/api-keys.ts';
import { Harness, rejectedByCode } from './harness.ts';

describe('a client configured with API keys', () => {
  const h = new Harness();
  let client: ClientNode;
  before(async () => {
    const proxy = await h.proxy();
    await h.worker(proxy);
    client = await h.client(proxy, { apiKeys: ['sk-other', 'sk-right'] });
  });
  after(() => h.stop());

  test('refuses a wrong key with 401 and serves the right one', async () => {
    const wrong = new OpenAI({ baseURL: client.baseUrl, apiKey: 'sk-wrong', maxRetries: 0 });
    await assert.rejects(
      wrong.models.list(),
      (e: InstanceType<typeof OpenAI.AuthenticationError>) => e.status === 401,
    );
    const right = new OpenAI({ baseURL: client.baseUrl, apiKey: 'sk-right', maxRetries: 0 });
    const r = await right.chat.completions.create({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'x' }],
      max_tokens: 3,
    });
    assert.ok(r.choices[0]!.message.content);
  });

  test('every route needs a key: the stats pages, the dashboard and the metrics too', async () => {
    for (const path of ['/jsonstats', '/stats', '/dashboard', '/metrics', '/v1/models', '/nowhere']) {
      const none = await fetch(`${client.url}${path}`);
      assert.equal(none.status, 401, path);
      assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'invalid_api_key');
      assert.ok(none.headers.get('www-authenticate'), path);
      const bearer = await fetch(`${client.url}${path}`, { headers: { authorization: 'Bearer sk-right' } });
      assert.equal(bearer.status, path === '/nowhere' ? 404 : 200, path);
    }
  });

  test('the pages a browser opens take the key as HTTP Basic password; the API does not', async () => {
    const basic = (key: string) => ({
      authorization: `Basic ${Buffer.from(`me:${key}`).toString('base64')}`,
    });
    assert.equal((await fetch(`${client.url}/jsonstats`, { headers: basic('sk-right') })).status, 200);
    assert.equal((await fetch(`${client.url}/jsonstats`, { headers: basic('sk-wrong') })).status, 401);
    const page = await fetch(`${client.url}/dashboard`);
    assert.match(page.headers.get('www-authenticate') ?? '', /^Basic /);
    assert.equal((await fetch(`${client.url}/v1/models`, { headers: basic('sk-right') })).status, 401);
  });

  test('refusals are counted in /metrics by code', async () => {
    const metrics = await fetch(`${client.url}/metrics`, { headers: { authorization: 'Bearer sk-right' } });
    assert.ok((rejectedByCode(await metrics.text()).get('invalid_api_key') ?? 0) > 0);
  });
});

test('keys match whole and only whole, against every key', () => {
  const keys = new ApiKeys(['sk-one', 'sk-two']);
  assert.equal(keys.accepts('sk-one'), true);
  assert.equal(keys.accepts('sk-two'), true);
  for (const k of ['', 'sk-on', 'sk-one ', 'sk-onex', 'SK-ONE', 'sk-three'])
    assert.equal(keys.accepts(k), false, k);
  assert.equal(new ApiKeys([]).enabled, false);
});

test('a client listening beyond loopback without API keys refuses to start', async () => {
  const h = new Harness();
  try {
    const proxy = await h.proxy();
    await assert.rejects(h.client(proxy, { httpHost: '0.0.0.0' }), /set apiKeys, or listen on 127\.0\.0\.1/);
  } finally {
    await h.stop();
  }
});
