import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import type { ClientNode } from '../../src/client/client-node.ts';
import { listenHttp } from '../../src/ops/http.ts';
import { launchChromium } from '../e2e/chromium.ts';
import { rejectedByCode, until } from '../e2e/harness.ts';
import { moneyAndRequests as money, paidClient, paidSuite } from './paid-network.ts';

/**
 * Attack: a web page the user happens to visit (another origin: a server on 127.0.0.1:<otherPort>, or on
 * localhost:<otherPort>) makes the browser call the client's API on 127.0.0.1, to spend the user's TON
 * and read what the client knows. It tries what a browser lets any page send without asking: a "simple"
 * text/plain POST, a form posting a JSON-looking body (the enctype="text/plain" trick), beacons, a
 * script tag; and what needs the API's consent: a JSON fetch (preflighted) and reading replies. Real
 * headless Chromium, a real paying network.
 */

const GOOD = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 };

/** The attacker's page: every attempt, its outcome as the page saw it in `window.results`. */
const ATTACK_PAGE = `<!doctype html>
<html><body>
<iframe name="sink" id="sink"></iframe>
<form id="form" method="POST" enctype="text/plain" target="sink">
  <input name='{"model":"cocoon-tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"x":"' value='"}'>
</form>
<script>
(async () => {
  const target = new URLSearchParams(location.search).get('target');
  const good = ${JSON.stringify(JSON.stringify(GOOD))};
  const out = {};
  const attempt = async (name, fn) => {
    try { out[name] = await fn(); } catch (e) { out[name] = { error: e.name }; }
  };
  const seen = async (r) => ({ type: r.type, status: r.status, body: await r.text() });
  await attempt('simple text/plain POST', async () => seen(await fetch(target + '/v1/chat/completions',
    { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: good })));
  await attempt('simple text/plain POST to /v1/completions', async () => seen(await fetch(
    target + '/v1/completions', { method: 'POST', mode: 'no-cors', body: good.replace('"messages"', '"prompt":"hi","x"') })));
  await attempt('JSON fetch', async () => seen(await fetch(target + '/v1/chat/completions',
    { method: 'POST', headers: { 'content-type': 'application/json' }, body: good })));
  await attempt('sendBeacon text', async () => ({ queued: navigator.sendBeacon(target + '/v1/chat/completions', good) }));
  await attempt('sendBeacon JSON blob', async () => ({ queued: navigator.sendBeacon(target + '/v1/chat/completions',
    new Blob([good], { type: 'application/json' })) }));
  await attempt('read /jsonstats', async () => seen(await fetch(target + '/jsonstats')));
  await attempt('read /v1/models', async () => seen(await fetch(target + '/v1/models')));
  await attempt('read /metrics', async () => seen(await fetch(target + '/metrics')));
  await attempt('no-cors /v1/models', async () => seen(await fetch(target + '/v1/models', { mode: 'no-cors' })));
  await attempt('script src=/jsonstats', () => new Promise((resolve) => {
    const s = document.createElement('script');
    s.src = target + '/jsonstats';
    s.onload = () => resolve({ loaded: true });
    s.onerror = () => resolve({ loaded: false });
    document.body.append(s);
  }));
  await attempt('form text/plain POST', () => new Promise((resolve) => {
    const frame = document.getElementById('sink');
    frame.onload = () => {
      try { resolve({ read: frame.contentDocument ? frame.contentDocument.body.innerText : null }); }
      catch (e) { resolve({ error: e.name }); }
    };
    const form = document.getElementById('form');
    form.action = target + '/v1/chat/completions';
    form.submit();
  }));
  window.results = out;
  window.done = true;
})();
</script>
</body></html>`;

/** An allowed page: a JSON completion and the models, read with the headers CORS exposes. */
const APP_PAGE = `<!doctype html>
<html><body><script>
(async () => {
  const target = new URLSearchParams(location.search).get('target');
  const out = {};
  try {
    const r = await fetch(target + '/v1/chat/completions', { method: 'POST',
      headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(JSON.stringify(GOOD))} });
    const body = await r.json();
    out.chat = { status: r.status, requestId: r.headers.get('x-request-id'), object: body.object,
      content: body.choices && body.choices[0].message.content };
    const m = await fetch(target + '/v1/models');
    out.models = { status: m.status, ids: (await m.json()).data.map((d) => d.id) };
  } catch (e) { out.error = e.name; }
  window.results = out;
  window.done = true;
})();
</script></body></html>`;

/** The client's refusals by error code, from its /metrics. */
async function refusals(client: ClientNode): Promise<Map<string, number>> {
  return rejectedByCode(await (await fetch(`${client.url}/metrics`)).text());
}

function delta(after: Map<string, number>, before: Map<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [code, n] of after) if (n !== (before.get(code) ?? 0)) d[code] = n - (before.get(code) ?? 0);
  return d;
}

