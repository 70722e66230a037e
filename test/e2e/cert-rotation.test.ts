import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Harness, post } from './harness.ts';

/** Short-lived certificates: each node re-issues its own before expiry, sessions end with the peer's. */
test('with 2-second certificates the network keeps serving across several rotations', async () => {
  const h = new Harness();
  after(() => h.stop());
  const short = { certValiditySeconds: 2 };
  const proxy = await h.proxy(short);
  const worker = await h.worker(proxy, short);
  const client = await h.client(proxy, short);
  const ask = () =>
    post(`${client.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'still there?' }],
      max_tokens: 2,
    });
  let ok = 0;
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    if ((await ask()).status === 200) ok++;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(ok > 20, `served ${ok} requests`);
  // Sessions were re-established with fresh certificates (each lives at most one certificate's validity).
  assert.ok(client.stats().proxies[0]!.connects >= 2, 'the client reconnected');
  assert.ok(worker.stats().uptimeSeconds >= 4);
  const last = await ask();
  assert.equal(last.status, 200);
});
