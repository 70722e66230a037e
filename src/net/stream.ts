import {
  asCocoonError,
  type CocoonError,
  fromWireError,
  ProtocolError,
  ServiceUnavailableError,
  type WireError,
} from '../errors.ts';
import { FrameType } from '../protocol/frames.ts';
import type { Session } from './session.ts';

/**
 * What one queued part costs beyond its bytes (the Buffer object and its queue slot), charged against the
 * session's receive budget so that a flood of tiny parts is bounded too.
 */
export const PART_OVERHEAD_BYTES = 64;

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
  /** The session round (socket chunk) this stream last queued from, and where that round's parts start. */
  private round = 0;
  private roundStart = 0;
  /** Bytes this stream holds against its session's receive budget (unread parts, header, trailer). */
  private held = 0;
  private waiter: { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: unknown) => void } | null =
    null;
  private inboundEnded = false;
  private outboundEnded = false;
  private error: CocoonError | null = null;
  private sendCredit: number;
  /** One wait shared by every writer stalled on credit; settled when credit comes back or on reset. */
  private creditWait: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | null =
    null;
  /**
   * The peer's credit as it must count it: the window, plus what we granted, minus what it sent. A sender
   * may send a part while its credit is above zero (so it overshoots by at most one part); DATA arriving
   * when this is already zero or below is a peer ignoring flow control.
   */
  private recvCredit: number;
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
    this.recvCredit = windowBytes;
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

  /**
   * Sends one DATA part. Returns a promise only when the caller must wait (flow control). An empty part
   * is not sent (there is nothing to deliver).
   */
  write(data: Buffer | string): Promise<void> | undefined {
    if (this.error) throw this.error;
    if (this.outboundEnded) throw new Error(`stream ${this.id}: write after end`);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    if (buf.length === 0) return undefined;
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
    this.session.send(FrameType.Reset, this.id, this.session.errorPayload(e));
    this.fail(e);
  }

  next(): Promise<IteratorResult<Buffer>> {
    const part = this.queue.shift();
    if (part) {
      this.release(part.length + PART_OVERHEAD_BYTES);
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

  /** Bytes this stream holds against its session's receive budget. */
  get bufferedBytes(): number {
    return this.held;
  }

  /** @internal */
  onPeerData(payload: Buffer): void {
    if (this.inboundEnded) throw new ProtocolError(`DATA after END on stream ${this.id}`, 'bad_stream');
    if (this.recvCredit <= 0) {
      throw new ProtocolError(
        `peer sent DATA beyond its flow-control window on stream ${this.id}`,
        'flow_control_violation',
      );
    }
    const n = payload.length;
    if (n === 0) return; // nothing to deliver; not queued, so a flood of them holds nothing
    this.recvCredit -= n;
    this.bytesIn += n;
    this.onData?.(payload);
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      this.consumed(n);
      w.resolve({ value: payload, done: false });
      return;
    }
    if (!this.hold(n + PART_OVERHEAD_BYTES)) return;
    const first = this.round !== this.session.round;
    if (first) {
      this.round = this.session.round;
      this.roundStart = this.queue.length;
    }
    this.session.queuedInRound(this, first, n);
    this.queue.push(payload);
  }

  /**
   * @internal The chunk the last parts came in is done. If they were a small share of it, they are
   * copied so they do not keep the whole chunk in memory while they wait to be read.
   */
  endRound(sparse: boolean): void {
    if (!sparse) return;
    const q = this.queue;
    for (let i = this.roundStart; i < q.length; i++) {
      const p = q[i]!;
      if (p.length * 2 < p.buffer.byteLength) {
        // A copy of its own: `Buffer.from` would land in the shared pool, 64 KiB on Node 24.
        const own = Buffer.allocUnsafeSlow(p.length);
        p.copy(own);
        q[i] = own;
      }
    }
  }

  /** @internal */
  onPeerEnd(payload: Buffer): void {
    if (this.inboundEnded) throw new ProtocolError(`duplicate END on stream ${this.id}`, 'bad_stream');
    if (payload.length > 0) {
      if (!this.hold(payload.length)) return;
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

  /**
   * @internal A grant from the peer. It only ever gives back what it read, so our credit can never exceed
   * the window: a zero grant or one above that is a broken (or hostile) peer.
   */
  onPeerWindow(credit: number): void {
    if (credit === 0 || this.sendCredit + credit > this.windowBytes) {
      throw new ProtocolError(
        `WINDOW of ${credit} on stream ${this.id} would grant more than the ${this.windowBytes}-byte window`,
        'flow_control_violation',
      );
    }
    this.sendCredit += credit;
    if (this.sendCredit > 0 && this.creditWait) {
      const w = this.creditWait;
      this.creditWait = null;
      w.resolve();
    }
  }

  /**
   * @internal Charges `n` bytes against the session's receive budget. When the session is over budget,
   * this stream is reset instead (its buffered parts are dropped) and false is returned.
   */
  hold(n: number): boolean {
    if (!this.session.reserve(n)) {
      this.reset(
        new ServiceUnavailableError(
          'the receiving session has too much unread data; retry later',
          'session_buffer_full',
        ).retryAfterSeconds(1),
      );
      this.session.noteRefusedStream();
      return false;
    }
    this.held += n;
    return true;
  }

  /** @internal Bytes the session already reserved for this stream (its OPEN header). */
  adoptHeld(n: number): void {
    this.held += n;
  }

  /** Gives back to the session budget what this stream held (when the session stops tracking it). */
  private release(n: number): void {
    if (this.held === 0) return;
    const r = Math.min(n, this.held);
    this.held -= r;
    this.session.unreserve(r);
  }

  /** @internal The session no longer tracks this stream: everything it holds leaves the budget. */
  releaseAll(): void {
    this.release(this.held);
  }

  private consumed(n: number): void {
    this.consumedSinceGrant += n;
    if (this.consumedSinceGrant >= this.windowBytes / 2 && !this.inboundEnded && !this.error) {
      const b = Buffer.allocUnsafe(4);
      b.writeUInt32BE(this.consumedSinceGrant, 0);
      this.recvCredit += this.consumedSinceGrant;
      this.consumedSinceGrant = 0;
      this.session.send(FrameType.Window, this.id, b);
    }
  }

  private waitForCredit(): Promise<void> {
    if (!this.creditWait) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.creditWait = { promise, resolve, reject };
    }
    return this.creditWait.promise;
  }

  private fail(e: CocoonError, keepReceived = false): void {
    this.error = e;
    if (!keepReceived) {
      this.queue.length = 0;
      this.releaseAll();
    }
    if (this.creditWait) {
      const w = this.creditWait;
      this.creditWait = null;
      w.reject(e);
    }
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
