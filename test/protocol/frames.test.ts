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
});
