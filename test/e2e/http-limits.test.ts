import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { ClientNode } from '../../src/client/client-node.ts';
import { Harness, post, until } from './harness.ts';
import { closed, encodeRequest, openSocket, ResponseReader } from './raw-http.ts';

/**
 * The API server's time bounds on real sockets, with small limits (headers 1 s, whole request 2 s, idle
 * keep-alive 1 s): a caller trickling bytes or holding a connection open is cut off about then. Bounds
 * are loose for a busy 2-core machine; what matters is seconds, not the minutes Node allows by default.
 */

const LIMITS = { headersTimeoutSeconds: 1, requestTimeoutSeconds: 2, idleTimeoutSeconds: 1 };
const GOOD = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
const BODY = Buffer.from(JSON.stringify(GOOD));

/** Writes `bytes` one at a time every `everyMs` until they run out or the server closes the socket. */
function trickle(socket: Socket, bytes: Buffer, everyMs: number): { sent: () => number; stop: () => void } {
  let i = 0;
  const timer = setInterval(() => {
    if (i >= bytes.length || socket.destroyed || !socket.writable) return;
    socket.write(bytes.subarray(i, i + 1));
    i++;
  }, everyMs);
  return { sent: () => i, stop: () => clearInterval(timer) };
}

/** A POST whose headers arrive whole and whose body then trickles in a byte every 200 ms. */
async function slowBody(port: number) {
  const socket = await openSocket(port);
  const started = performance.now();
  const reader = new ResponseReader(socket);
  const head = encodeRequest(port, {
    method: 'POST',
    path: '/v1/chat/completions',
    headers: [
      ['Content-Type', 'application/json'],
      ['Content-Length', String(BODY.length)],
    ],
  });
  socket.write(head);
  const t = trickle(socket, BODY, 200);
  const done = closed(socket).then(() => {
    t.stop();
    return {
      seconds: (performance.now() - started) / 1000,
      sent: t.sent(),
      reply: reader.pending.toString(),
    };
  });
  return { socket, done };
}

function statusOf(reply: string): number | null {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(reply);
  return m ? Number(m[1]) : null;
}

describe('the client API server bounds slow and idle connections', { concurrency: true }, () => {
  const h = new Harness();
  /** Two requests at once at most: for the test of slots held by slow bodies. */
  let narrow: ClientNode;
  /** The same limits, for the other tests (which must not take the narrow client's slots). */
  let wide: ClientNode;
  /** Two open connections at most. */
  let few: ClientNode;
  const portOf = (c: ClientNode) => Number(new URL(c.url).port);

  before(async () => {
    const proxy = await h.proxy();
    await h.worker(proxy, { backend: { tokenDelayMs: 0 } });
    narrow = await h.client(proxy, { ...LIMITS, maxConcurrentRequests: 2 });
    wide = await h.client(proxy, LIMITS);
    few = await h.client(proxy, { ...LIMITS, maxConnections: 2 });
  });
  after(() => h.stop());

  test('headers sent a byte every 200 ms: closed at about the header timeout (1 s)', async () => {
    const port = portOf(wide);
    const socket = await openSocket(port);
    const started = performance.now();
    const reader = new ResponseReader(socket);
    const request = encodeRequest(port, { method: 'GET', path: '/v1/models' });
    const t = trickle(socket, request, 200);
    await closed(socket);
    t.stop();
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds >= 0.8 && seconds < 3, `closed after ${seconds.toFixed(2)} s`);
    assert.ok(t.sent() < request.length, 'the headers never completed');
    const status = statusOf(reader.pending.toString());
    assert.ok(status === null || status === 408, reader.pending.toString());
  });

  test('a connection that sends nothing is closed at about the header timeout', async () => {
    const socket = await openSocket(portOf(wide));
    const started = performance.now();
    await closed(socket);
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds >= 0.8 && seconds < 3, `closed after ${seconds.toFixed(2)} s`);
  });

  test('a body sent a byte every 200 ms: cut off (408 or closed) at about the request timeout (2 s)', async () => {
    const { done } = await slowBody(portOf(wide));
    const { seconds, sent, reply } = await done;
    assert.ok(seconds >= 1.6 && seconds < 4.5, `cut off after ${seconds.toFixed(2)} s`);
    assert.ok(sent < BODY.length, 'the body never completed');
    const status = statusOf(reply);
    assert.ok(status === null || status === 408, reply);
    await until(() => wide.counters.inFlight === 0, 'its slot given back', 3000);
    const r = await post(`${wide.baseUrl}/chat/completions`, GOOD);
    assert.equal(r.status, 200, r.text);
  });

  test('an idle keep-alive connection is closed after the idle timeout (1 s)', async () => {
    const port = portOf(wide);
    const socket = await openSocket(port);
    const reader = new ResponseReader(socket);
    const get = encodeRequest(port, {
      method: 'GET',
      path: '/v1/models',
      headers: [['Connection', 'keep-alive']],
    });
    // Two requests on one connection: keep-alive works.
    for (let i = 0; i < 2; i++) {
      socket.write(get);
      const r = await reader.next(3000);
      assert.equal(r.status, 200, r.text);
      assert.match(r.headers['keep-alive'] ?? '', /timeout=1/);
    }
    // Node keeps a connection a second past the timeout it advertises, so that a client honouring
    // `Keep-Alive: timeout=1` never sends into a connection being closed: about 2 s in all.
    const idleFrom = performance.now();
    await closed(socket);
    const seconds = (performance.now() - idleFrom) / 1000;
    assert.ok(seconds >= 0.7 && seconds < 4, `closed after ${seconds.toFixed(2)} s idle`);
    assert.equal(reader.pending.length, 0, 'closed without a word');
  });

  test('slow bodies hold concurrency slots: a third request gets 429 until they are cut off', async () => {
    const port = portOf(narrow);
    const slow = await Promise.all([slowBody(port), slowBody(port)]);
    await until(() => narrow.counters.inFlight === 2, 'both slow bodies hold a slot', 2000);

    const refused = await post(`${narrow.baseUrl}/chat/completions`, GOOD);
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.json.error?.code, 'too_many_requests');
    assert.equal(refused.json.error?.type, 'rate_limit_error');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1, 'says when to retry');

    const cut = await Promise.all(slow.map((s) => s.done));
    for (const { seconds, reply } of cut) {
      assert.ok(seconds >= 1.6 && seconds < 4.5, `cut off after ${seconds.toFixed(2)} s`);
      const status = statusOf(reply);
      assert.ok(status === null || status === 408, reply);
    }
    await until(() => narrow.counters.inFlight === 0, 'the slots given back', 3000);
    const served = await post(`${narrow.baseUrl}/chat/completions`, GOOD);
    assert.equal(served.status, 200, served.text);
  });

  test('connections beyond maxConnections (2) are closed as they arrive', async () => {
    const port = portOf(few);
    const held = [await openSocket(port), await openSocket(port)];
    const ended = held.map((s) => closed(s).then(() => performance.now()));
    const extraFrom = performance.now();
    const extra = await openSocket(port);
    await closed(extra);
    const extraSeconds = (performance.now() - extraFrom) / 1000;
    const closedAt = performance.now();
    assert.ok(extraSeconds < 0.5, `the third closed after ${extraSeconds.toFixed(2)} s`);
    // The two held are the server's to time out (headers, 1 s), not closed to make room.
    for (const at of await Promise.all(ended))
      assert.ok(at > closedAt, 'held connections outlived the third');
    const r = await post(`${few.baseUrl}/chat/completions`, GOOD);
    assert.equal(r.status, 200, r.text);
  });
});
