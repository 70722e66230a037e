import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Harness, post, until } from './harness.ts';

const long = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'go on' }], max_tokens: 30 };
const short = { ...long, max_tokens: 3 };

describe('graceful shutdown: draining finishes what is in flight and sends new work elsewhere', () => {
  const h = new Harness();
  after(() => h.stop());

  test('a draining worker finishes its stream; new requests go to another worker', async () => {
    const proxy = await h.proxy();
    const leaving = await h.worker(proxy, { name: 'leaving', backend: { tokenDelayMs: 15 } });
    await h.worker(proxy, { name: 'staying', backend: { tokenDelayMs: 1 } });
    const client = await h.client(proxy);
    const url = `${client.baseUrl}/chat/completions`;
    const inFlight = post(url, long);
    await until(() => leaving.counters.running === 1, 'the stream runs on the leaving worker');
    const drained = leaving.drain(5000);
    await until(
      () => proxy.registry.all().some((w) => w.name === 'leaving' && !w.info.enabled),
      'proxy told',
    );
    const meanwhile = await post(url, short);
    assert.equal(meanwhile.status, 200);
    assert.equal((meanwhile.json as unknown as { cocoon: { worker: string } }).cocoon.worker, 'staying');
    const r = await inFlight;
    assert.equal(r.status, 200);
    assert.equal((r.json as unknown as { usage: { completion_tokens: number } }).usage.completion_tokens, 30);
    assert.equal(await drained, true);
  });

  test('a draining proxy refuses new requests with 503 and Retry-After, and finishes the one in flight', async () => {
    const proxy = await h.proxy();
    await h.worker(proxy, { backend: { tokenDelayMs: 15 } });
    const client = await h.client(proxy);
    const url = `${client.baseUrl}/chat/completions`;
    const inFlight = post(url, long);
    await until(() => proxy.counters.inFlight === 1, 'request in flight');
    const drained = proxy.drain(5000);
    const refused = await post(url, short);
    assert.equal(refused.status, 503);
    assert.equal(refused.json.error?.code, 'proxy_draining');
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal((await inFlight).status, 200);
    assert.equal(await drained, true);
  });

  test('a draining client stops taking requests and finishes the one in flight', async () => {
    const proxy = await h.proxy();
    await h.worker(proxy, { backend: { tokenDelayMs: 15 } });
    const client = await h.client(proxy);
    const url = `${client.baseUrl}/chat/completions`;
    const inFlight = post(url, long);
    await until(() => client.counters.inFlight === 1, 'request in flight');
    const drained = client.drain(5000);
    const refused = await post(url, short).catch(() => ({ status: 0 }));
    assert.notEqual(refused.status, 200);
    assert.equal((await inFlight).status, 200);
    assert.equal(await drained, true);
  });

  test('drain gives up after its bound and says so', async () => {
    const proxy = await h.proxy();
    const w = await h.worker(proxy, { backend: { tokenDelayMs: 50 } });
    const client = await h.client(proxy);
    const inFlight = post(`${client.baseUrl}/chat/completions`, long);
    await until(() => w.counters.running === 1, 'request running');
    assert.equal(await w.drain(50), false);
    await inFlight;
  });
});
