import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Harness, post } from './harness.ts';

/** One sample of a Prometheus text exposition, by metric name and label subset. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const have = Object.fromEntries(
      [...(m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[2]);
  }
  return null;
}

describe('Prometheus /metrics on every daemon', () => {
  const h = new Harness();
  after(() => h.stop());

  test('requests by outcome, latency and TTFT histograms, tokens, per-worker routing, process figures', async () => {
    const proxy = await h.proxy();
    const worker = await h.worker(proxy, { name: 'w-metrics' });
    const client = await h.client(proxy);
    const url = `${client.baseUrl}/chat/completions`;
    const ask = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 };
    for (let i = 0; i < 3; i++) assert.equal((await post(url, ask)).status, 200);
    const streamed = await post(url, { ...ask, stream: true });
    assert.equal(streamed.status, 200);
    assert.equal((await post(url, { ...ask, model: 'nope' })).status, 404);

    const scrape = async (base: string) => {
      const r = await fetch(`${base}/metrics`);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
      return r.text();
    };
    const c = await scrape(client.url);
    const p = await scrape(proxy.statsUrl!);
    const w = await scrape(worker.statsUrl!);

    assert.equal(sample(c, 'cocoon_requests_total', { role: 'client', outcome: 'ok' }), 4);
    assert.equal(sample(c, 'cocoon_requests_total', { outcome: 'failed', code: 'model_not_found' }), 1);
    assert.equal(sample(c, 'cocoon_time_to_first_token_seconds_count'), 1);
    assert.equal(sample(c, 'cocoon_request_duration_seconds_count', { outcome: 'ok' }), 4);
    assert.equal(sample(c, 'cocoon_tokens_total', { type: 'completion' }), 20);
    assert.equal(sample(c, 'cocoon_connected_proxies'), 1);
    assert.ok((sample(c, 'cocoon_process_resident_memory_bytes') ?? 0) > 0);

    assert.equal(sample(p, 'cocoon_requests_total', { role: 'proxy', outcome: 'ok' }), 4);
    assert.equal(sample(p, 'cocoon_requests_total', { outcome: 'rejected', code: 'model_not_found' }), 1);
    assert.equal(sample(p, 'cocoon_worker_requests_total', { worker: 'w-metrics', result: 'ok' }), 4);
    assert.equal(sample(p, 'cocoon_connected_peers', { peer: 'worker' }), 1);
    assert.equal(sample(p, 'cocoon_requests_in_flight'), 0);
    assert.equal(sample(p, 'cocoon_redispatches_total'), 0);

    assert.equal(sample(w, 'cocoon_requests_total', { role: 'worker', outcome: 'ok' }), 4);
    assert.equal(sample(w, 'cocoon_worker_enabled'), 1);
    assert.equal(sample(w, 'cocoon_tokens_total', { type: 'completion' }), 20);
  });
});
