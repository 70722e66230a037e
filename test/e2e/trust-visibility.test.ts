import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { type LocalNetwork, startLocalNetwork } from '../../src/local/local-network.ts';
import { post } from './harness.ts';

/** The user can see who served a request, and can demand more trust than the network offers. */
describe('trust the client can see', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-trust-'));
  let net: LocalNetwork;
  let openai: OpenAI;

  before(async () => {
    net = await startLocalNetwork({ dataDir: dir, logLevel: 'silent' });
    openai = new OpenAI({ baseURL: net.client.baseUrl, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await net?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a reply names the worker's trust tier, image and model, in headers and in the JSON", async () => {
    const { data, response } = await openai.chat.completions
      .create({
        model: 'cocoon-tiny',
        messages: [{ role: 'user', content: 'who serves me?' }],
        max_tokens: 4,
      })
      .withResponse();
    const cocoon = (data as unknown as { cocoon: Record<string, string> }).cocoon;
    assert.equal(cocoon.trust_tier, 'dev');
    assert.equal(cocoon.model, 'cocoon-tiny');
    assert.match(cocoon.worker_image!, /^[0-9a-f]{64}$/);
    assert.equal(response.headers.get('x-cocoon-trust-tier'), 'dev');
    assert.equal(response.headers.get('x-cocoon-worker-image'), cocoon.worker_image);
    assert.equal(response.headers.get('x-cocoon-model'), 'cocoon-tiny');
    assert.equal(data.choices[0]!.message.role, 'assistant', 'the rest of the reply is untouched');
  });

  test('a stream carries it in its final usage chunk', async () => {
    const stream = await openai.chat.completions.create({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'stream it' }],
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
    });
    let last: unknown = null;
    for await (const chunk of stream) last = chunk;
    const c = last as { usage: unknown; cocoon: { trust_tier: string } };
    assert.ok(c.usage);
    assert.equal(c.cocoon.trust_tier, 'dev');
  });

  test('/v1/models lists the trust tiers each model is served at', async () => {
    const list = await openai.models.list();
    const m = list.data.find((x) => x.id === 'cocoon-tiny') as unknown as { trust_tiers: string[] };
    assert.deepEqual(m.trust_tiers, ['dev']);
  });

  test('a request demanding tee-gpu from a dev network is refused with a clear error, no worker runs', async () => {
    const before = net.worker.counters.total;
    const res = await post(`${net.client.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'only on a GPU TEE please' }],
      min_trust_tier: 'tee-gpu',
    });
    assert.equal(res.status, 503);
    assert.equal(res.json.error?.code, 'trust_tier_unavailable');
    assert.match(res.json.error!.message, /trust tier 'tee-gpu'.*at most 'dev'/);
    assert.equal(net.worker.counters.total, before);
    const bad = await post(`${net.client.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'x' }],
      min_trust_tier: 'tee-quantum',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error?.param, 'min_trust_tier');
  });
});
