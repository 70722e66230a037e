import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import type { ClientNode } from '../../src/client/client-node.ts';
import { listenHttp, sendJson, serveStats } from '../../src/ops/http.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import type { WorkerNode } from '../../src/worker/worker-node.ts';
import { launchChromium } from './chromium.ts';
import { Harness, post, until } from './harness.ts';

const ARTIFACTS = fileURLToPath(new URL('../.artifacts/', import.meta.url));
/** A worker name a hostile peer could pick: it must show up as text and run nothing. */
const HOSTILE_NAME = '<img src=x onerror="window.pwned=1"><b>bold</b>';

let browser: Browser;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launchChromium();
});
after(() => browser?.close());

interface OpenPage {
  page: Page;
  /** Script errors and console errors the page produced. */
  problems: string[];
}

async function openDashboard(baseUrl: string): Promise<OpenPage> {
  const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  const res = await page.goto(`${baseUrl}/dashboard?every=300`);
  assert.equal(res?.status(), 200);
  return { page, problems };
}

async function texts(page: Page, selector: string): Promise<string[]> {
  return (await page.locator(selector).allTextContents()).map((t) => t.trim());
}

async function textOf(page: Page, selector: string): Promise<string> {
  return (await texts(page, selector))[0] ?? '';
}

async function untilText(page: Page, selector: string, expected: string | RegExp): Promise<void> {
  const matches = (t: string) => (typeof expected === 'string' ? t === expected : expected.test(t));
  await until(async () => matches(await textOf(page, selector)), `${selector} to read ${expected}`);
}

