import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { FrameType } from '../../src/protocol/frames.ts';
import { answerWithoutReading, RawPeer, served, startServer, violationOf } from '../net/peers.ts';

// Attack: make us write (answers to cheap calls) and never read, so the TCP window closes and every
// answer piles up in our process.
const KiB = 1024;

describe('zero window (a peer that never reads)', () => {
  test('answers that do not wait are capped: send_buffer_exceeded, the queue never above the cap', async () => {
    const cap = 1024 * KiB;
    const srv = await startServer({
      session: { maxSendBufferBytes: cap, sendStallTimeoutMs: 60_000 },
      onStream: answerWithoutReading, // the answer does not wait for the socket
    });
    after(() => srv.close());
    const attacker = await RawPeer.connect(srv.port);
    const s = await srv.session(0);
    attacker.socket.pause();
    let peak = 0;
    s.on('stream', () => {
      peak = Math.max(peak, s.sendBufferedBytes);
    });
    const call = JSON.stringify({ method: 'models' });
    // Each call complete (OPEN, END): it closes once answered, so only the unread answers pile up.
    for (let id = 1; id < 400_000; id += 2) {
      attacker.send(FrameType.Open, id, call); // ~30 B in, ~40 B out each
      attacker.send(FrameType.End, id);
    }
    assert.equal(await violationOf(s), 'send_buffer_exceeded');
    assert.ok(peak <= cap + 64 * KiB, `queued at most ${peak}`);
    assert.ok(await served(srv.port, 256 * 1024));
  });

  test('writers that wait are dropped after sendStallTimeoutMs: send_stalled, the queue stays small', async () => {
    const srv = await startServer({
      session: { sendStallTimeoutMs: 300 },
      onStream: async (st) => {
        try {
          for (;;) {
            const p = st.write(Buffer.alloc(16 * KiB));
            if (p) await p;
          }
        } catch {}
      },
    });
    after(() => srv.close());
    const attacker = await RawPeer.connect(srv.port);
    const s = await srv.session(0);
    attacker.socket.pause();
    for (let id = 1; id < 64; id += 2) attacker.send(FrameType.Open, id, '{}'); // 32 MiB of credit
    let peak = 0;
    const sample = setInterval(() => {
      peak = Math.max(peak, s.sendBufferedBytes);
    }, 5);
    assert.equal(await violationOf(s), 'send_stalled');
    clearInterval(sample);
    assert.ok(peak < 2048 * KiB, `queued at most ${peak}`);
    assert.ok(await served(srv.port, 256 * 1024));
  });
});
