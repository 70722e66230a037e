import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ClientNode } from '../../src/client/client-node.ts';
import { Harness, post, rejectedByCode } from './harness.ts';
import { type RawResponse, rawRequest } from './raw-http.ts';

/**
 * Hostile requests against a real client (free network), one table row each: the request exactly as sent
 * on the socket, and the status, OpenAI error code and `param` it must get. Rows run in batches; after
 * each batch a valid request must still be served. The refusals are then found in /metrics.
 */

const MAX_BODY = 64 * 1024;
const ALLOWED_ORIGIN = 'http://app.example';

interface Case {
  name: string;
  /** POST unless told. */
  method?: string;
  /** `/v1/chat/completions` unless told. */
  path?: string;
  version?: string;
  /** `127.0.0.1:<port>` unless told; null: none. */
  host?: string | null;
  /** `application/json` for a request with a body unless told; null: none. */
  type?: string | null;
  headers?: [string, string][];
  /** Raw bytes, text, or a value sent as JSON. */
  body?: Buffer | string | object;
  status: number;
  /** The error's `code` (any 4xx row must name one). */
  code?: string;
  /** The error's `param`, where the refusal names a field. */
  param?: string | null;
}

const GOOD_CHAT = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
const GOOD_COMPLETION = { model: 'cocoon-tiny', prompt: 'hi', max_tokens: 2 };
const chat = (extra: Record<string, unknown> = {}) => ({ ...GOOD_CHAT, ...extra });
const completion = (extra: Record<string, unknown> = {}) => ({ ...GOOD_COMPLETION, ...extra });
/** A chat body whose one message carries `content`. */
const say = (content: unknown, role = 'user') => chat({ messages: [{ role, content }] });
const COMPLETIONS = '/v1/completions';

/** `{"model":…,"messages":…,"x":` + `bytes` + `}`: raw bytes in the value of a field. */
function withRawContent(bytes: number[]): Buffer {
  const head = Buffer.from('{"model":"cocoon-tiny","max_tokens":2,"messages":[{"role":"user","content":"a');
  return Buffer.concat([head, Buffer.from(bytes), Buffer.from('b"}]}')]);
}

/** Arrays nested `levels` deep. */
const nested = (levels: number, inner = '1') => '['.repeat(levels) + inner + ']'.repeat(levels);
/** A chat body with `value` (JSON text) as the unknown field `x`. */
const withX = (value: string) =>
  `{"model":"cocoon-tiny","messages":[{"role":"user","content":"hi"}],"x":${value}}`;
/** A chat body whose message content is `value` (JSON text). */
const withContent = (value: string) =>
  `{"model":"cocoon-tiny","messages":[{"role":"user","content":${value}}]}`;

/** The messages of a chat body with one message carrying `content`. */
const saying = (content: unknown, role = 'user') => ({ messages: [{ role, content }] });
/** The messages of a chat body whose assistant turn made `toolCalls`. */
const calling = (toolCalls: unknown) => ({
  messages: [
    { role: 'user', content: 'hi' },
    { role: 'assistant', content: null, tool_calls: toolCalls },
  ],
});
const MISSING = 'missing_required_parameter';
const TYPE = 'invalid_type';
const VALUE = 'invalid_value';
/** A chat body with `extra` fields (undefined removes one), refused with 400 naming `param`. */
const badChat = (name: string, extra: Record<string, unknown>, code: string, param: string): Case => ({
  name,
  body: chat(extra),
  status: 400,
  code,
  param,
});
const badCompletion = (name: string, extra: Record<string, unknown>, code: string, param: string): Case => ({
  name,
  path: COMPLETIONS,
  body: completion(extra),
  status: 400,
  code,
  param,
});

const tool = (name = 'get_weather') => ({
  type: 'function',
  function: { name, parameters: { type: 'object', properties: {} } },
});

