import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ClientNode } from '../../src/client/client-node.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import type { WorkerNode } from '../../src/worker/worker-node.ts';
import { Harness, post } from './harness.ts';

describe('every daemon serves /stats and /jsonstats', () => {
  const h = new Harness();
  let proxy: ProxyNode;
  let worker: WorkerNode;
  let client: ClientNode;

  before(async () => {
    proxy = await h.proxy();
    worker = await h.worker(proxy);
    client = await h.client(proxy);
    const r = await post(`${client.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'count me' }],
      max_tokens: 7,
    });
    assert.equal(r.status, 200);
  });
  after(() => h.stop());

  test('jsonstats count the request, its tokens and the connections', async () => {
    const p = (await (await fetch(`${proxy.statsUrl}/jsonstats`)).json()) as ReturnType<ProxyNode['stats']>;
    assert.equal(p.role, 'proxy');
    assert.match(p.trust, /^dev/);
    assert.deepEqual(p.connections, { workers: 1, clients: 1 });
    assert.equal(p.requests.succeeded, 1);
    assert.equal(p.requests.inFlight, 0);
    assert.ok(p.requests.completionTokens > 0 && p.requests.completionTokens <= 7);
    assert.equal(p.workers.length, 1);
    assert.equal(p.workers[0]!.succeeded, 1);
    assert.ok((p.workers[0]!.avgQueryMs ?? 0) > 0);

    const w = (await (await fetch(`${worker.statsUrl}/jsonstats`)).json()) as ReturnType<WorkerNode['stats']>;
    assert.equal(w.role, 'worker');
    assert.equal(w.requests.total, 1);
    assert.equal(w.requests.completionTokens, p.requests.completionTokens);
    assert.equal(w.proxies[0]!.connected, true);

    const c = (await (await fetch(`${client.url}/jsonstats`)).json()) as ReturnType<ClientNode['stats']>;
    assert.equal(c.role, 'client');
    assert.equal(c.requests.succeeded, 1);
    assert.equal(c.requests.completionTokens, p.requests.completionTokens);
    assert.equal(c.connections.connected, 1);
    assert.equal(c.proxies[0]!.connected, true);
    assert.ok(c.uptimeSeconds >= 0);
  });

  test('finished requests leave no open streams behind on any link', () => {
    assert.equal(client.session?.openStreams, 0);
    for (const w of proxy.registry.all()) assert.equal(w.session.openStreams, 0);
    for (const s of worker.sessions()) assert.equal(s.openStreams, 0);
  });

  test('/stats is an HTML page with the same figures and the dev-trust label', async () => {
    for (const url of [proxy.statsUrl!, worker.statsUrl!, client.url]) {
      const res = await fetch(`${url}/stats`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/html/);
      const html = await res.text();
      assert.match(html, /<table>/);
      assert.match(html, /dev \(software attestation, no TEE\)/);
    }
  });
});
