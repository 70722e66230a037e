import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import OpenAI from 'openai';
import { Harness, post, until } from './harness.ts';

const ask = { model: 'cocoon-tiny', messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 6 };

describe('many proxies: the client keeps sessions to several and fails over', () => {
  const h = new Harness();
  after(() => h.stop());

  test('a client spreads over two proxies; when one dies, requests go on through the other', async () => {
    const p1 = await h.proxy();
    const p2 = await h.proxy();
    await h.worker(p1, { name: 'w1' });
    await h.worker(p2, { name: 'w2' });
    const client = await h.client(p1, {
      proxy: [`127.0.0.1:${p1.clientPort}`, `127.0.0.1:${p2.clientPort}`],
    });
    await until(() => client.proxies.every((c) => c.session), 'both proxies connected');
    const openai = new OpenAI({ baseURL: client.baseUrl, apiKey: 'x', maxRetries: 0 });
    // The models of both proxies, merged.
    const models = await openai.models.list();
    assert.equal((models.data[0] as unknown as { workers: unknown[] }).workers.length, 2);

    const url = `${client.baseUrl}/chat/completions`;
    await Promise.all(
      Array.from({ length: 8 }, async () => assert.equal((await post(url, ask)).status, 200)),
    );
    assert.ok(p1.counters.succeeded > 0 && p2.counters.succeeded > 0, 'both proxies served');

    await p1.stop();
    await until(() => client.proxies.filter((c) => c.session).length === 1, 'client noticed');
    for (let i = 0; i < 5; i++) {
      const r = await openai.chat.completions.create(ask);
      assert.equal(r.choices[0]!.finish_reason, 'length');
    }
    const stats = client.stats();
    assert.equal(stats.connections.connected, 1);
    assert.equal(stats.proxies.find((p) => p.address.endsWith(`:${p1.clientPort}`))?.connected, false);
  });

  test('a request whose proxy dies before it answers is sent again through another proxy', async () => {
    const p1 = await h.proxy();
    const p2 = await h.proxy();
    await h.worker(p1, { name: 'slow-behind-p1', backend: { tokenDelayMs: 300 } });
    await h.worker(p2, { name: 'behind-p2' });
    const client = await h.client(p1, { proxy: [`127.0.0.1:${p1.clientPort}`] });
    // Only p1 at first, so the request goes there; then p2 joins and p1 dies mid-request.
    const pending = post(`${client.baseUrl}/chat/completions`, ask);
    await until(() => p1.counters.inFlight === 1, 'request at p1');
    const second = await h.client(p2, {
      proxy: [`127.0.0.1:${p1.clientPort}`, `127.0.0.1:${p2.clientPort}`],
    });
    await until(() => second.proxies.every((c) => c.session), 'second client sees both');
    // The first client learns of p2 through its list (as from the root contract's registry).
    client.updateProxies([
      { host: '127.0.0.1', port: p1.clientPort },
      { host: '127.0.0.1', port: p2.clientPort },
    ]);
    await until(() => client.proxies.every((c) => c.session), 'first client sees both');
    for (const s of p1.clientSessions()) s.socket.destroy(); // p1's connection drops as if it crashed
    const r = await pending;
    assert.equal(r.status, 200, r.text);
    assert.equal((r.json as unknown as { cocoon: { worker: string } }).cocoon.worker, 'behind-p2');
    assert.equal(client.counters.failovers, 1);
    assert.equal(client.recent.list()[0]?.attempts, 2);
  });

  test('a worker serves two proxies at once, its capacity split between them', async () => {
    const p1 = await h.proxy();
    const p2 = await h.proxy();
    await h.worker(
      p1,
      {
        name: 'shared',
        maxConcurrent: 6,
        proxy: [`127.0.0.1:${p1.workerPort}`, `127.0.0.1:${p2.workerPort}`],
      },
      { register: false },
    );
    await until(() => p1.registry.size === 1 && p2.registry.size === 1, 'registered at both');
    for (const p of [p1, p2]) assert.equal(p.registry.all()[0]!.info.models[0]!.maxConcurrent, 3);
    const c1 = await h.client(p1);
    const c2 = await h.client(p2);
    for (const c of [c1, c2]) assert.equal((await post(`${c.baseUrl}/chat/completions`, ask)).status, 200);
  });
});