function batches(port: number): Record<string, Case[]> {
  const self = `127.0.0.1:${port}`;
  return {
    'content types': [
      { name: 'text/plain', type: 'text/plain', body: chat(), status: 415, code: 'unsupported_media_type' },
      {
        name: 'form urlencoded',
        type: 'application/x-www-form-urlencoded',
        body: 'model=cocoon-tiny&messages=hi',
        status: 415,
        code: 'unsupported_media_type',
      },
      {
        name: 'multipart form',
        type: 'multipart/form-data; boundary=x',
        body: '--x\r\nContent-Disposition: form-data; name="model"\r\n\r\ncocoon-tiny\r\n--x--\r\n',
        status: 415,
        code: 'unsupported_media_type',
      },
      { name: 'no Content-Type', type: null, body: chat(), status: 415, code: 'unsupported_media_type' },
      {
        name: 'application/json with charset latin1',
        type: 'application/json; charset=latin1',
        body: chat(),
        status: 415,
        code: 'unsupported_media_type',
      },
      {
        name: 'application/json with charset utf-16',
        type: 'application/json; charset=utf-16',
        body: chat(),
        status: 415,
        code: 'unsupported_media_type',
      },
      { name: 'text/json', type: 'text/json', body: chat(), status: 415, code: 'unsupported_media_type' },
      {
        name: 'application/jsonx',
        type: 'application/jsonx',
        body: chat(),
        status: 415,
        code: 'unsupported_media_type',
      },
      {
        name: 'text/plain on /v1/completions',
        path: COMPLETIONS,
        type: 'text/plain;charset=UTF-8',
        body: completion(),
        status: 415,
        code: 'unsupported_media_type',
      },
      {
        name: 'text/plain is refused before a huge body is read',
        type: 'text/plain',
        headers: [['Content-Length', String(100 * MAX_BODY)]],
        status: 415,
        code: 'unsupported_media_type',
      },
      {
        name: 'application/json; charset=utf-8 is served',
        type: 'application/json; charset=utf-8',
        body: chat(),
        status: 200,
      },
      {
        name: 'APPLICATION/JSON;CHARSET="UTF-8" is served',
        type: 'APPLICATION/JSON;CHARSET="UTF-8"',
        body: chat(),
        status: 200,
      },
    ],

    Host: [
      {
        name: 'no Host (HTTP/1.0)',
        version: 'HTTP/1.0',
        host: null,
        body: chat(),
        status: 400,
        code: 'invalid_host_header',
      },
      {
        name: 'no Host (HTTP/1.1)',
        host: null,
        body: chat(),
        status: 400,
        code: 'invalid_host_header',
      },
      {
        name: 'two Host headers, both ours',
        headers: [['Host', self]],
        body: chat(),
        status: 400,
        code: 'invalid_host_header',
      },
      {
        name: 'two Host headers, ours and a foreign one',
        headers: [['Host', 'evil.example']],
        body: chat(),
        status: 400,
        code: 'invalid_host_header',
      },
      {
        name: 'two Host headers on GET /jsonstats',
        method: 'GET',
        path: '/jsonstats',
        headers: [['host', self]],
        status: 400,
        code: 'invalid_host_header',
      },
      { name: 'empty Host', host: '', body: chat(), status: 400, code: 'invalid_host_header' },
      {
        name: 'Host with userinfo',
        host: `evil.example@${self}`,
        body: chat(),
        status: 400,
        code: 'invalid_host_header',
      },
      {
        name: 'Host with a space',
        host: 'evil example',
        body: chat(),
        status: 400,
        code: 'invalid_host_header',
      },
      {
        name: 'unclosed IPv6 literal',
        host: `[::1:${port}`,
        body: chat(),
        status: 400,
        code: 'invalid_host_header',
      },
      { name: 'foreign name', host: 'evil.example', body: chat(), status: 403, code: 'host_not_allowed' },
      {
        name: 'foreign name with our port',
        host: `evil.example:${port}`,
        body: chat(),
        status: 403,
        code: 'host_not_allowed',
      },
      {
        name: 'rebinding name',
        host: `rebind.attacker.test:${port}`,
        method: 'GET',
        path: '/jsonstats',
        status: 403,
        code: 'host_not_allowed',
      },
      {
        name: 'name that resolves to 127.0.0.1 (nip.io style)',
        host: `127.0.0.1.nip.io:${port}`,
        body: chat(),
        status: 403,
        code: 'host_not_allowed',
      },
      {
        name: 'localhost look-alike',
        host: `localhost.evil.example:${port}`,
        body: chat(),
        status: 403,
        code: 'host_not_allowed',
      },
      {
        name: 'name ending in localhost',
        host: `evillocalhost:${port}`,
        body: chat(),
        status: 403,
        code: 'host_not_allowed',
      },
      {
        name: 'decimal IPv4 (not an IP literal)',
        host: `2130706433:${port}`,
        body: chat(),
        status: 403,
        code: 'host_not_allowed',
      },
      {
        name: 'hex IPv4 (not an IP literal)',
        host: `0x7f000001:${port}`,
        body: chat(),
        status: 403,
        code: 'host_not_allowed',
      },
      {
        name: 'an IPv4 that is not ours',
        host: `10.0.0.1:${port}`,
        body: chat(),
        status: 403,
        code: 'host_not_allowed',
      },
      {
        name: 'an IPv6 literal that is not ours',
        host: `[2001:db8::1]:${port}`,
        body: chat(),
        status: 403,
        code: 'host_not_allowed',
      },
      { name: 'IPv6 loopback literal', host: `[::1]:${port}`, body: chat(), status: 200 },
      { name: 'localhost', host: `localhost:${port}`, body: chat(), status: 200 },
      { name: 'LOCALHOST in capitals', host: `LOCALHOST:${port}`, body: chat(), status: 200 },
      { name: 'a name under .localhost', host: `app.localhost:${port}`, body: chat(), status: 200 },
      { name: 'another loopback address', host: `127.0.0.2:${port}`, body: chat(), status: 200 },
      { name: 'HTTP/1.0 with Host', version: 'HTTP/1.0', body: chat(), status: 200 },
    ],

    'Origin and Sec-Fetch-Site': [
      {
        name: 'foreign Origin',
        headers: [['Origin', 'http://evil.example']],
        body: chat(),
        status: 403,
        code: 'origin_not_allowed',
      },
      {
        name: 'Origin null',
        headers: [['Origin', 'null']],
        body: chat(),
        status: 403,
        code: 'origin_not_allowed',
      },
      {
        name: 'Origin of another port on our address',
        headers: [['Origin', `http://127.0.0.1:${port + 1}`]],
        body: chat(),
        status: 403,
        code: 'origin_not_allowed',
      },
      {
        name: 'Origin localhost while addressed by IP',
        headers: [['Origin', `http://localhost:${port}`]],
        body: chat(),
        status: 403,
        code: 'origin_not_allowed',
      },
      {
        name: 'foreign Origin, text/plain (a "simple" request)',
        type: 'text/plain',
        headers: [['Origin', 'http://evil.example']],
        body: chat(),
        status: 403,
        code: 'origin_not_allowed',
      },
      {
        name: 'foreign Origin on GET /jsonstats',
        method: 'GET',
        path: '/jsonstats',
        headers: [['Origin', 'http://evil.example']],
        status: 403,
        code: 'origin_not_allowed',
      },
      {
        name: 'foreign Origin on GET /metrics',
        method: 'GET',
        path: '/metrics',
        headers: [['Origin', 'http://evil.example']],
        status: 403,
        code: 'origin_not_allowed',
      },
      {
        name: 'foreign Origin on an unknown route',
        path: '/v1/embeddings',
        headers: [['Origin', 'http://evil.example']],
        body: chat(),
        status: 403,
        code: 'origin_not_allowed',
      },
      {
        name: 'foreign Origin preflight',
        method: 'OPTIONS',
        headers: [
          ['Origin', 'http://evil.example'],
          ['Access-Control-Request-Method', 'POST'],
          ['Access-Control-Request-Headers', 'content-type'],
        ],
        status: 403,
        code: 'origin_not_allowed',
      },
      {
        name: 'foreign Host and foreign Origin: the Host is refused',
        host: 'evil.example',
        headers: [['Origin', 'http://evil.example']],
        body: chat(),
        status: 403,
        code: 'host_not_allowed',
      },
      {
        name: 'Sec-Fetch-Site cross-site without Origin',
        method: 'GET',
        path: '/jsonstats',
        headers: [
          ['Sec-Fetch-Site', 'cross-site'],
          ['Sec-Fetch-Mode', 'no-cors'],
        ],
        status: 403,
        code: 'origin_not_allowed',
      },
      {
        name: 'Sec-Fetch-Site same-site without Origin',
        method: 'GET',
        path: '/v1/models',
        headers: [
          ['Sec-Fetch-Site', 'same-site'],
          ['Sec-Fetch-Mode', 'no-cors'],
        ],
        status: 403,
        code: 'origin_not_allowed',
      },
      {
        name: 'Sec-Fetch-Site cross-site POST without Origin',
        headers: [['Sec-Fetch-Site', 'cross-site']],
        body: chat(),
        status: 403,
        code: 'origin_not_allowed',
      },
      { name: 'our own Origin', headers: [['Origin', `http://${self}`]], body: chat(), status: 200 },
      { name: 'an allowed Origin', headers: [['Origin', ALLOWED_ORIGIN]], body: chat(), status: 200 },
      {
        name: 'Sec-Fetch-Site same-origin',
        headers: [['Sec-Fetch-Site', 'same-origin']],
        body: chat(),
        status: 200,
      },
      {
        name: 'Sec-Fetch-Site none (typed in the address bar)',
        headers: [['Sec-Fetch-Site', 'none']],
        body: chat(),
        status: 200,
      },
      {
        name: 'a cross-site top-level navigation (a link) to /v1/models',
        method: 'GET',
        path: '/v1/models',
        headers: [
          ['Sec-Fetch-Site', 'cross-site'],
          ['Sec-Fetch-Mode', 'navigate'],
        ],
        status: 200,
      },
    ],

    'methods and routes': [
      { name: 'GET on chat completions', method: 'GET', status: 405, code: 'method_not_allowed' },
      {
        name: 'PUT on chat completions',
        method: 'PUT',
        body: chat(),
        status: 405,
        code: 'method_not_allowed',
      },
      { name: 'DELETE on chat completions', method: 'DELETE', status: 405, code: 'method_not_allowed' },
      {
        name: 'PATCH on completions',
        method: 'PATCH',
        path: COMPLETIONS,
        body: completion(),
        status: 405,
        code: 'method_not_allowed',
      },
      {
        name: 'POST on /v1/models',
        path: '/v1/models',
        body: chat(),
        status: 405,
        code: 'method_not_allowed',
      },
      {
        name: 'DELETE on /v1/models/{id}',
        method: 'DELETE',
        path: '/v1/models/cocoon-tiny',
        status: 405,
        code: 'method_not_allowed',
      },
      { name: 'POST on /jsonstats', path: '/jsonstats', body: '{}', status: 405, code: 'method_not_allowed' },
      { name: 'POST on /metrics', path: '/metrics', body: '{}', status: 405, code: 'method_not_allowed' },
      {
        name: 'TRACE on /dashboard',
        method: 'TRACE',
        path: '/dashboard',
        status: 405,
        code: 'method_not_allowed',
      },
      {
        name: 'unknown route /v1/embeddings',
        path: '/v1/embeddings',
        body: chat(),
        status: 404,
        code: 'unknown_url',
      },
      {
        name: 'unknown route /v1/responses',
        path: '/v1/responses',
        body: chat(),
        status: 404,
        code: 'unknown_url',
      },
      {
        name: 'trailing slash',
        path: '/v1/chat/completions/',
        body: chat(),
        status: 404,
        code: 'unknown_url',
      },
      { name: 'capitals', path: '/V1/CHAT/COMPLETIONS', body: chat(), status: 404, code: 'unknown_url' },
      { name: 'double slash', path: '//v1/chat/completions', body: chat(), status: 404, code: 'unknown_url' },
      {
        name: 'dot segments',
        path: '/v1/x/../chat/completions',
        body: chat(),
        status: 404,
        code: 'unknown_url',
      },
      {
        name: 'encoded slash',
        path: '/v1/chat%2Fcompletions',
        body: chat(),
        status: 404,
        code: 'unknown_url',
      },
      { name: 'root', method: 'GET', path: '/', status: 404, code: 'unknown_url' },
      { name: '/v1', method: 'GET', path: '/v1', status: 404, code: 'unknown_url' },
      {
        name: 'a query string is ignored',
        path: '/v1/chat/completions?api-version=1',
        body: chat(),
        status: 200,
      },
    ],

    'URL encoding of /v1/models/{id}': [
      ...['%', '%E0%A4%A', '%FF%FE', '%C0%AF', '%ED%A0%80', '%zz', 'cocoon-%'].map(
        (id): Case => ({
          name: `malformed percent-encoding ${id}`,
          method: 'GET',
          path: `/v1/models/${id}`,
          status: 400,
          code: 'invalid_url',
          param: 'model',
        }),
      ),
      {
        name: 'model id of 301 characters',
        method: 'GET',
        path: `/v1/models/${'m'.repeat(301)}`,
        status: 400,
        code: 'invalid_value',
        param: 'model',
      },
      {
        name: 'encoded dot segments name no file',
        method: 'GET',
        path: '/v1/models/..%2F..%2Fjsonstats',
        status: 404,
        code: 'model_not_found',
      },
      {
        name: 'an encoded NUL',
        method: 'GET',
        path: '/v1/models/cocoon-tiny%00',
        status: 404,
        code: 'model_not_found',
      },
      { name: 'percent-encoded model id', method: 'GET', path: '/v1/models/%63ocoon-tiny', status: 200 },
    ],

    'body size and UTF-8': [
      {
        name: 'body over the limit',
        body: say('x'.repeat(MAX_BODY + 10)),
        status: 413,
        code: 'request_too_large',
      },
      {
        name: 'declared Content-Length over the limit, body never sent',
        headers: [['Content-Length', String(1024 * MAX_BODY)]],
        status: 413,
        code: 'request_too_large',
      },
      {
        name: 'chunked body over the limit',
        headers: [['Transfer-Encoding', 'chunked']],
        body: chunked(JSON.stringify(say('x'.repeat(MAX_BODY + 10)))),
        status: 413,
        code: 'request_too_large',
      },
      {
        name: 'body exactly at the limit is served',
        body: padTo(JSON.stringify(chat()), MAX_BODY),
        status: 200,
      },
      {
        name: 'chunked body is served',
        headers: [['Transfer-Encoding', 'chunked']],
        body: chunked(JSON.stringify(chat())),
        status: 200,
      },
      ...(
        [
          ['FF FE', [0xff, 0xfe]],
          ['overlong C0 AF', [0xc0, 0xaf]],
          ['overlong E0 80 AF', [0xe0, 0x80, 0xaf]],
          ['surrogate ED A0 80', [0xed, 0xa0, 0x80]],
          ['truncated E2 82', [0xe2, 0x82]],
          ['lone continuation 80', [0x80]],
          ['above U+10FFFF (F4 90 80 80)', [0xf4, 0x90, 0x80, 0x80]],
          ['five-byte form F8 88 80 80 80', [0xf8, 0x88, 0x80, 0x80, 0x80]],
        ] as const
      ).map(
        ([what, bytes]): Case => ({
          name: `invalid UTF-8: ${what}`,
          body: withRawContent([...bytes]),
          status: 400,
          code: 'invalid_utf8',
        }),
      ),
      {
        name: 'invalid UTF-8 in a field name',
        body: Buffer.concat([
          Buffer.from('{"model":"cocoon-tiny","'),
          Buffer.from([0xff]),
          Buffer.from('":1}'),
        ]),
        status: 400,
        code: 'invalid_utf8',
      },
      {
        name: 'invalid UTF-8 at the very end of a chunked body',
        headers: [['Transfer-Encoding', 'chunked']],
        body: chunked(Buffer.concat([Buffer.from(JSON.stringify(chat())), Buffer.from([0xe2, 0x82])])),
        status: 400,
        code: 'invalid_utf8',
      },
      {
        name: 'a 4-byte character (emoji) is served',
        body: withRawContent([0xf0, 0x9f, 0x98, 0x80]),
        status: 200,
      },
    ],

    'JSON nesting, syntax and top-level type': [
      { name: 'nested 64 levels in total is served', body: withX(nested(63)), status: 200 },
      {
        name: 'nested 65 levels (unknown field)',
        body: withX(nested(64)),
        status: 400,
        code: 'json_too_deep',
      },
      {
        name: 'nested 5000 levels (unknown field)',
        body: withX(nested(5000)),
        status: 400,
        code: 'json_too_deep',
      },
      {
        name: 'nested 65 levels of objects',
        body: withX('{"a":'.repeat(64) + '1' + '}'.repeat(64)),
        status: 400,
        code: 'json_too_deep',
      },
      {
        name: 'nested 65 levels in messages',
        body: withContent(nested(62)),
        status: 400,
        code: 'json_too_deep',
      },
      {
        name: 'nested 5000 levels in messages',
        body: withContent(nested(5000)),
        status: 400,
        code: 'json_too_deep',
      },
      {
        name: 'nested 5000 levels, never closed',
        body: withX('['.repeat(5000)),
        status: 400,
        code: 'json_too_deep',
      },
      { name: 'brackets inside a string do not count', body: say('['.repeat(5000)), status: 200 },
      {
        name: 'escaped quotes before brackets in a string',
        body: say('\\"'.repeat(10) + '{['.repeat(2000)),
        status: 200,
      },
      {
        name: 'truncated JSON',
        body: '{"model": "cocoon-tiny", "messages": [',
        status: 400,
        code: 'invalid_json',
      },
      {
        name: 'trailing comma',
        body: '{"model":"cocoon-tiny","messages":[{"role":"user","content":"hi"}],}',
        status: 400,
        code: 'invalid_json',
      },
      { name: 'single quotes', body: "{'model':'cocoon-tiny'}", status: 400, code: 'invalid_json' },
      { name: 'NaN', body: withX('NaN'), status: 400, code: 'invalid_json' },
      { name: 'a comment', body: `/* hi */${JSON.stringify(chat())}`, status: 400, code: 'invalid_json' },
      {
        name: 'two JSON values',
        body: `${JSON.stringify(chat())}${JSON.stringify(chat())}`,
        status: 400,
        code: 'invalid_json',
      },
      { name: 'unquoted key', body: '{model:"cocoon-tiny"}', status: 400, code: 'invalid_json' },
      { name: 'empty body', body: '', status: 400, code: 'invalid_json' },
      { name: 'whitespace only', body: ' \r\n\t ', status: 400, code: 'invalid_json' },
      {
        name: 'byte-order mark before the JSON',
        body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(chat()))]),
        status: 400,
        code: 'invalid_json',
      },
      { name: 'array body', body: '[]', status: 400, code: 'invalid_body' },
      { name: 'array of the request', body: [chat()], status: 400, code: 'invalid_body' },
      { name: 'string body', body: '"hello"', status: 400, code: 'invalid_body' },
      { name: 'number body', body: '42', status: 400, code: 'invalid_body' },
      { name: 'null body', body: 'null', status: 400, code: 'invalid_body' },
      { name: 'boolean body', body: 'true', status: 400, code: 'invalid_body' },
      {
        name: 'array body on completions',
        path: COMPLETIONS,
        body: '[1]',
        status: 400,
        code: 'invalid_body',
      },
    ],

    'chat completion fields': [
      badChat('no model', { model: undefined }, MISSING, 'model'),
      badChat('model is a number', { model: 5 }, TYPE, 'model'),
      badChat('empty model', { model: '' }, VALUE, 'model'),
      badChat('model of 301 characters is a 400, not a 502', { model: 'm'.repeat(301) }, VALUE, 'model'),
      {
        name: 'model of 300 characters is looked for',
        body: chat({ model: 'm'.repeat(300) }),
        status: 404,
        code: 'model_not_found',
      },
      badChat('no messages', { messages: undefined }, MISSING, 'messages'),
      badChat('empty messages', { messages: [] }, VALUE, 'messages'),
      badChat('messages is a string', { messages: 'hi' }, TYPE, 'messages'),
      badChat('messages holds a string', { messages: ['hi'] }, TYPE, 'messages[0]'),
      badChat('unknown role', { messages: [{ role: 'wizard', content: 'hi' }] }, VALUE, 'messages[0].role'),
      badChat('message without content', { messages: [{ role: 'user' }] }, MISSING, 'messages[0].content'),
      badChat('user content null', saying(null), VALUE, 'messages[0].content'),
      badChat('content is a number', saying(5), TYPE, 'messages[0].content'),
      badChat('tool message without tool_call_id', saying('42', 'tool'), MISSING, 'messages[0].tool_call_id'),
      badChat(
        'content part of unknown type',
        saying([{ type: 'video', video: 'x' }]),
        VALUE,
        'messages[0].content[0].type',
      ),
      badChat('content part without type', saying([{ text: 'hi' }]), MISSING, 'messages[0].content[0].type'),
      badChat('text part without text', saying([{ type: 'text' }]), MISSING, 'messages[0].content[0].text'),
      badChat(
        'image_url part without image_url',
        saying([{ type: 'image_url' }]),
        MISSING,
        'messages[0].content[0].image_url',
      ),
      badChat(
        'image_url is a string, not an object',
        saying([{ type: 'image_url', image_url: 'http://x/y.png' }]),
        TYPE,
        'messages[0].content[0].image_url',
      ),
      badChat(
        'image_url without url',
        saying([{ type: 'image_url', image_url: {} }]),
        MISSING,
        'messages[0].content[0].image_url.url',
      ),
      badChat(
        'image_url detail unknown',
        saying([{ type: 'image_url', image_url: { url: 'data:,', detail: 'max' } }]),
        VALUE,
        'messages[0].content[0].image_url.detail',
      ),
      badChat(
        'refusal part in a user message',
        saying([{ type: 'refusal', refusal: 'no' }]),
        VALUE,
        'messages[0].content[0].type',
      ),
      badChat('assistant tool_calls is not an array', calling({}), TYPE, 'messages[1].tool_calls'),
      badChat(
        'assistant tool call without function',
        calling([{ id: 'c1', type: 'function' }]),
        MISSING,
        'messages[1].tool_calls[0].function',
      ),
      badChat(
        'assistant tool call of unknown type',
        calling([{ id: 'c1', type: 'shell' }]),
        VALUE,
        'messages[1].tool_calls[0].type',
      ),
      badChat(
        'assistant tool call arguments not a string',
        calling([{ id: 'c1', type: 'function', function: { name: 'f', arguments: {} } }]),
        TYPE,
        'messages[1].tool_calls[0].function.arguments',
      ),
      badChat('max_tokens 0', { max_tokens: 0 }, VALUE, 'max_tokens'),
      badChat('max_tokens -1', { max_tokens: -1 }, VALUE, 'max_tokens'),
      badChat('max_tokens 1.5', { max_tokens: 1.5 }, TYPE, 'max_tokens'),
      badChat('max_tokens as a string', { max_tokens: '5' }, TYPE, 'max_tokens'),
      badChat('max_tokens above the cap', { max_tokens: 1_000_001 }, VALUE, 'max_tokens'),
      {
        name: 'max_tokens 1e400 (Infinity)',
        body: withX('0').replace('"x":0', '"max_tokens":1e400'),
        status: 400,
        param: 'max_tokens',
      },
      badChat('max_completion_tokens 0', { max_completion_tokens: 0 }, VALUE, 'max_completion_tokens'),
      badChat('temperature 3', { temperature: 3 }, VALUE, 'temperature'),
      badChat('temperature -0.1', { temperature: -0.1 }, VALUE, 'temperature'),
      badChat('temperature as a string', { temperature: 'hot' }, TYPE, 'temperature'),
      {
        name: 'temperature 1e400 (Infinity)',
        body: withX('0').replace('"x":0', '"temperature":1e400'),
        status: 400,
        param: 'temperature',
      },
      badChat('top_p 1.5', { top_p: 1.5 }, VALUE, 'top_p'),
      badChat('presence_penalty 3', { presence_penalty: 3 }, VALUE, 'presence_penalty'),
      badChat('frequency_penalty -3', { frequency_penalty: -3 }, VALUE, 'frequency_penalty'),
      badChat('n 0', { n: 0 }, VALUE, 'n'),
      badChat('n too big', { n: 9 }, VALUE, 'n'),
      badChat('n 1e9', { n: 1e9 }, VALUE, 'n'),
      badChat('seed 1.5', { seed: 1.5 }, TYPE, 'seed'),
      badChat('stop with too many sequences', { stop: ['a', 'b', 'c', 'd', 'e'] }, VALUE, 'stop'),
      badChat('stop is a number', { stop: 5 }, TYPE, 'stop'),
      badChat('stream as a string', { stream: 'yes' }, TYPE, 'stream'),
      badChat(
        'stream_options without stream',
        { stream_options: { include_usage: true } },
        VALUE,
        'stream_options',
      ),
      badChat('tools is an object', { tools: {} }, TYPE, 'tools'),
      badChat('tool without function', { tools: [{ type: 'function' }] }, MISSING, 'tools[0].function'),
      badChat('tool of unknown type', { tools: [{ type: 'retrieval' }] }, VALUE, 'tools[0].type'),
      badChat('tool name with a space', { tools: [tool('get weather')] }, VALUE, 'tools[0].function.name'),
      badChat(
        'tool parameters not an object',
        { tools: [{ type: 'function', function: { name: 'f', parameters: 'x' } }] },
        TYPE,
        'tools[0].function.parameters',
      ),
      badChat('129 tools', { tools: Array.from({ length: 129 }, (_, i) => tool(`f${i}`)) }, VALUE, 'tools'),
      badChat('tool_choice without tools', { tool_choice: 'auto' }, VALUE, 'tool_choice'),
      {
        name: 'tool_choice unknown mode',
        body: chat({ tools: [tool()], tool_choice: 'sometimes' }),
        status: 400,
        param: 'tool_choice',
      },
      badChat(
        'tool_choice names a function not among tools',
        { tools: [tool()], tool_choice: { type: 'function', function: { name: 'nope' } } },
        VALUE,
        'tool_choice.function.name',
      ),
      badChat(
        'parallel_tool_calls without tools',
        { parallel_tool_calls: true },
        VALUE,
        'parallel_tool_calls',
      ),
      badChat(
        'parallel_tool_calls as a string',
        { tools: [tool()], parallel_tool_calls: 'yes' },
        TYPE,
        'parallel_tool_calls',
      ),
      badChat(
        'response_format of unknown type',
        { response_format: { type: 'xml' } },
        VALUE,
        'response_format.type',
      ),
      badChat(
        'response_format json_schema without json_schema',
        { response_format: { type: 'json_schema' } },
        MISSING,
        'response_format.json_schema',
      ),
      badChat('response_format is a string', { response_format: 'json' }, TYPE, 'response_format'),
      badChat('logprobs as a string', { logprobs: 'yes' }, TYPE, 'logprobs'),
      badChat('top_logprobs 21', { logprobs: true, top_logprobs: 21 }, VALUE, 'top_logprobs'),
      badChat('top_logprobs without logprobs', { top_logprobs: 2 }, VALUE, 'top_logprobs'),
      badChat('logit_bias is an array', { logit_bias: [1] }, TYPE, 'logit_bias'),
      badChat('logit_bias key not a token id', { logit_bias: { abc: 1 } }, VALUE, 'logit_bias'),
      badChat('logit_bias value 101', { logit_bias: { '50256': 101 } }, VALUE, 'logit_bias.50256'),
      badChat('user is a number', { user: 5 }, TYPE, 'user'),
      badChat('max_coefficient -1', { max_coefficient: -1 }, VALUE, 'max_coefficient'),
      badChat('min_trust_tier unknown', { min_trust_tier: 'gold' }, VALUE, 'min_trust_tier'),
      badChat('timeout 0', { timeout: 0 }, VALUE, 'timeout'),
      {
        name: 'valid optional fields are served',
        body: chat({ user: 'alice', seed: 7, temperature: 0.5, stop: ['\n'], n: 1, stream_options: null }),
        status: 200,
      },
    ],

    'completion fields': [
      badCompletion('no prompt', { prompt: undefined }, MISSING, 'prompt'),
      badCompletion('empty prompt', { prompt: '' }, VALUE, 'prompt'),
      badCompletion('prompt is an object', { prompt: {} }, TYPE, 'prompt'),
      badCompletion('prompt mixes strings and numbers', { prompt: ['a', 1] }, VALUE, 'prompt[1]'),
      badCompletion('negative token id', { prompt: [1, -2] }, VALUE, 'prompt[1]'),
      badCompletion(
        'model of 301 characters is a 400, not a 502',
        { model: 'm'.repeat(301) },
        VALUE,
        'model',
      ),
      badCompletion('max_tokens 0', { max_tokens: 0 }, VALUE, 'max_tokens'),
      badCompletion('echo as a string', { echo: 'yes' }, TYPE, 'echo'),
      badCompletion('best_of 21', { best_of: 21 }, VALUE, 'best_of'),
      badCompletion('best_of below n', { best_of: 1, n: 2 }, VALUE, 'best_of'),
      badCompletion('best_of 2 with stream', { best_of: 2, stream: true }, VALUE, 'best_of'),
      badCompletion('suffix is a number', { suffix: 5 }, TYPE, 'suffix'),
      badCompletion('logprobs 6', { logprobs: 6 }, VALUE, 'logprobs'),
      badCompletion('logprobs true (an integer here)', { logprobs: true }, TYPE, 'logprobs'),
      badCompletion('n too big', { n: 9 }, VALUE, 'n'),
      badCompletion(
        'a batch of prompts asking for too many choices',
        { prompt: ['a', 'b', 'c'], n: 3 },
        VALUE,
        'prompt',
      ),
      badCompletion('stop with too many sequences', { stop: ['a', 'b', 'c', 'd', 'e'] }, VALUE, 'stop'),
      badCompletion(
        'messages instead of prompt',
        { prompt: undefined, messages: GOOD_CHAT.messages },
        MISSING,
        'prompt',
      ),
      { name: 'a valid completion is served', path: COMPLETIONS, body: completion(), status: 200 },
    ],

    'HTTP framing (refused by the parser)': [
      {
        name: 'Content-Length and Transfer-Encoding both (request smuggling)',
        headers: [
          ['Content-Length', '4'],
          ['Transfer-Encoding', 'chunked'],
        ],
        body: chunked(JSON.stringify(chat())),
        status: 400,
        code: 'malformed_request',
      },
      {
        name: 'non-numeric Content-Length',
        headers: [['Content-Length', 'abc']],
        body: '{}',
        status: 400,
        code: 'malformed_request',
      },
      {
        name: 'two different Content-Lengths',
        headers: [
          ['Content-Length', '2'],
          ['Content-Length', '3'],
        ],
        body: '{} ',
        status: 400,
        code: 'malformed_request',
      },
      {
        name: 'headers over 16 KiB',
        method: 'GET',
        path: '/v1/models',
        headers: [['X-Big', 'a'.repeat(20_000)]],
        status: 431,
        code: 'headers_too_large',
      },
    ],
  };
}