describe('attack: a web page on another origin calls the local client API', () => {
  const env = paidSuite(1);
  let browser: Browser;
  let pages: Awaited<ReturnType<typeof listenHttp>>;
  let pagePort = 0;
  const extra: ClientNode[] = [];

  before(async () => {
    browser = await launchChromium();
    pages = await listenHttp('127.0.0.1', 0, (req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '/').split('?')[0];
      const html = path === '/attack' ? ATTACK_PAGE : path === '/app' ? APP_PAGE : null;
      if (html === null) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    });
    pagePort = pages.port;
  });
  after(async () => {
    for (const c of extra) await c.stop();
    await browser?.close();
    await pages?.close();
  });

  /** Opens `pageUrl` in a fresh browser context and returns what its script recorded. */
  async function visit(pageUrl: string): Promise<Record<string, unknown>> {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(pageUrl);
      await page.waitForFunction('window.done === true', null, { timeout: 15_000 });
      return (await page.evaluate('window.results')) as Record<string, unknown>;
    } finally {
      await context.close();
    }
  }

  for (const pageHost of ['127.0.0.1', 'localhost']) {
    test(`a page on http://${pageHost}:<otherPort> reaches no worker, pays nothing, reads nothing`, async () => {
      const { net } = env;
      const before = money(net);
      const refusedBefore = await refusals(net.client);
      const results = await visit(`http://${pageHost}:${pagePort}/attack?target=${net.client.url}`);

      // The page saw nothing: opaque replies, network errors, a frame it cannot look into.
      const r = results as Record<string, Record<string, unknown>>;
      for (const name of [
        'simple text/plain POST',
        'simple text/plain POST to /v1/completions',
        'no-cors /v1/models',
      ]) {
        assert.deepEqual(r[name], { type: 'opaque', status: 0, body: '' }, name);
      }
      for (const name of ['JSON fetch', 'read /jsonstats', 'read /v1/models', 'read /metrics']) {
        assert.deepEqual(r[name], { error: 'TypeError' }, name);
      }
      assert.deepEqual(r['script src=/jsonstats'], { loaded: false });
      assert.ok(
        r['form text/plain POST']!.read === null || r['form text/plain POST']!.error === 'SecurityError',
        JSON.stringify(r['form text/plain POST']),
      );
      assert.doesNotMatch(JSON.stringify(results), /chat\.completion|local-client|cocoon_|"object"/);

      // Every attempt reached the client and was refused there for its origin: eleven requests (the two
      // beacons and the JSON fetch's preflight included), nothing refused for any other reason.
      let got: Record<string, number> = {};
      await until(async () => {
        got = delta(await refusals(net.client), refusedBefore);
        return (got.origin_not_allowed ?? 0) >= 11;
      }, 'the refusals counted in /metrics').catch(() =>
        assert.fail(`refusals counted: ${JSON.stringify(got)}`),
      );
      assert.deepEqual(Object.keys(got), ['origin_not_allowed'], JSON.stringify(got));

      // None reached a worker, nothing was billed or signed.
      await new Promise((resolve) => setTimeout(resolve, 200)); // a late beacon would have landed by now
      assert.deepEqual(money(net), before);
    });
  }

  test('with the page’s origin in allowedOrigins its JSON fetch works; other origins stay refused', async () => {
    const { net, dir } = env;
    const allowed = `http://127.0.0.1:${pagePort}`;
    const client = await paidClient(net, join(dir, 'page-client'), 'page-client', {
      allowedOrigins: [allowed],
    });
    extra.push(client);
    const before = money(net, client);
    const networkClient = money(net);

    const results = await visit(`${allowed}/app?target=${client.url}`);
    const chat = results.chat as Record<string, unknown> | undefined;
    assert.equal(chat?.status, 200, JSON.stringify(results));
    assert.equal(chat?.object, 'chat.completion');
    assert.ok(typeof chat?.content === 'string' && chat.content.length > 0, 'the reply is readable');
    assert.match(String(chat?.requestId), /^[0-9a-f-]{36}$/, 'x-request-id is exposed');
    assert.deepEqual(results.models, { status: 200, ids: ['cocoon-tiny'] });

    // The same page served from another origin is refused.
    const refusedBefore = await refusals(client);
    const other = await visit(`http://localhost:${pagePort}/app?target=${client.url}`);
    assert.deepEqual(other, { error: 'TypeError' });
    const got = delta(await refusals(client), refusedBefore);
    assert.ok((got.origin_not_allowed ?? 0) >= 1, JSON.stringify(got));

    // The one allowed request reached the worker and was paid for by this client alone: what the checks
    // above measure does move when a request gets through.
    await until(() => (client.payments?.payer.authorisedTotal ?? 0n) > before.authorised, 'the request paid');
    const now = money(net, client);
    assert.equal(now.workerRequests, before.workerRequests + 1);
    assert.equal(now.clientRequests, before.clientRequests + 1);
    assert.notEqual(now.billed, before.billed);
    assert.equal(money(net).authorised, networkClient.authorised, 'the other client paid nothing');
  });
});
