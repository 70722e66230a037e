import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import type { ClientNode } from '../../src/client/client-node.ts';
import { launchChromium } from '../e2e/chromium.ts';
import { rejectedByCode, until } from '../e2e/harness.ts';
import { moneyAndRequests as money, paidClient, paidSuite } from './paid-network.ts';

/**
 * Attack: DNS rebinding. The user visits http://rebind.test:<clientPort>/, served by the attacker's
 * server; then the attacker's DNS switches the name to 127.0.0.1. The page's requests to its own origin
 * now reach the client's API, and the browser lets the page read the replies: they are same-origin.
 *
 * Simulated faithfully in real Chromium: `--host-resolver-rules` resolves rebind.test to 127.0.0.1 (the
 * switched DNS) and Playwright serves the page itself for that one URL (the attacker's server, before the
 * switch). Chromium's own Local Network Access check would stop this page (a public one) from reaching
 * loopback at all; other browsers have no such check, so it is turned off: the client's Host check must
 * hold on its own.
 */

const REBINDING_FLAGS = [
  '--host-resolver-rules=MAP rebind.test 127.0.0.1',
  '--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests',
];
const GOOD = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 };

/** The attacker's page: same-origin requests (relative URLs), every reply read whole. */
const REBIND_PAGE = `<!doctype html>
<html><body><script>
(async () => {
  const out = {};
  const attempt = async (name, path, init) => {
    try {
      const r = await fetch(path, init);
      out[name] = { status: r.status, body: await r.text() };
    } catch (e) { out[name] = { error: e.name }; }
  };
  const post = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await attempt('chat', '/v1/chat/completions', post(${JSON.stringify(GOOD)}));
  await attempt('completion', '/v1/completions', post({ model: 'cocoon-tiny', prompt: 'hi', max_tokens: 5 }));
  await attempt('jsonstats', '/jsonstats');
  await attempt('models', '/v1/models');
  await attempt('metrics', '/metrics');
  await attempt('dashboard', '/dashboard');
  window.results = out;
  window.done = true;
})();
</script></body></html>`;
const ATTEMPTS = ['chat', 'completion', 'jsonstats', 'models', 'metrics', 'dashboard'];

async function refused(client: ClientNode, code: string): Promise<number> {
  return rejectedByCode(await (await fetch(`${client.url}/metrics`)).text()).get(code) ?? 0;
}

describe('attack: a page rebinds its DNS name to 127.0.0.1 and calls the client API as its own origin', () => {
  const env = paidSuite(1);
  let browser: Browser;
  const extra: ClientNode[] = [];

  before(async () => {
    browser = await launchChromium(REBINDING_FLAGS);
  });
  after(async () => {
    for (const c of extra) await c.stop();
    await browser?.close();
  });

  /** Serves the attacker's page at http://rebind.test:<port>/ and returns what its requests got. */
  async function rebind(
    port: number,
  ): Promise<Record<string, { status?: number; body?: string; error?: string }>> {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const url = `http://rebind.test:${port}/`;
      await page.route(url, (route) =>
        route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: REBIND_PAGE }),
      );
      await page.goto(url);
      await page.waitForFunction('window.done === true', null, { timeout: 15_000 });
      return (await page.evaluate('window.results')) as Record<string, { status?: number; body?: string }>;
    } finally {
      await context.close();
    }
  }

  test('every request reaches the client with Host: rebind.test and gets 403 host_not_allowed', async () => {
    const { net } = env;
    const before = money(net);
    const refusedBefore = await refused(net.client, 'host_not_allowed');
    const results = await rebind(Number(new URL(net.client.url).port));

    for (const name of ATTEMPTS) {
      const r = results[name];
      assert.equal(r?.status, 403, `${name}: ${JSON.stringify(r)}`);
      const body = JSON.parse(r!.body!) as { error: { code: string; type: string; message: string } };
      assert.equal(body.error.code, 'host_not_allowed', name);
      assert.match(body.error.message, /rebind\.test/);
    }
    assert.doesNotMatch(JSON.stringify(results), /chat\.completion|local-client|cocoon_requests|"object"/);

    // The refusals are the client's own (the requests did reach it), counted in /metrics.
    const counted = (await refused(net.client, 'host_not_allowed')) - refusedBefore;
    assert.ok(counted >= ATTEMPTS.length, `${counted} refusals counted`);
    // Nothing served, nothing billed or signed.
    assert.deepEqual(money(net), before);
  });

  test('with allowedHosts: [rebind.test] the same page is served and reads everything: the check is what stops it', async () => {
    const { net, dir } = env;
    const client = await paidClient(net, join(dir, 'rebind-client'), 'rebind-client', {
      allowedHosts: ['rebind.test'],
    });
    extra.push(client);
    const before = money(net, client);
    const results = await rebind(Number(new URL(client.url).port));

    for (const name of ATTEMPTS)
      assert.equal(results[name]?.status, 200, `${name}: ${JSON.stringify(results[name])}`);
    assert.equal(JSON.parse(results.chat!.body!).object, 'chat.completion');
    assert.equal(JSON.parse(results.jsonstats!.body!).name, 'rebind-client', 'the page read the stats');
    await until(
      () => (client.payments?.payer.authorisedTotal ?? 0n) > before.authorised,
      'the requests paid',
    );
    const now = money(net, client);
    assert.equal(now.workerRequests, before.workerRequests + 2, 'chat and completion served');
    assert.notEqual(now.billed, before.billed);
  });
});
