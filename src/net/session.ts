import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import {
  BadGatewayError,
  CocoonError,
  fromWireError,
  ProtocolError,
  ServiceUnavailableError,
  toWireError,
  type WireError,
} from '../errors.ts';
import { encodeFrame, type Frame, FrameDecoder, FrameType } from '../protocol/frames.ts';
import { type Hello, helloSchema, parseMessage, parseWireError } from '../protocol/messages.ts';
import { PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION, PROTOCOL_NAME } from '../protocol/version.ts';
import { Stream } from './stream.ts';

export interface SessionOptions {
  /** The dialer opens odd stream ids and speaks first in the handshake. */
  side: 'dialer' | 'acceptor';
  hello: Omit<Hello, 'protocol' | 'minVersion' | 'maxVersion' | 'version'>;
  /** Acceptor only: checks the dialer's Hello (role, info) before answering; throw to refuse. */
  acceptHello?: (peer: Hello) => void;
  maxFrameBytes?: number;
  /** Initial per-stream receive window in bytes. */
  streamWindowBytes?: number;
  heartbeatMs?: number;
  /** No frame from the peer for this long closes the session. */
  idleTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  /** Most streams the peer may have open at once on this session. */
  maxConcurrentStreams?: number;
}

const DEFAULTS = {
  maxFrameBytes: 8 * 1024 * 1024,
  streamWindowBytes: 1024 * 1024,
  heartbeatMs: 10_000,
  idleTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  maxConcurrentStreams: 10_000,
};

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

  private readonly opts: typeof DEFAULTS & SessionOptions;
  private readonly decoder: FrameDecoder;
  private readonly streams = new Map<number, Stream>();
  private nextStreamId: number;
  private highestPeerStreamId = 0;
  private lastReceivedAt = Date.now();
  private heartbeat: NodeJS.Timeout | null = null;
  private outbox: Buffer[] = [];
  private drained: Promise<void> | null = null;
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

  /** Opens a stream carrying `header` (a JSON call). */
  openStream(header: unknown): Stream {
    if (this.closed) throw this.closeError ?? new ServiceUnavailableError('session closed');
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const payload = JSON.stringify(header);
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
    if (reason) this.send(FrameType.GoAway, 0, JSON.stringify(toWireError(reason)));
    this.flush();
    this.socket.end();
    this.destroy(reason ?? new ServiceUnavailableError('session closed'));
  }

  // ---- used by Stream ----

  /** @internal */
  send(type: FrameType, streamId: number, payload?: Buffer | string): void {
    if (this.closed) return;
    this.framesOut++;
    // Frames written in one tick go out as one buffer: one TLS record and one syscall instead of many.
    this.outbox.push(encodeFrame(type, streamId, payload));
    if (this.outbox.length === 1) process.nextTick(this.flush);
  }

  private readonly flush = (): void => {
    const frames = this.outbox;
    this.outbox = [];
    if (this.closed || frames.length === 0) return;
    this.socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  };

  /** @internal resolves when the socket can take more data (one shared wait, however many writers). */
  whenWritable(): Promise<void> | undefined {
    if (!this.socket.writableNeedDrain) return undefined;
    if (!this.drained) {
      this.drained = new Promise((res) => {
        const done = () => {
          this.socket.off('drain', done);
          this.socket.off('close', done);
          this.drained = null;
          res();
        };
        this.socket.on('drain', done);
        this.socket.on('close', done);
      });
    }
    return this.drained;
  }

  /** @internal */
  forget(id: number): void {
    this.streams.delete(id);
  }

  // ---- inbound ----

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastReceivedAt = Date.now();
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err);
      return;
    }
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
  }

  private onFrame(f: Frame): void {
    if (!this.peerHello && f.type !== FrameType.Hello && f.type !== FrameType.GoAway) {
      throw new ProtocolError(`frame type ${FrameType[f.type]} before handshake`, 'bad_handshake');
    }
    switch (f.type) {
      case FrameType.Hello:
        this.onHello(f.payload);
        return;
      case FrameType.Ping:
        this.send(FrameType.Pong, 0, f.payload);
        return;
      case FrameType.Pong:
        return;
      case FrameType.GoAway: {
        const err = parseWireError(f.payload);
        this.destroy(fromWireError(err));
        return;
      }
      case FrameType.Control:
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

  private onOpen(f: Frame): void {
    const id = f.streamId;
    const peerParity = this.opts.side === 'dialer' ? 0 : 1;
    if (id === 0 || id % 2 !== peerParity || id <= this.highestPeerStreamId) {
      throw new ProtocolError(`OPEN with invalid stream id ${id}`, 'bad_stream');
    }
    this.highestPeerStreamId = id;
    if (this.streams.size >= this.opts.maxConcurrentStreams) {
      this.send(FrameType.Reset, id, JSON.stringify(toWireError(new ProtocolError('too many open streams'))));
      return;
    }
    let header: unknown;
    try {
      header = JSON.parse(f.payload.toString('utf8'));
    } catch {
      throw new ProtocolError('OPEN header is not valid JSON', 'bad_message');
    }
    const stream = new Stream(this, id, header, this.opts.streamWindowBytes, f.payload.length);
    this.streams.set(id, stream);
    this.emit('stream', stream);
  }

  private onStreamFrame(f: Frame): void {
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
        const idle = Date.now() - this.lastReceivedAt;
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

  private destroy(err: CocoonError): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = err;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.rejectReady(err);
    const lost: WireError = toWireError(
      new BadGatewayError(`connection to peer lost: ${err.message}`, 'peer_lost'),
    );
    for (const s of [...this.streams.values()]) s.onPeerReset(lost);
    this.streams.clear();
    this.socket.destroy();
    this.emit('close', err);
  }
}
