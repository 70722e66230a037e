import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ClientNode } from '../../src/client/client-node.ts';
import { Harness, rejectedByCode } from './harness.ts';

/**
 * CORS and API keys as a browser meets them, sent from Node with the Origin a page would have: preflights,
 * the headers of allowed replies and errors, keys on every route (Bearer, and HTTP Basic on the pages a
 * person opens in a browser).
 */

const APP = 'http://app.example';
const DEV = 'http://localhost:5173';
const EVIL = 'http://evil.example';
const KEYS = ['sk-one', 'sk-two:with:colons'];
const GOOD = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
const EXPOSED = ['x-request-id', 'x-cocoon-proxy', 'x-cocoon-trust-tier', 'x-cocoon-model', 'retry-after'];

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: { error?: { message: string; type: string; param: string | null; code: string | null } } | null;
}

async function call(
  url: string,
  o: { method?: string; origin?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...(o.origin ? { origin: o.origin } : {}), ...o.headers };
  let body: string | undefined;
  if (o.body !== undefined) {
    body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(url, { method: o.method ?? (body === undefined ? 'GET' : 'POST'), headers, body });
  const text = await res.text();
  let json: Reply['json'] = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, text, json };
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const list = (h: string | null) => (h ?? '').split(',').map((s) => s.trim().toLowerCase());

function assertCors(r: Reply, origin: string): void {
  assert.equal(r.headers.get('access-control-allow-origin'), origin, `${r.status} ${r.text}`);
  assert.ok(list(r.headers.get('vary')).includes('origin'), `Vary: ${r.headers.get('vary')}`);
  assert.equal(r.headers.get('access-control-allow-credentials'), null, 'no credentials');
}

function assertNoCors(r: Reply): void {
  assert.equal(r.headers.get('access-control-allow-origin'), null, `${r.status} ${r.text}`);
}

function assertError(r: Reply, status: number, code: string): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json?.error?.code, code, r.text);
  assert.equal(typeof r.json?.error?.message, 'string');
}

