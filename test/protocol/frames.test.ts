import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CocoonError } from '../../src/errors.ts';
import { encodeFrame, FrameDecoder, FrameType } from '../../src/protocol/frames.ts';

describe('frame codec', () => {
  const frames = [
    encodeFrame(FrameType.Hello, 0, '{"a":1}'),
    encodeFrame(FrameType.Data, 7, Buffer.from([0, 1, 2, 255])),
    encodeFrame(FrameType.End, 7),
  ];
  const wire = Buffer.concat(frames);

  test('decodes frames split at every byte position', () => {
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new FrameDecoder(1024);
      const out = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
      assert.equal(out.length, 3, `cut at ${cut}`);
      assert.deepEqual(
        out.map((f) => [f.type, f.streamId, f.payload.toString('hex')]),
        [
          [FrameType.Hello, 0, Buffer.from('{"a":1}').toString('hex')],
          [FrameType.Data, 7, '000102ff'],
          [FrameType.End, 7, ''],
        ],
      );
    }
  });

  test('refuses an oversized frame before buffering it', () => {
    const d = new FrameDecoder(100);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1_000_000);
    assert.throws(
      () => d.push(header),
      (e: CocoonError) => e.code === 'frame_too_large',
    );
  });

  test('refuses unknown frame types and impossible lengths', () => {
    assert.throws(
      () => new FrameDecoder(100).push(Buffer.from([0, 0, 0, 5, 99, 0, 0, 0, 0])),
      (e: CocoonError) => e.code === 'bad_frame',
    );
    assert.throws(
      () => new FrameDecoder(100).push(Buffer.from([0, 0, 0, 2, 1, 0])),
      (e: CocoonError) => e.code === 'bad_frame',
    );
  });

  test('a large frame arriving in many small chunks is joined once (linear time), and held until whole', () => {
    const body = Buffer.alloc(8 * 1024 * 1024 - 16, 3);
    const wire = encodeFrame(FrameType.Data, 1, body);
    const d = new FrameDecoder(8 * 1024 * 1024);
    const t0 = performance.now();
    let out: ReturnType<FrameDecoder['push']> = [];
    for (let off = 0; off < wire.length; off += 1024) {
      out = d.push(wire.subarray(off, off + 1024));
      if (off + 1024 < wire.length) assert.equal(out.length, 0);
    }
    assert.equal(out.length, 1);
    assert.equal(out[0]!.payload.length, body.length);
    assert.equal(d.bufferedBytes, 0);
    // Joining on every chunk would copy ~32 GB here.
    assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms`);
  });

  test('an unknown frame type is refused as soon as its header is in, before its body', () => {
    const header = Buffer.from([0, 0, 1, 0, 99]);
    assert.throws(
      () => new FrameDecoder(1 << 20).push(header),
      (e: CocoonError) => e.code === 'bad_frame',
    );
  });
});