function chunked(body: string | Buffer): string | Buffer {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n0\r\n\r\n')]);
}

function padTo(json: string, size: number): string {
  return json + ' '.repeat(size - Buffer.byteLength(json));
}

function send(port: number, c: Case): Promise<RawResponse> {
  const method = c.method ?? 'POST';
  const body =
    c.body === undefined
      ? undefined
      : typeof c.body === 'string' || Buffer.isBuffer(c.body)
        ? c.body
        : JSON.stringify(c.body);
  const headers: [string, string][] = [];
  const type = c.type === undefined ? (method === 'POST' ? 'application/json' : null) : c.type;
  if (type !== null) headers.push(['Content-Type', type]);
  headers.push(...(c.headers ?? []));
  return rawRequest(port, {
    method,
    path: c.path ?? '/v1/chat/completions',
    ...(c.version ? { version: c.version } : {}),
    ...(c.host !== undefined ? { host: c.host } : {}),
    headers,
    ...(body !== undefined ? { body } : {}),
  });
}

function check(c: Case, r: RawResponse): void {
  const what = `${c.name}: ${r.status} ${r.text.slice(0, 300)}`;
  assert.equal(r.status, c.status, what);
  if (c.status === 204 || c.method === 'HEAD') return;
  if (c.status < 400) {
    assert.match(r.headers['content-type'] ?? '', /^application\/json/, what);
    return;
  }
  // OpenAI's error shape, exactly: {error: {message, type, param, code}}.
  assert.match(r.headers['content-type'] ?? '', /^application\/json/, what);
  const body = r.json as { error?: Record<string, unknown> } | null;
  assert.ok(body && typeof body.error === 'object' && body.error !== null, what);
  const e = body.error;
  assert.deepEqual(Object.keys(body), ['error'], what);
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type'], what);
  assert.equal(typeof e.message, 'string', what);
  assert.ok((e.message as string).length > 0, what);
  assert.equal(typeof e.type, 'string', what);
  assert.ok(e.param === null || typeof e.param === 'string', what);
  if (c.code !== undefined) assert.equal(e.code, c.code, what);
  else assert.equal(typeof e.code, 'string', what);
  if (c.param !== undefined) assert.equal(e.param, c.param, what);
}

