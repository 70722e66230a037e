import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import {
  BadGatewayError,
  BadRequestError,
  CocoonError,
  fromWireError,
  PayloadTooLargeError,
  ProtocolError,
  ServiceUnavailableError,
  toWireError,
  type WireError,
} from '../errors.ts';
import { encodeFrame, type Frame, FrameDecoder, FrameType, PING_PAYLOAD_BYTES } from '../protocol/frames.ts';
import { CALL_HEADER_NESTING, jsonNestsDeeperThan, MAX_JSON_DEPTH } from '../protocol/limits.ts';
import { type Hello, helloSchema, parseMessage, parseWireError } from '../protocol/messages.ts';
import {
  PROTOCOL_MAX_VERSION,
  PROTOCOL_MIN_VERSION,
  PROTOCOL_NAME,
  STREAM_WINDOW_BYTES,
} from '../protocol/version.ts';
import { Stream } from './stream.ts';

export interface SessionOptions {
  /** The dialer opens odd stream ids and speaks first in the handshake. */
  side: 'dialer' | 'acceptor';
  hello: Omit<Hello, 'protocol' | 'minVersion' | 'maxVersion' | 'version'>;
  /** Acceptor only: checks the dialer's Hello (role, info) before answering; throw to refuse. */
  acceptHello?: (peer: Hello) => void;
  /** Largest frame the peer may send (checked on its length prefix, before buffering): `frame_too_large`. */
  maxFrameBytes?: number;
  /**
   * Per-stream flow-control window in bytes, enforced on what the peer sends (`flow_control_violation`).
   * Protocol v1 does not announce it, so both ends must use the same value (STREAM_WINDOW_BYTES).
   */
  streamWindowBytes?: number;
  heartbeatMs?: number;
  /** No frame from the peer for this long closes the session. */
  idleTimeoutMs?: number;
  /** From the session's start to the peer's HELLO (a peer that never says HELLO): `handshake_timeout`. */
  handshakeTimeoutMs?: number;
  /** Most streams the peer may have open at once; more OPENs are refused with RESET `too_many_streams`. */
  maxConcurrentStreams?: number;
  /**
   * Receive budget of the whole session: unread DATA (plus PART_OVERHEAD_BYTES a part), OPEN headers of
   * the peer's open streams and END trailers. An OPEN that does not fit is refused, and a stream whose
   * DATA does not fit is reset, both with `session_buffer_full` (503, retryable).
   */
  maxBufferedBytes?: number;
  /** Largest OPEN header (the call): `frame_too_large`. */
  maxHeaderBytes?: number;
  /** Largest END trailer: `frame_too_large`. */
  maxTrailerBytes?: number;
  /** Largest CONTROL message: `frame_too_large`. */
  maxControlBytes?: number;
  /** Largest RESET or GOAWAY error: `frame_too_large`. */
  maxErrorBytes?: number;
  /** Largest HELLO: `frame_too_large`. */
  maxHelloBytes?: number;
  /**
   * Most bytes queued for the peer and not yet taken by the socket (the peer reads nothing: a zero TCP
   * window). Beyond it the session is dropped with `send_buffer_exceeded`.
   */
  maxSendBufferBytes?: number;
  /** The socket stayed congested (no drain) this long: the peer stopped reading; `send_stalled`. */
  sendStallTimeoutMs?: number;
  /** Length of the window in which PINGs and stream resets are counted. */
  rateWindowMs?: number;
  /** PINGs the peer may send per rate window (each costs us a PONG): `ping_flood`. */
  maxPingsPerWindow?: number;
  /**
   * Streams of the peer's that end in a RESET before completing, per rate window: the peer's own RESETs
   * of its streams, and OPENs we refused. Beyond it (open-and-reset in a loop): `stream_reset_flood`.
   */
  maxStreamResetsPerWindow?: number;
  /** Clock in ms (tests inject one). */
  now?: () => number;
}

