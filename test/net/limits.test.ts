import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { CocoonError } from '../../src/errors.ts';
import type { Stream } from '../../src/net/stream.ts';
import { encodeFrame, FrameType } from '../../src/protocol/frames.ts';
import {
  answerWithoutReading,
  dial,
  RawPeer,
  served,
  startServer,
  type TestServer,
  tcpConnect,
  until,
  violationOf,
  waitClosed,
} from './peers.ts';

const KiB = 1024;
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const call = JSON.stringify({ method: 'models' });

describe('session limits (each enforced on a real TLS session)', () => {
  const servers: TestServer[] = [];
  const peers: RawPeer[] = [];
  after(async () => {
    for (const p of peers) p.destroy();
    for (const s of servers) await s.close();
  });
  async function server(o: Parameters<typeof startServer>[0] = {}) {
    const s = await startServer(o);
    servers.push(s);
    return s;
  }
  async function rogue(port: number, o?: Parameters<typeof RawPeer.connect>[1]) {
    const p = await RawPeer.connect(port, o);
    peers.push(p);
    return p;
  }

  test('flow control: one part may overshoot a window with credit left; DATA once it is spent is cut off', async () => {
    const srv = await server({ session: { streamWindowBytes: 64 * KiB }, onStream: answerWithoutReading });
    const p = await rogue(srv.port);
    const s = await srv.session(0);
    p.send(FrameType.Open, 1, call);
    p.send(FrameType.Data, 1, Buffer.alloc(64 * KiB - 1)); // 1 byte of credit left
    p.send(FrameType.Data, 1, Buffer.alloc(200 * KiB)); // allowed: the sender had credit
    await until(() => s.bufferedBytes >= 264 * KiB - 1, 'both parts held');
    assert.equal(s.closed, false);
    p.send(FrameType.Data, 1, Buffer.alloc(1)); // no credit at all
    assert.equal(await violationOf(s), 'flow_control_violation');
    assert.equal(await p.goAwayCode(), 'flow_control_violation');
  });

  test('flow control: WINDOW grants of 0, of 2^32-1, or summing above the window are cut off', async () => {
    for (const grants of [[0], [0xffff_ffff], [1]]) {
      const srv = await server({
        session: { streamWindowBytes: 64 * KiB },
        onStream: (st) => void st.write('x'), // leaves credit at 64 KiB - 1: a grant of 1 fits, 2 does not
      });
      const p = await rogue(srv.port);
      const s = await srv.session(0);
      p.send(FrameType.Open, 1, call);
      await p.next((f) => f.type === FrameType.Data);
      for (const g of grants) p.send(FrameType.Window, 1, u32(g));
      if (grants[0] === 1) {
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(s.closed, false, 'a grant that fits is fine');
        p.send(FrameType.Window, 1, u32(1));
      }
      assert.equal(await violationOf(s), 'flow_control_violation', `grants ${grants}`);
    }
  });

  test('open streams: OPENs beyond maxConcurrentStreams are refused with RESET too_many_streams', async () => {
    const srv = await server({ session: { maxConcurrentStreams: 3 }, onStream: () => {} });
    const p = await rogue(srv.port);
    const s = await srv.session(0);
    for (let id = 1; id <= 11; id += 2) p.send(FrameType.Open, id, call);
    await until(() => p.resets().length === 3, 'three refusals');
    assert.deepEqual(
      p.resets().map((r) => [r.id, r.code]),
      [
        [7, 'too_many_streams'],
        [9, 'too_many_streams'],
        [11, 'too_many_streams'],
      ],
    );
    assert.equal(s.peerStreams, 3);
    assert.equal(s.closed, false);
  });

  test('session budget: an OPEN that does not fit is refused, DATA that does not fit resets its stream', async () => {
    const srv = await server({
      session: { maxBufferedBytes: 300 * KiB, streamWindowBytes: 256 * KiB },
      onStream: () => {}, // reads nothing
    });
    const p = await rogue(srv.port);
    const s = await srv.session(0);
    p.send(FrameType.Open, 1, JSON.stringify({ pad: 'x'.repeat(100 * KiB) }));
    p.send(FrameType.Open, 3, JSON.stringify({ pad: 'x'.repeat(250 * KiB) })); // does not fit
    p.send(FrameType.Open, 5, call);
    p.send(FrameType.Data, 5, Buffer.alloc(150 * KiB));
    p.send(FrameType.Data, 5, Buffer.alloc(100 * KiB)); // over budget: stream 5 reset, its parts dropped
    await until(() => p.resets().length === 2, 'two refusals');
    assert.deepEqual(p.resets(), [
      { id: 3, code: 'session_buffer_full' },
      { id: 5, code: 'session_buffer_full' },
    ]);
    assert.ok(s.peakBufferedBytes <= 300 * KiB, `peak ${s.peakBufferedBytes}`);
    assert.ok(s.bufferedBytes < 110 * KiB, `left ${s.bufferedBytes}: stream 1's header only`);
    assert.equal(s.closed, false);
    p.send(FrameType.Reset, 1, JSON.stringify({ status: 499, type: 'x', code: 'cancelled', message: 'bye' }));
    await until(() => s.bufferedBytes === 0, 'all released');
  });

  test('a flood of tiny parts is charged per part; empty parts hold nothing', async () => {
    const srv = await server({ session: { maxBufferedBytes: 64 * KiB }, onStream: () => {} });
    const p = await rogue(srv.port);
    const s = await srv.session(0);
    p.send(FrameType.Open, 1, call);
    for (let i = 0; i < 5000; i++) p.send(FrameType.Data, 1, Buffer.alloc(0));
    p.send(FrameType.Open, 3, call);
    for (let i = 0; i < 2000; i++) p.send(FrameType.Data, 3, 'x');
    await until(() => p.resets().length === 1, 'refusal');
    assert.deepEqual(p.resets(), [{ id: 3, code: 'session_buffer_full' }]);
    assert.ok(s.peakBufferedBytes <= 64 * KiB);
  });

  test('queued parts are copied out of their socket chunk only when they are a sliver of it', async () => {
    const held: Stream[] = [];
    const srv = await server({ onStream: (st) => void held.push(st) }); // read later
    const p = await rogue(srv.port);
    const s = await srv.session(0);
    p.send(FrameType.Open, 1, call);
    p.send(FrameType.Open, 3, call);
    await until(() => held.length === 2, 'two streams');
    // One TLS record each (< 16 KiB): a 2 KiB part beside 13 KiB of padding, then 7 parts of 2 KiB.
    p.socket.write(
      Buffer.concat([
        encodeFrame(FrameType.Data, 1, Buffer.alloc(2 * KiB, 1)),
        encodeFrame(FrameType.Control, 0, JSON.stringify({ type: 'pad', pad: 'x'.repeat(13 * KiB) })),
      ]),
    );
    await until(() => s.bufferedBytes > 2 * KiB, 'sparse part queued');
    p.socket.write(
      Buffer.concat(
        Array.from({ length: 7 }, () => encodeFrame(FrameType.Data, 3, Buffer.alloc(2 * KiB, 2))),
      ),
    );
    await until(() => s.bufferedBytes > 16 * KiB, 'dense parts queued');
    const sparse = (await held[0]!.next()).value as Buffer;
    const dense = (await held[1]!.next()).value as Buffer;
    assert.ok(sparse.buffer.byteLength <= 8 * KiB, `sparse part holds ${sparse.buffer.byteLength} bytes`);
    // Dense parts keep no more than four times what they are charged: they stay views into their chunk
    // when it is its own memory (Node 20), and are copied out of a 64 KiB read slab (Node 24).
    assert.ok(dense.buffer.byteLength <= 4 * 14 * KiB, `dense part holds ${dense.buffer.byteLength} bytes`);
    const [major] = process.versions.node.split('.').map(Number);
    if (major! < 24) assert.ok(dense.buffer.byteLength >= 14 * KiB, 'dense parts share their chunk');
  });

  const oversized: [string, (p: RawPeer) => void][] = [
    ['OPEN header', (p) => p.send(FrameType.Open, 1, JSON.stringify({ pad: 'x'.repeat(5000) }))],
    [
      'END trailer',
      (p) => {
        p.send(FrameType.Open, 1, call);
        p.send(FrameType.End, 1, JSON.stringify({ pad: 'x'.repeat(5000) }));
      },
    ],
    ['CONTROL', (p) => p.send(FrameType.Control, 0, JSON.stringify({ type: 'x', pad: 'x'.repeat(5000) }))],
    [
      'RESET',
      (p) => {
        p.send(FrameType.Open, 1, call);
        p.send(FrameType.Reset, 1, JSON.stringify({ status: 500, message: 'x'.repeat(5000) }));
      },
    ],
    [
      'GOAWAY',
      (p) => p.send(FrameType.GoAway, 0, JSON.stringify({ status: 500, message: 'x'.repeat(5000) })),
    ],
  ];
  for (const [what, misbehave] of oversized) {
    test(`an oversized ${what} is cut off with frame_too_large`, async () => {
      const limit = 4 * KiB;
      const srv = await server({
        session: {
          maxHeaderBytes: limit,
          maxTrailerBytes: limit,
          maxControlBytes: limit,
          maxErrorBytes: limit,
        },
        onStream: () => {},
      });
      const p = await rogue(srv.port);
      const s = await srv.session(0);
      misbehave(p);
      assert.equal(await violationOf(s), 'frame_too_large');
    });
  }

  test('an oversized HELLO is refused before the session is up', async () => {
    const srv = await server({ session: { maxHelloBytes: 1024 } });
    const p = await rogue(srv.port, { sayHello: false });
    p.send(
      FrameType.Hello,
      0,
      JSON.stringify({
        protocol: 'cocoon',
        minVersion: 1,
        maxVersion: 1,
        role: 'client',
        name: 'x'.repeat(2000),
      }),
    );
    assert.equal(await p.goAwayCode(), 'frame_too_large');
    await until(() => srv.refused.length === 1, 'refusal reported');
    assert.equal(srv.refused[0]?.code, 'frame_too_large');
  });

  test('an honest peer never trips the send-side header limit: an oversized call fails locally', async () => {
    const srv = await server();
    const s = await dial(srv.port, { maxHeaderBytes: 1000 });
    assert.throws(
      () => s.openStream({ pad: 'x'.repeat(2000) }),
      (e: CocoonError) => e.code === 'request_too_large',
    );
    assert.equal(s.closed, false);
    s.close();
  });

  test('PINGs: the wrong size is a bad frame; more than maxPingsPerWindow is ping_flood', async () => {
    const srv = await server({ session: { maxPingsPerWindow: 20, rateWindowMs: 60_000 } });
    const bad = await rogue(srv.port);
    bad.send(FrameType.Ping, 0, Buffer.alloc(9));
    assert.equal(await violationOf(await srv.session(0)), 'bad_frame');
    const p = await rogue(srv.port);
    const s = await srv.session(1);
    for (let i = 0; i < 20; i++) p.send(FrameType.Ping, 0, Buffer.alloc(8));
    await until(() => p.frames.filter((f) => f.type === FrameType.Pong).length === 20, '20 pongs');
    assert.equal(s.closed, false);
    p.send(FrameType.Ping, 0, Buffer.alloc(8));
    assert.equal(await violationOf(s), 'ping_flood');
  });

  test('the rate window rolls over with the clock: the same rate spread out is fine', async () => {
    let now = 0;
    const srv = await server({ session: { maxPingsPerWindow: 5, rateWindowMs: 1000, now: () => now } });
    const p = await rogue(srv.port);
    const s = await srv.session(0);
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 5; i++) p.send(FrameType.Ping, 0, Buffer.alloc(8));
      await until(
        () => p.frames.filter((f) => f.type === FrameType.Pong).length === 5 * (round + 1),
        'pongs',
      );
      now += 1000;
    }
    assert.equal(s.closed, false);
  });

  test('streams reset by the peer or refused count toward maxStreamResetsPerWindow: stream_reset_flood', async () => {
    const srv = await server({
      session: { maxStreamResetsPerWindow: 10, rateWindowMs: 60_000 },
      onStream: () => {},
    });
    const p = await rogue(srv.port);
    const s = await srv.session(0);
    const cancel = JSON.stringify({ status: 499, type: 'x', code: 'cancelled', message: 'gone' });
    for (let id = 1; id <= 21; id += 2) {
      p.send(FrameType.Open, id, call);
      p.send(FrameType.Reset, id, cancel);
    }
    assert.equal(await violationOf(s), 'stream_reset_flood');
  });

  test('RESET for a stream that never existed is bad_stream; for one already closed it is ignored', async () => {
    const srv = await server({ onStream: answerWithoutReading });
    const p = await rogue(srv.port);
    const s = await srv.session(0);
    p.send(FrameType.Open, 1, call);
    p.send(FrameType.End, 1);
    await p.next((f) => f.type === FrameType.End);
    await until(() => s.openStreams === 0, 'stream done');
    const err = JSON.stringify({ status: 499, type: 'x', code: 'cancelled', message: 'late' });
    p.send(FrameType.Reset, 1, err);
    p.send(FrameType.Ping, 0, Buffer.alloc(8));
    await p.next((f) => f.type === FrameType.Pong);
    assert.equal(s.closed, false);
    p.send(FrameType.Reset, 41, err);
    assert.equal(await violationOf(s), 'bad_stream');
  });

  test('after GOAWAY nothing more is taken from the peer', async () => {
    const srv = await server({ onStream: () => {} });
    const p = await rogue(srv.port);
    const s = await srv.session(0);
    const closed = new Promise<CocoonError | null>((r) => s.once('close', r));
    p.socket.write(
      Buffer.concat([
        encodeFrame(
          FrameType.GoAway,
          0,
          JSON.stringify({ status: 503, type: 'server_error', code: 'draining', message: 'bye' }),
        ),
        encodeFrame(FrameType.Open, 1, call),
        encodeFrame(FrameType.Data, 1, Buffer.alloc(1000)),
      ]),
    );
    assert.equal((await closed)?.code, 'draining');
    assert.equal(s.violation, null);
    assert.equal(s.openStreams, 0);
    assert.equal(s.bufferedBytes, 0);
  });

  test('send side: a peer that reads nothing is dropped once maxSendBufferBytes are queued for it', async () => {
    const srv = await server({
      session: { maxSendBufferBytes: 512 * KiB, sendStallTimeoutMs: 60_000 },
      onStream: (st) => void st.write(Buffer.alloc(64 * KiB)), // answers without waiting for the socket
    });
    const p = await rogue(srv.port);
    const s = await srv.session(0);
    p.socket.pause(); // never reads again: the TCP window closes
    for (let id = 1; id < 2000; id += 2) p.send(FrameType.Open, id, call);
    assert.equal(await violationOf(s), 'send_buffer_exceeded');
  });

  test('send side: writers that wait are not dropped for size, but for a stall after sendStallTimeoutMs', async () => {
    const srv = await server({
      session: { maxSendBufferBytes: 64 * 1024 * KiB, sendStallTimeoutMs: 300 },
      onStream: async (st) => {
        try {
          for (;;) {
            const p = st.write(Buffer.alloc(16 * KiB));
            if (p) await p;
          }
        } catch {}
      },
    });
    const p = await rogue(srv.port);
    const s = await srv.session(0);
    p.socket.pause();
    // 32 streams x 1 MiB of credit: more than the kernel's socket buffers take, so our socket congests.
    for (let id = 1; id < 64; id += 2) p.send(FrameType.Open, id, call);
    let peak = 0;
    const sample = setInterval(() => {
      peak = Math.max(peak, s.sendBufferedBytes);
    }, 5);
    const t0 = Date.now();
    const v = await violationOf(s);
    clearInterval(sample);
    assert.equal(v, 'send_stalled', String(s.closeError?.message));
    assert.ok(Date.now() - t0 >= 250);
    assert.ok(peak < 2 * 1024 * KiB, `queued at most ${peak} bytes: the writers waited`);
  });

  test('handshakes: no TLS, or TLS and no HELLO, are dropped after handshakeTimeoutMs', async () => {
    const srv = await server({ listener: { handshakeTimeoutMs: 150 } });
    const tcp = await tcpConnect(srv.port);
    const quiet = await rogue(srv.port, { sayHello: false });
    await waitClosed(tcp);
    await quiet.closed;
    await until(() => srv.refused.length === 2, 'two refusals');
    assert.deepEqual(
      srv.refused.map((e) => e.code),
      ['handshake_timeout', 'handshake_timeout'],
    );
    assert.ok(await served(srv.port, 64 * KiB));
  });

  test('handshakes: more than maxPendingPerAddress at once from one address are dropped', async () => {
    const srv = await server({ listener: { maxPendingPerAddress: 3, handshakeTimeoutMs: 5000 } });
    const held = await Promise.all([1, 2, 3].map(() => tcpConnect(srv.port, '127.0.0.2')));
    const extra = await tcpConnect(srv.port, '127.0.0.2');
    await waitClosed(extra);
    assert.equal(srv.refused[0]?.code, 'too_many_handshakes');
    assert.ok(await served(srv.port, 64 * KiB), 'another address is served');
    for (const h of held) h.destroy();
  });
});
