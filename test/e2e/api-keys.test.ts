import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import type { ClientNode } from '../../src/client/client-node.ts';
import { Harness } from './harness.ts';

describe('a client configured with API keys', () => {
  const h = new Harness();
  let client: ClientNode;
  before(async () => {
    const proxy = await h.proxy();
    await h.worker(proxy);
    client = await h.client(proxy, { apiKeys: ['sk-right'] });
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
});