const MiB = 1024 * 1024;
const DEFAULTS = {
  maxFrameBytes: 8 * MiB,
  streamWindowBytes: STREAM_WINDOW_BYTES,
  heartbeatMs: 10_000,
  idleTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  maxConcurrentStreams: 10_000,
  maxBufferedBytes: 256 * MiB,
  maxHeaderBytes: 8 * MiB,
  maxTrailerBytes: 8 * MiB,
  maxControlBytes: 1 * MiB,
  maxErrorBytes: 64 * 1024,
  maxHelloBytes: 256 * 1024,
  maxSendBufferBytes: 128 * MiB,
  sendStallTimeoutMs: 30_000,
  rateWindowMs: 10_000,
  maxPingsPerWindow: 1_000,
  maxStreamResetsPerWindow: 10_000,
  now: Date.now,
};

/** Our own RESET and GOAWAY errors stay well inside any peer's `maxErrorBytes`. */
const MAX_ERROR_MESSAGE_CHARS = 8 * 1024;
/** Writers wait once this much is batched for the next write (big batches: fewer syscalls). */
const OUTBOX_WAIT_BYTES = 256 * 1024;
/** How long a session we closed keeps draining its socket before destroying it. */
const CLOSE_LINGER_MS = 1000;
/** Highest stream id a u32 can carry. */
const MAX_STREAM_ID = 0xffff_ffff;

export interface SessionEvents {
  stream: [Stream];
  control: [Buffer];
  close: [CocoonError | null];
}

/**
 * One long-lived, multiplexed connection between two nodes over a verified TLS socket: a handshake that
 * agrees on a protocol version, many concurrent streams with per-stream flow control, heartbeats, and a
 * clean teardown that fails every open stream. Knows nothing about what the streams mean.
 */
export class Session extends EventEmitter<SessionEvents> {
  readonly ready: Promise<Hello>;
  peerHello: Hello | null = null;
  version = 0;
  closed = false;
  closeError: CocoonError | null = null;
  /** Why we hung up on the peer, when it broke the protocol (garbage, oversized or out-of-order frames). */
  violation: CocoonError | null = null;
  framesIn = 0;
  framesOut = 0;
  /** Bytes received and held against `maxBufferedBytes` (see SessionOptions). */
  bufferedBytes = 0;
  /** The most `bufferedBytes` ever was on this session. */
  peakBufferedBytes = 0;
  /** Streams the peer opened that are still open. */
  peerStreams = 0;

  private readonly opts: typeof DEFAULTS & SessionOptions;
  private readonly decoder: FrameDecoder;
  private readonly streams = new Map<number, Stream>();
  private readonly peerParity: number;
  private nextStreamId: number;
  private highestPeerStreamId = 0;
  private lastReceivedAt: number;
  private heartbeat: NodeJS.Timeout | null = null;
  private outbox: Buffer[] = [];
  private outboxBytes = 0;
  private stallTimer: NodeJS.Timeout | null = null;
  private rateWindowStart = 0;
  private pingsInWindow = 0;
  private resetsInWindow = 0;
  private drained: Promise<void> | null = null;
  /** Which socket chunk is being taken in, the bytes queued from it, and the streams that queued them. */
  round = 0;
  private roundQueued = 0;
  private readonly touched: Stream[] = [];
  private resolveDrained: (() => void) | null = null;
  private resolveReady!: (h: Hello) => void;
  private rejectReady!: (e: CocoonError) => void;

