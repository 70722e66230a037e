import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Harness, post, until } from './harness.ts';

describe('long-lived links survive a proxy restart', () => {
  const h = new Harness();
  after(() => h.stop());

  test('worker and client reconnect with backoff to a restarted proxy, and requests succeed again', async () => {
    const proxy = await h.proxy();
    const { workerPort, clientPort } = proxy;
    const worker = await h.worker(proxy);
    const client = await h.client(proxy);
    const chat = `${client.baseUrl}/chat/completions`;
    const body = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 };
    assert.equal((await post(chat, body)).status, 200);

    await proxy.stop();
    await until(() => client.session === null, 'client noticed the proxy is gone');
    const down = await post(chat, body);
    assert.equal(down.status, 503);
    assert.equal(down.json.error?.code, 'no_proxy');

    // Same identity, same ports: the dialers' backoff loops find it again.
    const again = await h.proxy({ workerPort, clientPort, dataDir: `${h.dataDir}/proxy-1` });
    await until(
      () => again.registry.size === 1 && client.session !== null,
      'worker and client reconnected',
      15_000,
    );
    assert.equal((await post(chat, body)).status, 200);
    assert.ok(worker.stats().proxies[0]!.connects >= 2);
  });
});
