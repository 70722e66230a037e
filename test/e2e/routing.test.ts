import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Harness, post } from './harness.ts';

const body = (n: number) => ({
  model: 'cocoon-tiny',
  messages: [{ role: 'user', content: `q${n}` }],
  max_tokens: 20,
});

describe('routing across workers', () => {
  const h = new Harness();
  after(() => h.stop());

  test('with two workers of different speed, more requests go to the faster', async () => {
    const proxy = await h.proxy();
    const slow = await h.worker(proxy, { name: 'slow', backend: { tokenDelayMs: 8 } });
    const fast = await h.worker(proxy, { name: 'fast', backend: { tokenDelayMs: 1 } });
    const client = await h.client(proxy);
    const url = `${client.baseUrl}/chat/completions`;
    // 4 callers in a loop, 40 requests in all.
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < 40) {
          const r = await post(url, body(next++));
          assert.equal(r.status, 200, r.text);
        }
      }),
    );
    const f = fast.counters.total;
    const s = slow.counters.total;
    assert.equal(f + s, 40);
    assert.ok(f > s, `fast worker served ${f}, slow served ${s}`);
  });

  test('a full worker is skipped; when all are full the caller gets 503', async () => {
    const proxy = await h.proxy();
    const a = await h.worker(proxy, { name: 'a', backend: { tokenDelayMs: 30 }, maxConcurrent: 1 });
    const b = await h.worker(proxy, { name: 'b', backend: { tokenDelayMs: 30 }, maxConcurrent: 1 });
    const client = await h.client(proxy);
    const url = `${client.baseUrl}/chat/completions`;
    const results = await Promise.all([post(url, body(1)), post(url, body(2)), post(url, body(3))]);
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 503]);
    assert.equal(a.counters.total, 1);
    assert.equal(b.counters.total, 1);
    const refused = results.find((r) => r.status === 503)!;
    assert.equal(refused.json.error?.code, 'workers_busy');
  });

  test('a worker that disables itself is not routed to', async () => {
    const proxy = await h.proxy();
    const a = await h.worker(proxy, { name: 'a2' });
    const b = await h.worker(proxy, { name: 'b2' });
    const client = await h.client(proxy);
    a.setEnabled(false);
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 5; i++)
      assert.equal((await post(`${client.baseUrl}/chat/completions`, body(i))).status, 200);
    assert.equal(a.counters.total, 0);
    assert.equal(b.counters.total, 5);
  });

  test('workers above the caller max_coefficient are not used', async () => {
    const proxy = await h.proxy();
    await h.worker(proxy, { name: 'pricey', coefficient: 5000 });
    const client = await h.client(proxy);
    const r = await post(`${client.baseUrl}/chat/completions`, body(1));
    assert.equal(r.status, 503);
    assert.equal(r.json.error?.code, 'coefficient_too_low');
    assert.match(r.json.error!.message, /coefficient=5000/);
    const ok = await post(`${client.baseUrl}/chat/completions`, { ...body(2), max_coefficient: 6000 });
    assert.equal(ok.status, 200, ok.text);
  });
});

describe('a worker serving several models', () => {
  const h = new Harness();
  after(() => h.stop());

  test('lists each model and routes by model name', async () => {
    const proxy = await h.proxy();
    const w = await h.worker(proxy, { models: ['alpha', 'beta'] });
    const client = await h.client(proxy);
    const models = (await (await fetch(`${client.baseUrl}/models`)).json()) as {
      data: { id: string; workers: unknown[] }[];
    };
    assert.deepEqual(
      models.data.map((m) => m.id),
      ['alpha', 'beta'],
    );
    assert.equal(models.data[0]!.workers.length, 1);
    for (const model of ['alpha', 'beta']) {
      const r = await post(`${client.baseUrl}/chat/completions`, { ...body(1), model });
      assert.equal(r.status, 200, r.text);
      assert.equal((r.json as unknown as { model: string }).model, model);
    }
    assert.equal(w.counters.total, 2);
  });
});