  constructor(
    readonly socket: Socket,
    opts: SessionOptions,
  ) {
    super();
    this.opts = { ...DEFAULTS, ...opts };
    this.decoder = new FrameDecoder(this.opts.maxFrameBytes);
    this.nextStreamId = opts.side === 'dialer' ? 1 : 2;
    this.peerParity = opts.side === 'dialer' ? 0 : 1;
    this.lastReceivedAt = this.opts.now();
    this.ready = new Promise<Hello>((res, rej) => {
      this.resolveReady = res;
      this.rejectReady = rej;
    });
    this.ready.catch(() => {}); // observed through 'close' too; avoid unhandled rejections
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) =>
      this.destroy(new ServiceUnavailableError(`connection error: ${err.message}`)),
    );
    socket.on('close', () => this.destroy(new ServiceUnavailableError('connection to peer closed')));
    socket.on('drain', this.onDrain);
    const hsTimer = setTimeout(
      () => this.destroy(new ProtocolError('handshake timed out', 'handshake_timeout')),
      this.opts.handshakeTimeoutMs,
    );
    this.ready.then(
      () => clearTimeout(hsTimer),
      () => clearTimeout(hsTimer),
    );
    if (opts.side === 'dialer') this.sendHello();
  }

  get openStreams(): number {
    return this.streams.size;
  }

  /** Bytes queued for the peer that the socket has not sent yet (bounded by `maxSendBufferBytes`). */
  get sendBufferedBytes(): number {
    return this.outboxBytes + this.socket.writableLength;
  }

  /** Opens a stream carrying `header` (a JSON call). */
  openStream(header: unknown): Stream {
    if (this.closed) throw this.closeError ?? new ServiceUnavailableError('session closed');
    const payload = JSON.stringify(header);
    // Refused here rather than by the peer, which would hang up on the whole session.
    if (payload.length > this.opts.maxHeaderBytes) throw new PayloadTooLargeError(this.opts.maxHeaderBytes);
    const id = this.nextStreamId;
    if (id > MAX_STREAM_ID) {
      const e = new ServiceUnavailableError('stream ids exhausted on this session; reconnecting');
      this.close(e);
      throw e;
    }
    this.nextStreamId += 2;
    // Both ends know the call's size: it bounds what the call may be billed for prompt tokens.
    const stream = new Stream(this, id, header, this.opts.streamWindowBytes, Buffer.byteLength(payload));
    this.streams.set(id, stream);
    this.send(FrameType.Open, id, payload);
    return stream;
  }

  sendControl(message: unknown): void {
    if (!this.closed) this.send(FrameType.Control, 0, JSON.stringify(message));
  }

  /** Sends GOAWAY with the reason and closes. */
  close(reason?: CocoonError): void {
    if (this.closed) return;
    if (reason) this.send(FrameType.GoAway, 0, this.errorPayload(reason));
    this.flush();
    this.socket.end();
    this.destroy(reason ?? new ServiceUnavailableError('session closed'), true);
  }

  // ---- used by Stream ----

  /** @internal */
  send(type: FrameType, streamId: number, payload?: Buffer | string): void {
    if (this.closed) return;
    this.framesOut++;
    // Frames written in one tick go out as one buffer: one TLS record and one syscall instead of many.
    const frame = encodeFrame(type, streamId, payload);
    this.outbox.push(frame);
    this.outboxBytes += frame.length;
    if (this.outbox.length === 1) process.nextTick(this.flush);
    else if (this.outboxBytes > this.opts.maxSendBufferBytes) this.flush();
  }

  private readonly flush = (): void => {
    const frames = this.outbox;
    const bytes = this.outboxBytes;
    this.outbox = [];
    this.outboxBytes = 0;
    if (this.closed || frames.length === 0) return;
    // A peer that reads nothing must not make us queue without bound: writers wait on `whenWritable`,
    // and whatever is queued regardless (answers to its frames) is capped.
    if (this.socket.writableLength + bytes > this.opts.maxSendBufferBytes) {
      this.violation ??= new ProtocolError(
        `peer is not reading: over ${this.opts.maxSendBufferBytes} bytes queued for it`,
        'send_buffer_exceeded',
      );
      this.destroy(this.violation); // no GOAWAY: it would not be read either
      return;
    }
    const ok = this.socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames, bytes));
    if (ok) this.releaseWriters();
    else if (this.stallTimer === null) {
      this.stallTimer = setTimeout(this.onStall, this.opts.sendStallTimeoutMs);
      this.stallTimer.unref();
    }
  };

  private readonly onDrain = (): void => {
    if (this.stallTimer !== null) {
      clearTimeout(this.stallTimer);
      this.stallTimer = null;
    }
    this.releaseWriters();
  };

  /** Wakes every writer waiting in `whenWritable`. */
  private releaseWriters(): void {
    const r = this.resolveDrained;
    if (!r) return;
    this.drained = null;
    this.resolveDrained = null;
    r();
  }

  private readonly onStall = (): void => {
    this.stallTimer = null;
    if (this.closed || !this.socket.writableNeedDrain) return;
    this.violation ??= new ProtocolError(
      `peer read nothing for ${this.opts.sendStallTimeoutMs} ms`,
      'send_stalled',
    );
    this.destroy(this.violation);
  };

  /** @internal A RESET or GOAWAY payload, its message cut to stay inside any peer's limit. */
  errorPayload(e: CocoonError): string {
    const w = toWireError(e);
    if (w.message.length > MAX_ERROR_MESSAGE_CHARS)
      w.message = `${w.message.slice(0, MAX_ERROR_MESSAGE_CHARS)}…`;
    return JSON.stringify(w);
  }

  /** @internal Takes `n` bytes of the receive budget; false when they do not fit. */
  reserve(n: number): boolean {
    const total = this.bufferedBytes + n;
    if (total > this.opts.maxBufferedBytes) return false;
    this.bufferedBytes = total;
    if (total > this.peakBufferedBytes) this.peakBufferedBytes = total;
    return true;
  }

  /** @internal */
  unreserve(n: number): void {
    this.bufferedBytes -= n;
  }

  /**
   * @internal One of the peer's streams ended in a RESET before completing (its own RESET, or an OPEN or
   * DATA we refused). Cheap to cause and not free to serve: a peer doing it in a loop is cut off.
   */
  noteRefusedStream(): void {
    this.rollRateWindow();
    if (++this.resetsInWindow > this.opts.maxStreamResetsPerWindow) {
      throw new ProtocolError(
        `over ${this.opts.maxStreamResetsPerWindow} streams reset within ${this.opts.rateWindowMs} ms`,
        'stream_reset_flood',
      );
    }
  }

  private rollRateWindow(): void {
    const now = this.opts.now();
    if (now - this.rateWindowStart >= this.opts.rateWindowMs) {
      this.rateWindowStart = now;
      this.pingsInWindow = 0;
      this.resetsInWindow = 0;
    }
  }

  /** @internal resolves when the socket can take more data (one shared wait, however many writers). */
  whenWritable(): Promise<void> | undefined {
    // Frames still in the outbox count: a writer looping within one tick must wait too.
    if (!this.socket.writableNeedDrain && this.outboxBytes < OUTBOX_WAIT_BYTES) return undefined;
    if (!this.drained) {
      this.drained = new Promise((res) => {
        this.resolveDrained = res;
      });
    }
    return this.drained;
  }

  /** @internal The stream is done: it leaves the session (and its bytes the receive budget). */
  forget(id: number): void {
    const s = this.streams.get(id);
    if (!s) return;
    this.streams.delete(id);
    if (id % 2 === this.peerParity) this.peerStreams--;
    s.releaseAll();
  }

  // ---- inbound ----

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastReceivedAt = this.opts.now();
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.round++;
    this.roundQueued = 0;
    for (const f of frames) {
      if (this.closed) return;
      this.framesIn++;
      try {
        this.onFrame(f);
      } catch (err) {
        this.fail(err);
        return;
      }
    }
    if (this.touched.length > 0) {
      // Parts left queued are views into this chunk's memory. When they are most of it, holding it costs
      // what they are charged; when they are a sliver (a byte per 16 KiB record), they are copied out so
      // the memory can go — copying only then keeps the common path free of allocations. The memory is
      // the chunk's whole ArrayBuffer: Node 24 reads TLS into 64 KiB slabs that chunks are views of.
      const sparse = this.roundQueued * 4 < chunk.buffer.byteLength;
      for (const s of this.touched) s.endRound(sparse);
      this.touched.length = 0;
    }
  }

  /** @internal A stream queued a part of `n` bytes from the chunk being taken in. */
  queuedInRound(s: Stream, first: boolean, n: number): void {
    if (first) this.touched.push(s);
    this.roundQueued += n;
  }

  private onFrame(f: Frame): void {
    if (!this.peerHello && f.type !== FrameType.Hello && f.type !== FrameType.GoAway) {
      throw new ProtocolError(`frame type ${FrameType[f.type]} before handshake`, 'bad_handshake');
    }
    switch (f.type) {
      case FrameType.Hello:
        this.checkSize(f, this.opts.maxHelloBytes);
        this.onHello(f.payload);
        return;
      case FrameType.Ping:
        if (f.payload.length !== PING_PAYLOAD_BYTES)
          throw new ProtocolError('PING must carry 8 bytes', 'bad_frame');
        this.rollRateWindow();
        if (++this.pingsInWindow > this.opts.maxPingsPerWindow) {
          throw new ProtocolError(
            `over ${this.opts.maxPingsPerWindow} PINGs within ${this.opts.rateWindowMs} ms`,
            'ping_flood',
          );
        }
        this.send(FrameType.Pong, 0, f.payload);
        return;
      case FrameType.Pong:
        if (f.payload.length !== PING_PAYLOAD_BYTES)
          throw new ProtocolError('PONG must carry 8 bytes', 'bad_frame');
        return;
      case FrameType.GoAway: {
        this.checkSize(f, this.opts.maxErrorBytes);
        const err = parseWireError(f.payload);
        this.destroy(fromWireError(err));
        return;
      }
      case FrameType.Control:
        this.checkSize(f, this.opts.maxControlBytes);
        this.emit('control', f.payload);
        return;
      case FrameType.Open:
        this.onOpen(f);
        return;
      default:
        this.onStreamFrame(f);
        return;
    }
  }

  private onHello(payload: Buffer): void {
    if (this.peerHello) throw new ProtocolError('duplicate Hello', 'bad_handshake');
    const peer = parseMessage(helloSchema, payload, 'Hello');
    if (peer.protocol !== PROTOCOL_NAME) throw new ProtocolError('not a cocoon peer', 'bad_handshake');
    if (this.opts.side === 'acceptor') {
      const version = Math.min(peer.maxVersion, PROTOCOL_MAX_VERSION);
      if (version < Math.max(peer.minVersion, PROTOCOL_MIN_VERSION)) {
        throw new ProtocolError(
          `no common protocol version: peer speaks ${peer.minVersion}..${peer.maxVersion}, ` +
            `we speak ${PROTOCOL_MIN_VERSION}..${PROTOCOL_MAX_VERSION}`,
          'version_mismatch',
        );
      }
      this.opts.acceptHello?.(peer);
      this.version = version;
      this.peerHello = peer;
      this.sendHello(version);
    } else {
      const v = peer.version;
      if (v === undefined || v < PROTOCOL_MIN_VERSION || v > PROTOCOL_MAX_VERSION) {
        throw new ProtocolError(`peer chose unsupported protocol version ${v}`, 'version_mismatch');
      }
      this.version = v;
      this.peerHello = peer;
    }
    this.startHeartbeat();
    this.resolveReady(peer);
  }

  private sendHello(version?: number): void {
    const hello: Hello = {
      protocol: PROTOCOL_NAME,
      minVersion: PROTOCOL_MIN_VERSION,
      maxVersion: PROTOCOL_MAX_VERSION,
      ...(version !== undefined ? { version } : {}),
      ...this.opts.hello,
    };
    this.send(FrameType.Hello, 0, JSON.stringify(hello));
  }

  private checkSize(f: Frame, max: number): void {
    if (f.payload.length > max) {
      throw new ProtocolError(
        `${FrameType[f.type]} of ${f.payload.length} bytes exceeds the ${max}-byte limit`,
        'frame_too_large',
      );
    }
  }

  private onOpen(f: Frame): void {
    const id = f.streamId;
    if (id === 0 || id % 2 !== this.peerParity || id <= this.highestPeerStreamId) {
      throw new ProtocolError(`OPEN with invalid stream id ${id}`, 'bad_stream');
    }
    this.highestPeerStreamId = id;
    this.checkSize(f, this.opts.maxHeaderBytes);
    if (this.peerStreams >= this.opts.maxConcurrentStreams) {
      this.refuseOpen(
        id,
        new ServiceUnavailableError(
          `too many open streams (at most ${this.opts.maxConcurrentStreams})`,
          'too_many_streams',
        ),
      );
      return;
    }
    if (jsonNestsDeeperThan(f.payload, MAX_JSON_DEPTH + CALL_HEADER_NESTING)) {
      // Every hop re-serializes the call, and JSON.stringify recurses: refused as the client's edge does.
      this.send(
        FrameType.Reset,
        id,
        this.errorPayload(
          new BadRequestError(`the call nests deeper than ${MAX_JSON_DEPTH} levels`, null, 'json_too_deep'),
        ),
      );
      this.noteRefusedStream();
      return;
    }
    if (!this.reserve(f.payload.length)) {
      this.refuseOpen(
        id,
        new ServiceUnavailableError(
          'the receiving session has too much unread data; retry later',
          'session_buffer_full',
        ),
      );
      return;
    }
    let header: unknown;
    try {
      header = JSON.parse(f.payload.toString('utf8'));
    } catch {
      throw new ProtocolError('OPEN header is not valid JSON', 'bad_message');
    }
    const stream = new Stream(this, id, header, this.opts.streamWindowBytes, f.payload.length);
    stream.adoptHeld(f.payload.length);
    this.streams.set(id, stream);
    this.peerStreams++;
    this.emit('stream', stream);
  }

  private refuseOpen(id: number, e: CocoonError): void {
    this.send(FrameType.Reset, id, this.errorPayload(e.retryAfterSeconds(1)));
    this.noteRefusedStream();
  }

  private onStreamFrame(f: Frame): void {
    if (f.type === FrameType.Reset) this.checkSize(f, this.opts.maxErrorBytes);
    else if (f.type === FrameType.End) this.checkSize(f, this.opts.maxTrailerBytes);
    const stream = this.streams.get(f.streamId);
    if (!stream) {
      // A frame for a stream that is already closed is a normal race (e.g. DATA crossing our RESET);
      // a frame for a stream that never existed is a broken peer.
      if (this.wasEverOpened(f.streamId)) return;
      throw new ProtocolError(`${FrameType[f.type]} for unknown stream ${f.streamId}`, 'bad_stream');
    }
    switch (f.type) {
      case FrameType.Data:
        stream.onPeerData(f.payload);
        return;
      case FrameType.End:
        stream.onPeerEnd(f.payload);
        return;
      case FrameType.Reset:
        stream.onPeerReset(parseWireError(f.payload));
        if (f.streamId % 2 === this.peerParity) this.noteRefusedStream();
        return;
      case FrameType.Window:
        if (f.payload.length !== 4) throw new ProtocolError('WINDOW payload must be 4 bytes', 'bad_frame');
        stream.onPeerWindow(f.payload.readUInt32BE(0));
        return;
      default:
        throw new ProtocolError(`unexpected frame type ${f.type}`, 'bad_frame');
    }
  }

  private wasEverOpened(id: number): boolean {
    if (id === 0) return false;
    const ownParity = this.opts.side === 'dialer' ? 1 : 0;
    return id % 2 === ownParity ? id < this.nextStreamId : id <= this.highestPeerStreamId;
  }

  private startHeartbeat(): void {
    const { heartbeatMs, idleTimeoutMs } = this.opts;
    this.heartbeat = setInterval(
      () => {
        const idle = this.opts.now() - this.lastReceivedAt;
        if (idle >= idleTimeoutMs) {
          this.destroy(new ServiceUnavailableError(`peer silent for ${idle} ms`, 'peer_timeout'));
        } else if (idle >= heartbeatMs / 2) {
          this.send(FrameType.Ping, 0, Buffer.alloc(8));
        }
      },
      Math.max(10, Math.floor(heartbeatMs / 2)),
    );
    this.heartbeat.unref();
  }

  /** The peer broke the protocol: tell it why, then hang up (recorded in `violation`). */
  fail(err: unknown): void {
    const e =
      err instanceof CocoonError
        ? err
        : new ProtocolError(`internal error: ${(err as Error).message ?? err}`);
    this.violation = e;
    this.close(e);
  }

  /**
   * Ends the session. With `linger`, the socket is only ended: what we queued (the GOAWAY saying why)
   * still goes out, and what the peer still sends is read and dropped — hanging up on unread data would
   * make the kernel send RST, and the peer would lose our last frames — until it hangs up too or
   * CLOSE_LINGER_MS pass.
   */
  private destroy(err: CocoonError, linger = false): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = err;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.releaseWriters();
    this.rejectReady(err);
    const lost: WireError = toWireError(
      new BadGatewayError(`connection to peer lost: ${err.message}`, 'peer_lost'),
    );
    for (const s of [...this.streams.values()]) s.onPeerReset(lost);
    this.streams.clear();
    this.touched.length = 0;
    this.peerStreams = 0;
    this.bufferedBytes = 0;
    this.outbox = [];
    this.outboxBytes = 0;
    if (linger && !this.socket.destroyed) {
      const t = setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS);
      t.unref();
      this.socket.once('close', () => clearTimeout(t));
    } else this.socket.destroy();
    this.emit('close', err);
  }
}