describe('CORS and API keys', () => {
  const h = new Harness();
  /** Allows two web origins; no keys. */
  let open: ClientNode;
  /** Allows one web origin and needs a key. */
  let keyed: ClientNode;

  before(async () => {
    const proxy = await h.proxy();
    await h.worker(proxy, { backend: { tokenDelayMs: 0 } });
    open = await h.client(proxy, { allowedOrigins: [APP, DEV] });
    keyed = await h.client(proxy, { allowedOrigins: [APP], apiKeys: KEYS });
  });
  after(() => h.stop());

  describe('preflight', () => {
    test('an allowed origin gets 204 with the methods, headers and max-age it may use', async () => {
      const r = await call(`${open.baseUrl}/chat/completions`, {
        method: 'OPTIONS',
        origin: APP,
        headers: {
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type, x-stainless-lang',
        },
      });
      assert.equal(r.status, 204);
      assert.equal(r.text, '');
      assertCors(r, APP);
      assert.ok(list(r.headers.get('access-control-allow-methods')).includes('post'));
      const allowed = list(r.headers.get('access-control-allow-headers'));
      for (const h of ['authorization', 'content-type', 'x-stainless-lang'])
        assert.ok(allowed.includes(h), h);
      assert.equal(r.headers.get('access-control-max-age'), '600');
      assert.equal(r.headers.get('access-control-allow-private-network'), null, 'only when asked');
    });

    test('GET routes name GET; a second allowed origin is echoed, not the first', async () => {
      const r = await call(`${open.baseUrl}/models`, {
        method: 'OPTIONS',
        origin: DEV,
        headers: { 'access-control-request-method': 'GET' },
      });
      assert.equal(r.status, 204);
      assertCors(r, DEV);
      assert.ok(list(r.headers.get('access-control-allow-methods')).includes('get'));
    });

    test('Private Network Access: allowed when the browser asks for it', async () => {
      const r = await call(`${open.baseUrl}/chat/completions`, {
        method: 'OPTIONS',
        origin: APP,
        headers: {
          'access-control-request-method': 'POST',
          'access-control-request-private-network': 'true',
        },
      });
      assert.equal(r.status, 204);
      assert.equal(r.headers.get('access-control-allow-private-network'), 'true');
    });

    test('a foreign origin, and look-alikes of an allowed one, get 403 and no CORS headers', async () => {
      for (const origin of [
        EVIL,
        'null',
        'http://app.example.evil.example',
        'https://app.example',
        `${APP}:8080`,
      ]) {
        const r = await call(`${open.baseUrl}/chat/completions`, {
          method: 'OPTIONS',
          origin,
          headers: { 'access-control-request-method': 'POST' },
        });
        assertError(r, 403, 'origin_not_allowed');
        assertNoCors(r);
        assert.equal(r.headers.get('access-control-allow-methods'), null);
      }
    });

    test('needs no API key (browsers never send one on a preflight)', async () => {
      const r = await call(`${keyed.baseUrl}/chat/completions`, {
        method: 'OPTIONS',
        origin: APP,
        headers: {
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type',
        },
      });
      assert.equal(r.status, 204, r.text);
      assertCors(r, APP);
      assert.ok(list(r.headers.get('access-control-allow-headers')).includes('authorization'));
    });
  });

  describe('replies to an allowed origin', () => {
    test('a completion: the origin echoed, Vary: Origin, Cocoon headers exposed', async () => {
      const r = await call(`${open.baseUrl}/chat/completions`, { origin: APP, body: GOOD });
      assert.equal(r.status, 200, r.text);
      assertCors(r, APP);
      const exposed = list(r.headers.get('access-control-expose-headers'));
      for (const h of EXPOSED) assert.ok(exposed.includes(h), `${h} exposed`);
      assert.match(r.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    });

    test('a streamed completion carries them too', async () => {
      const res = await fetch(`${open.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { origin: APP, 'content-type': 'application/json' },
        body: JSON.stringify({ ...GOOD, stream: true }),
      });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      assert.equal(res.headers.get('access-control-allow-origin'), APP);
      assert.ok(list(res.headers.get('vary')).includes('origin'));
      assert.match(text, /data: \[DONE\]/);
    });

    test('models, by list and by id', async () => {
      for (const path of ['/models', '/models/cocoon-tiny']) {
        const r = await call(`${open.baseUrl}${path}`, { origin: DEV });
        assert.equal(r.status, 200, r.text);
        assertCors(r, DEV);
      }
    });

    test('the stats pages and metrics it may call (its preflight said so) are readable too', async () => {
      for (const path of ['/jsonstats', '/metrics', '/stats']) {
        const pre = await call(`${open.url}${path}`, {
          method: 'OPTIONS',
          origin: APP,
          headers: { 'access-control-request-method': 'GET' },
        });
        assert.equal(pre.status, 204);
        assertCors(pre, APP);
        const r = await call(`${open.url}${path}`, { origin: APP });
        assert.equal(r.status, 200, `${path}: ${r.text.slice(0, 200)}`);
        assert.equal(r.headers.get('access-control-allow-origin'), APP, `${path} carries CORS`);
      }
    });

    test('errors carry CORS, so the page can read what went wrong', async () => {
      const chat = `${open.baseUrl}/chat/completions`;
      const cases: [Promise<Reply>, number, string][] = [
        [call(chat, { origin: APP, body: '{"model":' }), 400, 'invalid_json'],
        [call(chat, { origin: APP, body: { ...GOOD, max_tokens: 0 } }), 400, 'invalid_value'],
        [call(chat, { origin: APP, body: { ...GOOD, model: 'no-such-model' } }), 404, 'model_not_found'],
        [call(`${open.baseUrl}/models/no-such-model`, { origin: APP }), 404, 'model_not_found'],
        [call(`${open.baseUrl}/embeddings`, { origin: APP, body: GOOD }), 404, 'unknown_url'],
        [call(chat, { origin: APP }), 405, 'method_not_allowed'],
        [
          call(chat, { origin: APP, body: GOOD, headers: { 'content-type': 'text/plain' } }),
          415,
          'unsupported_media_type',
        ],
        [call(`${keyed.baseUrl}/chat/completions`, { origin: APP, body: GOOD }), 401, 'invalid_api_key'],
      ];
      for (const [reply, status, code] of cases) {
        const r = await reply;
        assertError(r, status, code);
        assertCors(r, APP);
      }
    });

    test('a foreign origin is refused on every route, with no CORS headers', async () => {
      for (const [path, method] of [
        ['/v1/chat/completions', 'POST'],
        ['/v1/models', 'GET'],
        ['/jsonstats', 'GET'],
        ['/metrics', 'GET'],
        ['/dashboard', 'GET'],
      ] as const) {
        const r = await call(`${open.url}${path}`, {
          method,
          origin: EVIL,
          ...(method === 'POST' ? { body: GOOD } : {}),
        });
        assertError(r, 403, 'origin_not_allowed');
        assertNoCors(r);
      }
    });
  });

  describe('API keys', () => {
    const pages = ['/dashboard', '/stats', '/jsonstats', '/metrics'];
    const api: [string, string][] = [
      ['/v1/models', 'GET'],
      ['/v1/models/cocoon-tiny', 'GET'],
      ['/v1/chat/completions', 'POST'],
      ['/v1/completions', 'POST'],
    ];
    const bodyFor = (path: string) =>
      path === '/v1/completions' ? { model: 'cocoon-tiny', prompt: 'hi', max_tokens: 2 } : GOOD;
    const send = (path: string, method: string, authorization?: string, origin?: string) =>
      call(`${keyed.url}${path}`, {
        method,
        ...(origin ? { origin } : {}),
        ...(authorization ? { headers: { authorization } } : {}),
        ...(method === 'POST' ? { body: bodyFor(path) } : {}),
      });

    test('with CORS: the request itself needs the key, and its 401 is readable by the page', async () => {
      const without = await send('/v1/chat/completions', 'POST', undefined, APP);
      assertError(without, 401, 'invalid_api_key');
      assertCors(without, APP);
      assert.match(without.headers.get('www-authenticate') ?? '', /^Bearer /);
      const withKey = await send('/v1/chat/completions', 'POST', 'Bearer sk-one', APP);
      assert.equal(withKey.status, 200, withKey.text);
      assertCors(withKey, APP);
    });

    test('HTTP Basic (the key as password) opens the pages a browser shows', async () => {
      for (const path of pages) {
        for (const auth of [basic('anyone', 'sk-one'), basic('', 'sk-one'), basic('x', KEYS[1]!)]) {
          const r = await send(path, 'GET', auth);
          assert.equal(r.status, 200, `${path} ${auth}: ${r.text.slice(0, 200)}`);
        }
        const bearer = await send(path, 'GET', 'Bearer sk-two:with:colons');
        assert.equal(bearer.status, 200, `${path} with Bearer`);
      }
    });

    test('HTTP Basic does not open the API', async () => {
      for (const [path, method] of api) {
        const r = await send(path, method, basic('anyone', 'sk-one'));
        assertError(r, 401, 'invalid_api_key');
        assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm=/, path);
      }
    });

    test('every 401 says how to authenticate: Basic on the pages, Bearer on the API', async () => {
      for (const path of pages) {
        const r = await send(path, 'GET');
        assertError(r, 401, 'invalid_api_key');
        assert.match(r.headers.get('www-authenticate') ?? '', /^Basic realm="Cocoon"/, path);
      }
      for (const [path, method] of api) {
        const r = await send(path, method);
        assertError(r, 401, 'invalid_api_key');
        assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="Cocoon"/, path);
      }
    });

    test('the key is checked on every route: near misses are refused, both keys accepted', async () => {
      const wrong = [
        'Bearer sk-wrong',
        'Bearer sk-on',
        'Bearer sk-one2',
        'Bearer SK-ONE',
        'Bearer ',
        'Bearer sk-two',
        'sk-one',
        'Token sk-one',
        basic('sk-one', ''),
        'Basic bm8tY29sb24=', // "no-colon"
      ];
      const routes: [string, string][] = [...api, ...pages.map((p): [string, string] => [p, 'GET'])];
      for (const [path, method] of routes) {
        for (const auth of wrong) {
          const r = await send(path, method, auth);
          assertError(r, 401, 'invalid_api_key');
          assert.ok(r.headers.get('www-authenticate'), `${path} ${auth}: WWW-Authenticate`);
        }
        for (const key of KEYS) {
          const r = await send(path, method, `Bearer ${key}`);
          assert.equal(r.status, 200, `${path} with ${key}: ${r.text.slice(0, 200)}`);
        }
      }
    });

    test('the scheme is case-insensitive (RFC 9110 §11.1): bearer, BEARER, basic', async () => {
      for (const auth of ['bearer sk-one', 'BEARER sk-one']) {
        const r = await send('/v1/models', 'GET', auth);
        assert.equal(r.status, 200, `${auth}: ${r.text}`);
      }
      const r = await send('/jsonstats', 'GET', basic('x', 'sk-one').replace('Basic', 'basic'));
      assert.equal(r.status, 200, `basic: ${r.text.slice(0, 200)}`);
    });

    test('the key is checked before the body: a keyless text/plain POST is a 401, not a 415', async () => {
      const r = await call(`${keyed.baseUrl}/chat/completions`, {
        body: 'x',
        headers: { 'content-type': 'text/plain' },
      });
      assertError(r, 401, 'invalid_api_key');
    });

    test('refused keys are counted in /metrics', async () => {
      const r = await send('/metrics', 'GET', 'Bearer sk-one');
      const counted = rejectedByCode(r.text).get('invalid_api_key') ?? 0;
      assert.ok(counted >= 50, `${counted} invalid_api_key refusals counted`);
    });
  });
});