/** How many samples a chart has drawn. */
async function chartPoints(page: Page, chart: string): Promise<number> {
  return Number(await page.locator(`#${chart} svg.chart`).getAttribute('data-points'));
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${ARTIFACTS}dashboard-${name}.png`, fullPage: true });
}

async function complete(client: ClientNode): Promise<void> {
  const r = await post(`${client.baseUrl}/chat/completions`, {
    model: 'cocoon-tiny',
    messages: [{ role: 'user', content: 'hi' }],
    max_tokens: 8,
  });
  assert.equal(r.status, 200, r.text);
}

describe('the dashboard page formats money exactly (its own browser code, run in node)', () => {
  type Format = { nanoToTon(n: unknown): string | null; escapeHtml(s: unknown): string };
  let format: Format;
  before(async () => {
    format = await import(new URL('../../src/ops/dashboard/browser/format.js', import.meta.url).href);
  });

  test('nanoton strings become TON with up to 9 decimals, trailing zeros trimmed', () => {
    assert.equal(format.nanoToTon('0'), '0');
    assert.equal(format.nanoToTon('1'), '0.000000001');
    assert.equal(format.nanoToTon('1000000000'), '1');
    assert.equal(format.nanoToTon('1500000000'), '1.5');
    assert.equal(format.nanoToTon('-2500000000'), '-2.5');
  });

  test('amounts beyond 2^53 keep every digit (no floating point)', () => {
    assert.equal(format.nanoToTon('9007199254740993'), '9007199.254740993');
    assert.equal(format.nanoToTon('123456789012345678901'), '123456789012.345678901');
  });

  test('anything but an integer string is refused, not guessed', () => {
    assert.equal(format.nanoToTon('1.5'), null);
    assert.equal(format.nanoToTon('1e9'), null);
    assert.equal(format.nanoToTon(null), null);
  });

  test('text from stats is escaped for HTML', () => {
    assert.equal(format.escapeHtml('<b a="1">&\''), '&#60;b a=&#34;1&#34;&#62;&#38;&#39;');
  });
});

describe('every daemon serves a live /dashboard (real daemons, Chromium)', () => {
  const h = new Harness();
  let proxy: ProxyNode;
  let workers: WorkerNode[];
  let client: ClientNode;

  before(async () => {
    proxy = await h.proxy();
    workers = [
      await h.worker(proxy, { name: 'gpu-box-1', backend: { tokenDelayMs: 0 } }),
      await h.worker(proxy, { name: HOSTILE_NAME, backend: { tokenDelayMs: 0 } }),
    ];
    client = await h.client(proxy);
    for (let i = 0; i < 3; i++) await complete(client);
  });
  after(() => h.stop());

  test('the page is one document allowed to run only its own inline script and style', async () => {
    const res = await fetch(`${proxy.statsUrl}/dashboard`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'sha256-[^']+'(;|$)/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /unsafe/);
    const html = await res.text();
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+stylesheet|https?:\/\//);
    assert.match(await (await fetch(`${proxy.statsUrl}/stats`)).text(), /href="\/dashboard"/);
  });

  test('proxy: header, dev-trust banner, totals, its workers and live charts', async () => {
    const { page, problems } = await openDashboard(proxy.statsUrl!);
    try {
      await untilText(page, '#conn', 'live');
      assert.equal(await textOf(page, '#role'), 'proxy');
      assert.equal(await textOf(page, '#name'), 'proxy-1');
      assert.match(await textOf(page, '#trust'), /^dev \(software attestation, no TEE\)$/);
      assert.ok(await page.locator('#dev-banner').isVisible(), 'the dev-trust banner is visible');
      assert.match(await textOf(page, '#dev-banner'), /Dev trust mode/);

      assert.equal(await textOf(page, '#kpi-total .kpi-value'), '3');
      assert.equal(await textOf(page, '#kpi-succeeded .kpi-value'), '3');
      assert.equal(await textOf(page, '#kpi-failed .kpi-value'), '0');
      assert.ok(Number(await textOf(page, '#kpi-completionTokens .kpi-value')) > 0);

      assert.deepEqual((await texts(page, '#network td .name')).sort(), [HOSTILE_NAME, 'gpu-box-1'].sort());
      assert.match(await textOf(page, '#models'), /cocoon-tiny/);
      assert.match(await textOf(page, '#money'), /Free service/);

      // Rates need two polls each: after three, every chart has a line of at least two points.
      await until(async () => (await chartPoints(page, 'chart-requests')) >= 2, 'the requests chart drew');
      assert.ok((await chartPoints(page, 'chart-inflight')) >= 2);
      assert.equal(await page.locator('#chart-tokens polyline').count(), 2, 'completion and prompt lines');

      // More traffic while the page watches: the requests line leaves the baseline.
      const baseline = async () => {
        const points = (await page.locator('#chart-requests polyline').getAttribute('points')) ?? '';
        return points.split(' ').some((p) => Number(p.split(',')[1]) < 97);
      };
      for (let i = 0; i < 3; i++) await complete(client);
      await until(baseline, 'the requests chart rose with new traffic');
      await untilText(page, '#kpi-total .kpi-value', '6');
      await screenshot(page, 'proxy');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  test('a worker name carrying HTML is shown as text and runs nothing', async () => {
    const { page, problems } = await openDashboard(proxy.statsUrl!);
    try {
      await untilText(page, '#conn', 'live');
      assert.ok((await texts(page, '#network td .name')).includes(HOSTILE_NAME));
      assert.equal(await page.locator('#network img, #network b').count(), 0);
      assert.equal(await page.evaluate('window.pwned'), undefined);
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  test('client: totals and its proxy link', async () => {
    const { page, problems } = await openDashboard(client.url);
    try {
      await untilText(page, '#conn', 'live');
      assert.equal(await textOf(page, '#role'), 'client');
      assert.ok(await page.locator('#dev-banner').isVisible());
      assert.equal(await textOf(page, '#kpi-succeeded .kpi-value'), '6');
      assert.match(await textOf(page, '#network'), new RegExp(`127\\.0\\.0\\.1:${proxy.clientPort}`));
      assert.match(await textOf(page, '#network'), /connected/);
      assert.match(await textOf(page, '#money'), /Free service/);
      await until(async () => (await chartPoints(page, 'chart-inflight')) >= 2, 'the in-flight chart drew');
      await screenshot(page, 'client');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  test('worker: what it serves, its proxies, and its own name as text', async () => {
    // The proxy spread the requests; look at a worker that served some.
    const worker = workers.find((w) => w.counters.total > 0)!;
    const { page, problems } = await openDashboard(worker.statsUrl!);
    try {
      await untilText(page, '#conn', 'live');
      assert.equal(await textOf(page, '#role'), 'worker');
      assert.equal(await textOf(page, '#name'), worker.stats().name);
      assert.equal(await textOf(page, '#kpi-total .kpi-value'), String(worker.counters.total));
      assert.equal(await textOf(page, '#kpi-succeeded .kpi-value'), String(worker.counters.total));
      assert.match(await textOf(page, '#models'), /cocoon-tiny/);
      assert.match(await textOf(page, '#network'), new RegExp(`127\\.0\\.0\\.1:${proxy.workerPort}`));
      assert.match(await textOf(page, '#network'), /connected/);
      await screenshot(page, 'worker');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });
});

describe('the dashboard shows the fields newer nodes report (a fixed /jsonstats)', () => {
  const now = Date.now();
  const proxyStats = {
    role: 'proxy',
    name: 'stub-proxy',
    trust: 'tdx (hardware attestation)',
    uptimeSeconds: 93_784,
    connections: { workers: 3, clients: 2 },
    requests: {
      inFlight: 2,
      total: 40,
      succeeded: 33,
      failed: 3,
      cancelled: 1,
      rejected: 1,
      promptTokens: 1200,
      completionTokens: 3400,
    },
    refusals: { insufficient_balance: 1 },
    payments: {
      contract: { workChain: 0, hash: { type: 'Buffer', data: Array.from({ length: 32 }, (_, i) => i) } },
      clients: 2,
      workers: 3,
      openBills: 1,
      billedNano: '123456789012345678901',
      unpaidNano: '1',
      settlements: 4,
      payoutsSigned: 7,
      unredeemedNano: '2500000000',
    },
    workers: [
      worker('alpha', { state: 'ok', failureRate: 0, cooldownUntil: null }, 1, 4),
      worker('beta', { state: 'cooling', failureRate: 0.4, cooldownUntil: now + 60_000 }, 0, 4),
      worker('gamma', { state: 'probing', failureRate: 0.2, cooldownUntil: null }, 4, 4),
    ],
    recent: [
      recent('r-4', 'ok', 200, null, null, '1234567890123'),
      recent('r-3', 'failed', 502, 'engine_error', '<script>alert(1)</script> engine died', null),
      recent('r-2', 'cancelled', 499, 'cancelled', 'caller went away', '1'),
      recent('r-1', 'rejected', 402, 'insufficient_balance', 'not enough credit', null),
    ],
  };
  const clientStats = {
    role: 'client',
    name: 'stub-client',
    trust: 'dev (software attestation, no TEE)',
    uptimeSeconds: 5,
    requests: { ...proxyStats.requests },
    proxies: [
      {
        address: '10.0.0.1:11002',
        connected: true,
        tier: 'tee-cpu',
        healthy: true,
        latencyMs: 12.5,
        inFlight: 2,
      },
      {
        address: '10.0.0.2:11002',
        connected: false,
        tier: null,
        healthy: false,
        latencyMs: null,
        inFlight: 0,
      },
    ],
    payments: [{ contract: 'EQstub', spentNano: '42' }],
  };
  let stats: unknown = proxyStats;
  let stub: Awaited<ReturnType<typeof listenHttp>>;
  const serve = (req: IncomingMessage, res: ServerResponse) => {
    if (!serveStats(req, res, 'stub', () => stats)) sendJson(res, 404, {});
  };

  function worker(name: string, health: object, running: number, maxConcurrent: number) {
    const base = { models: 'cocoon-tiny, llama-3', tier: 'tee-gpu', enabled: true, coefficient: 1500 };
    return { name, ...base, running, maxConcurrent, succeeded: 10, failed: 1, avgQueryMs: 812.4, health };
  }
  function recent(
    requestId: string,
    outcome: string,
    status: number,
    code: string | null,
    message: string | null,
    costNanoton: string | null,
  ) {
    const at = now - 1000 * (4 - Number(requestId.slice(2))); // r-4 is the newest
    const tokens = { promptTokens: 12, completionTokens: outcome === 'ok' ? 30 : 0 };
    return {
      at,
      requestId,
      model: 'cocoon-tiny',
      worker: 'alpha',
      outcome,
      status,
      code,
      message,
      durationMs: 950,
      ...tokens,
      costNanoton,
      attempts: 1,
    };
  }

  before(async () => {
    stub = await listenHttp('127.0.0.1', 0, serve);
  });
  after(() => stub.close());

  test('proxy: worker health, recent requests newest first with errors highlighted, exact TON', async () => {
    stats = proxyStats;
    const { page, problems } = await openDashboard(stub.url);
    try {
      await untilText(page, '#conn', 'live');
      assert.equal(await page.locator('#dev-banner').isVisible(), false, 'no banner with hardware trust');
      assert.equal(await textOf(page, '#uptime'), 'up 1d 2h');

      const health = await texts(page, '#network tbody tr');
      assert.match(health[0]!, /alpha.*healthy/);
      assert.match(health[1]!, /beta.*cooling \d+s.*40% fail/);
      assert.match(health[2]!, /gamma.*probing.*4\/4/);
      assert.equal(
        await page.locator('#network tbody tr.row-failed').count(),
        1,
        'the cooling worker stands out',
      );
      assert.match(await textOf(page, '#network .sub'), /insufficient_balance/);

      const rows = page.locator('#recent tbody tr');
      assert.equal(await rows.count(), 4);
      assert.deepEqual(await texts(page, '#recent tbody tr td:nth-child(2)'), [
        'ok',
        'failed',
        'cancelled',
        'rejected',
      ]);
      const classes = await Promise.all([0, 1, 2, 3].map((i) => rows.nth(i).getAttribute('class')));
      assert.deepEqual(classes, ['row-ok', 'row-failed', 'row-cancelled', 'row-rejected']);
      assert.match(await textOf(page, '#recent h2'), /3 not ok/);
      assert.match(await textOf(page, '#recent tbody tr:nth-child(1)'), /1234\.567890123\s*TON/);
      assert.match(await textOf(page, '#recent tbody tr:nth-child(3)'), /0\.000000001\s*TON/);
      assert.match(
        await textOf(page, '#recent tbody tr:nth-child(2)'),
        /<script>alert\(1\)<\/script> engine died/,
      );
      assert.equal(await page.locator('#recent script').count(), 0);

      const money = await textOf(page, '#money');
      assert.match(money, /Earned \(billed to clients\)\s*123456789012\.345678901\s*TON/);
      assert.match(money, /Billed to clients \(TON\)\s*123456789012\.345678901/);
      assert.match(money, /Authorised, not yet redeemed on-chain \(TON\)\s*2\.5\s*TON/);
      assert.match(money, /0:000102030405/);
      assert.match(await textOf(page, '#models'), /llama-3/);
      await screenshot(page, 'newer-fields');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  test('client: its proxies with tier, health, latency and load; its spending', async () => {
    stats = clientStats;
    const { page, problems } = await openDashboard(stub.url);
    try {
      await untilText(page, '#conn', 'live');
      assert.ok(await page.locator('#dev-banner').isVisible());
      const proxies = await texts(page, '#network tbody tr');
      assert.match(proxies[0]!, /10\.0\.0\.1:11002.*connected.*tee-cpu.*healthy.*13 ms.*2/);
      assert.match(proxies[1]!, /10\.0\.0\.2:11002.*down.*unhealthy/);
      assert.match(await textOf(page, '#money'), /Spent\s*0\.000000042\s*TON/);
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });

  test('a node that stops answering shows as disconnected, and the page recovers when it returns', async () => {
    stats = proxyStats;
    const { page } = await openDashboard(stub.url);
    try {
      await untilText(page, '#conn', 'live');
      const port = stub.port;
      await stub.close();
      await untilText(page, '#conn', /^disconnected — retrying \(\d+\)$/);
      assert.match((await page.locator('body').getAttribute('class')) ?? '', /stale/);
      stub = await listenHttp('127.0.0.1', port, serve);
      await untilText(page, '#conn', 'live');
    } finally {
      await page.close();
    }
  });
});
