import {
  asCocoonError,
  type CocoonError,
  fromWireError,
  ProtocolError,
  toWireError,
  type WireError,
} from '../errors.ts';
import { FrameType } from '../protocol/frames.ts';
import type { Session } from './session.ts';

/**
 * One call on a Session: a header, then a body of DATA parts each way, ended by END (with a JSON trailer)
 * or aborted by RESET (with an error). Inbound parts are read with `for await`; outbound parts are written
 * with `write`, which waits while the peer's window is exhausted or the socket is congested (backpressure
 * reaches the producer instead of piling up in memory).
 */
export class Stream implements AsyncIterableIterator<Buffer> {
  /** The peer's END trailer (parsed JSON), once the inbound side ended. */
  trailer: unknown = undefined;
  /**
   * Sees each inbound part as it arrives, before anyone reads it: what was received is known at once (a
   * bill that arrives on the session right after the parts is checked against them), whoever reads later.
   */
  onData: ((part: Buffer) => void) | null = null;
  bytesIn = 0;
  bytesOut = 0;

  // Made on first use: most streams end normally, and an AbortController costs more than the rest of a
  // stream's bookkeeping together.
  private abort: AbortController | null = null;
  private resetListeners: ((e: CocoonError) => void)[] | null = null;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private waiter: { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: unknown) => void } | null =
    null;
  private inboundEnded = false;
  private outboundEnded = false;
  private error: CocoonError | null = null;
  private sendCredit: number;
  private creditWaiter: (() => void) | null = null;
  private consumedSinceGrant = 0;

  constructor(
    private readonly session: Session,
    readonly id: number,
    readonly header: unknown,
    private readonly windowBytes: number,
    /** Size of the OPEN header as it crossed the wire (bounds what the call can be billed for its prompt). */
    readonly headerBytes = 0,
  ) {
    this.sendCredit = windowBytes;
  }

  /** Aborted when the stream is reset by either side or its session dies. */
  get signal(): AbortSignal {
    if (!this.abort) {
      this.abort = new AbortController();
      if (this.error) this.abort.abort(this.error);
    }
    return this.abort.signal;
  }

  /** The error that reset this stream, if it was reset (by either side). */
  get resetError(): CocoonError | null {
    return this.error;
  }

  /** Calls `listener` once if the stream is reset (cheaper than `signal` for internal plumbing). */
  onReset(listener: (e: CocoonError) => void): void {
    if (this.error) {
      listener(this.error);
      return;
    }
    this.resetListeners ??= [];
    this.resetListeners.push(listener);
  }

  get isClosed(): boolean {
    return this.error !== null || (this.inboundEnded && this.outboundEnded);
  }

  /** Sends one DATA part. Returns a promise only when the caller must wait (flow control). */
  write(data: Buffer | string): Promise<void> | undefined {
    if (this.error) throw this.error;
    if (this.outboundEnded) throw new Error(`stream ${this.id}: write after end`);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    if (this.sendCredit <= 0) return this.waitForCredit().then(() => this.write(buf));
    this.sendCredit -= buf.length;
    this.bytesOut += buf.length;
    this.session.send(FrameType.Data, this.id, buf);
    return this.session.whenWritable();
  }

  /**
   * Sends a CONTROL message on this stream's session. Frames of one session keep their order, so the
   * peer sees it before any DATA this stream sends afterwards.
   */
  sessionControl(message: unknown): void {
    this.session.sendControl(message);
  }

  /** Half-closes our side with an optional JSON trailer. */
  end(trailer?: unknown): void {
    if (this.error || this.outboundEnded) return;
    this.outboundEnded = true;
    this.session.send(FrameType.End, this.id, trailer === undefined ? undefined : JSON.stringify(trailer));
    this.maybeFinish();
  }

  /** Aborts the stream both ways and tells the peer why (cancellation or failure). */
  reset(err: unknown): void {
    if (this.isClosed) return;
    const e = asCocoonError(err);
    this.session.send(FrameType.Reset, this.id, JSON.stringify(toWireError(e)));
    this.fail(e);
  }

  next(): Promise<IteratorResult<Buffer>> {
    const part = this.queue.shift();
    if (part) {
      this.consumed(part.length);
      return Promise.resolve({ value: part, done: false });
    }
    if (this.error) return Promise.reject(this.error);
    if (this.inboundEnded) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return this;
  }

  /** Reads the whole inbound body (for small, non-streaming calls). */
  async readAll(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const p of this) parts.push(p);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  // ---- driven by Session ----

  /** @internal */
  onPeerData(payload: Buffer): void {
    if (this.inboundEnded) throw new ProtocolError(`DATA after END on stream ${this.id}`, 'bad_stream');
    this.bytesIn += payload.length;
    this.onData?.(payload);
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      this.consumed(payload.length);
      w.resolve({ value: payload, done: false });
      return;
    }
    this.queued += payload.length;
    // The peer may overshoot its credit by at most one part; more is a peer ignoring flow control.
    if (this.queued > 2 * this.windowBytes + 16 * 1024 * 1024) {
      throw new ProtocolError(`peer overran the window on stream ${this.id}`, 'flow_control');
    }
    this.queue.push(payload);
  }

  /** @internal */
  onPeerEnd(payload: Buffer): void {
    if (this.inboundEnded) throw new ProtocolError(`duplicate END on stream ${this.id}`, 'bad_stream');
    if (payload.length > 0) {
      try {
        this.trailer = JSON.parse(payload.toString('utf8'));
      } catch {
        throw new ProtocolError(`END trailer on stream ${this.id} is not valid JSON`, 'bad_message');
      }
    }
    this.inboundEnded = true;
    if (this.waiter && this.queue.length === 0) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve({ value: undefined, done: true });
    }
    this.maybeFinish();
  }

  /** @internal */
  onPeerReset(err: WireError): void {
    if (this.error) return;
    // Parts that arrived before the reset are still delivered (an engine error after some tokens must
    // not swallow those tokens); the error surfaces once they are read.
    this.fail(fromWireError(err), true);
  }

  /** @internal */
  onPeerWindow(credit: number): void {
    this.sendCredit += credit;
    if (this.sendCredit > 0 && this.creditWaiter) {
      const w = this.creditWaiter;
      this.creditWaiter = null;
      w();
    }
  }

  private consumed(n: number): void {
    this.queued = Math.max(0, this.queued - n);
    this.consumedSinceGrant += n;
    if (this.consumedSinceGrant >= this.windowBytes / 2 && !this.inboundEnded && !this.error) {
      const b = Buffer.allocUnsafe(4);
      b.writeUInt32BE(this.consumedSinceGrant, 0);
      this.consumedSinceGrant = 0;
      this.session.send(FrameType.Window, this.id, b);
    }
  }

  private waitForCredit(): Promise<void> {
    return new Promise((resolve, reject) => {
      let settled = false;
      this.onReset((e) => {
        if (!settled) reject(e);
        settled = true;
      });
      this.creditWaiter = () => {
        settled = true;
        resolve();
      };
    });
  }

  private fail(e: CocoonError, keepReceived = false): void {
    this.error = e;
    if (!keepReceived) this.queue.length = 0;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(e);
    }
    this.abort?.abort(e);
    const listeners = this.resetListeners;
    this.resetListeners = null;
    if (listeners) for (const l of listeners) l(e);
    this.session.forget(this.id);
  }

  private maybeFinish(): void {
    if (this.inboundEnded && this.outboundEnded) this.session.forget(this.id);
  }
}