describe('hostile input: each request gets its status and OpenAI error, and the client keeps serving', () => {
  const h = new Harness();
  let client: ClientNode;
  let port = 0;
  // The rows' names, for declaring the tests; the rows themselves are built once the port is known.
  const table = batches(0);
  let live: Record<string, Case[]> | null = null;
  const counted = new Map<string, number>();

  before(async () => {
    const proxy = await h.proxy();
    await h.worker(proxy, { backend: { tokenDelayMs: 0 } });
    client = await h.client(proxy, { maxBodyBytes: MAX_BODY, allowedOrigins: [ALLOWED_ORIGIN] });
    port = Number(new URL(client.url).port);
  });
  after(() => h.stop());

  test('the table has 100 or more cases', () => {
    const n = Object.values(table).reduce((sum, rows) => sum + rows.length, 0);
    assert.ok(n >= 100, `${n} cases`);
  });

  for (const [batch, rows] of Object.entries(table)) {
    describe(batch, () => {
      rows.forEach((_, i) => {
        test(rows[i]!.name, async () => {
          live ??= batches(port);
          const c = live[batch]![i]!;
          check(c, await send(port, c));
          if (c.status >= 400 && c.code && c.code !== 'model_not_found') {
            counted.set(c.code, (counted.get(c.code) ?? 0) + 1);
          }
        });
      });

      test('a valid request is still served', async () => {
        const r = await post(`${client.baseUrl}/chat/completions`, GOOD_CHAT);
        assert.equal(r.status, 200, r.text);
        assert.equal((r.json as unknown as { object: string }).object, 'chat.completion');
      });
    });
  }

  test('a 405 names the methods the route allows (Allow, RFC 9110 §15.5.6)', async () => {
    for (const [method, path, allowed] of [
      ['GET', '/v1/chat/completions', 'POST'],
      ['PUT', '/v1/completions', 'POST'],
      ['POST', '/v1/models', 'GET'],
      ['DELETE', '/jsonstats', 'GET'],
    ] as const) {
      const r = await rawRequest(port, { method, path });
      assert.equal(r.status, 405, `${method} ${path}`);
      const allow = (r.headers.allow ?? '').split(',').map((m) => m.trim());
      assert.ok(allow.includes(allowed), `${method} ${path}: Allow: ${r.headers.allow}`);
    }
  });

  test('every refusal is counted in /metrics by its code', async () => {
    const rejected = rejectedByCode(await (await fetch(`${client.url}/metrics`)).text());
    for (const [code, n] of counted) {
      const got = rejected.get(code);
      assert.ok(got !== undefined, `no rejected series for ${code}`);
      assert.ok(got >= n, `${code}: ${got} counted, ${n} refused`);
    }
    assert.ok(counted.size >= 10, [...counted.keys()].join(', '));
  });
});
