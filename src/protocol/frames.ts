import { ProtocolError } from '../errors.ts';

/**
 * Framing of the node-to-node protocol on a TLS 1.3 socket.
 *
 *   u32 BE  length   (of type + stream id + payload)
 *   u8      type     (FrameType)
 *   u32 BE  streamId (0 = the session itself)
 *   ...     payload  (JSON text for control frames, raw bytes for DATA)
 *
 * Streams opened by the dialing side have odd ids, by the accepting side even ids, so both sides can open
 * streams without coordination (as in HTTP/2).
 */
export enum FrameType {
  /** stream 0, JSON Hello: first frame each way; version negotiation. */
  Hello = 1,
  /** stream 0, 8 opaque bytes; answered by Pong with the same bytes. Heartbeat. */
  Ping = 2,
  Pong = 3,
  /** opens stream N; JSON header (the call: method + arguments). */
  Open = 4,
  /** a part of stream N's body, raw bytes; counts against the receiver's window. */
  Data = 5,
  /** half-closes stream N from the sender; JSON trailer (e.g. final token usage). */
  End = 6,
  /** aborts stream N in both directions; JSON WireError (cancellation or failure). */
  Reset = 7,
  /** stream N (or 0): u32 BE byte credit granted to the peer for DATA on that stream. */
  Window = 8,
  /** stream 0, JSON WireError: the sender closes the session. */
  GoAway = 9,
  /** stream 0, JSON session-level message (e.g. a worker's capacity update). */
  Control = 10,
}

export const FRAME_HEADER_BYTES = 9;
const MAX_KNOWN_TYPE = FrameType.Control;

export interface Frame {
  type: FrameType;
  streamId: number;
  payload: Buffer;
}

export function encodeFrame(type: FrameType, streamId: number, payload?: Buffer | string): Buffer {
  const body = payload === undefined ? EMPTY : typeof payload === 'string' ? Buffer.from(payload) : payload;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  out.writeUInt32BE(5 + body.length, 0);
  out.writeUInt8(type, 4);
  out.writeUInt32BE(streamId, 5);
  body.copy(out, FRAME_HEADER_BYTES);
  return out;
}

const EMPTY = Buffer.alloc(0);

/** PING and PONG carry exactly this many opaque bytes. */
export const PING_PAYLOAD_BYTES = 8;

/**
 * Incremental decoder: feed socket chunks, get whole frames. Refuses oversized and unknown frames as soon
 * as their 9-byte header is in, before buffering their body. A frame arriving in many chunks is kept as a
 * list of chunks and joined once, when it is complete (joining on every chunk would cost quadratic time).
 */
export class FrameDecoder {
  private parts: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the pending frame needs before it is worth parsing again (its whole length once known). */
  private needBytes = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Bytes received and held for a frame not yet complete. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  push(chunk: Buffer): Frame[] {
    let buf: Buffer;
    if (this.pendingBytes === 0) buf = chunk;
    else {
      this.parts.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < this.needBytes) return [];
      buf = Buffer.concat(this.parts, this.pendingBytes);
      this.parts = [];
      this.pendingBytes = 0;
    }
    const frames: Frame[] = [];
    let off = 0;
    let need = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (len < 5) throw new ProtocolError(`frame length ${len} is below the 5-byte minimum`, 'bad_frame');
      if (len > this.maxFrameBytes) {
        throw new ProtocolError(
          `frame of ${len} bytes exceeds the ${this.maxFrameBytes}-byte limit`,
          'frame_too_large',
        );
      }
      if (buf.length - off < 5) {
        need = 5;
        break;
      }
      const type = buf.readUInt8(off + 4);
      if (type < 1 || type > MAX_KNOWN_TYPE)
        throw new ProtocolError(`unknown frame type ${type}`, 'bad_frame');
      if (buf.length - off < 4 + len) {
        need = 4 + len;
        break;
      }
      frames.push({
        type,
        streamId: buf.readUInt32BE(off + 5),
        payload: buf.subarray(off + 9, off + 4 + len),
      });
      off += 4 + len;
    }
    if (off < buf.length) {
      const rest = buf.subarray(off);
      // Copy a small leftover so we do not pin a large socket buffer in memory.
      this.parts.push(rest.length < 4096 ? Buffer.from(rest) : rest);
      this.pendingBytes = rest.length;
      this.needBytes = need;
    }
    return frames;
  }
}
