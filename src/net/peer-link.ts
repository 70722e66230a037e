import { EventEmitter } from 'node:events';
import type { PeerIdentity } from '../attest/types.ts';
import { asCocoonError, CocoonError } from '../errors.ts';
import type { Session } from './session.ts';
import { type DialOptions, dialPeer } from './tls.ts';

export interface PeerLinkOptions extends DialOptions {
  /** First retry delay; doubles per failure up to maxBackoffMs, with ±25% jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * A session that ends sooner than this after it came up counts as a failure (the backoff keeps growing):
   * a peer that takes the handshake and then hangs up at once is not re-dialled at the shortest delay. A
   * session ended by a certificate's expiry is not such a failure, however short.
   */
  stableMs?: number;
}

interface PeerLinkEvents {
  up: [Session, PeerIdentity];
  /** The link is down; the next dial is in `retryInMs`. `refused`: we (or the peer) refused the session. */
  down: [CocoonError | Error, { retryInMs: number; refused: boolean }];
}

/** The delay before try `failures + 1`: `min × 2^failures`, capped at `max`, with ±25% jitter. */
export function backoffDelay(failures: number, minMs: number, maxMs: number, random = Math.random): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(failures, 30));
  return base * (0.75 + random() * 0.5);
}

/**
 * Keeps one session to a peer alive: dials, and after any failure or disconnect dials again with
 * exponential backoff, until stopped. A started link keeps the process alive (its retry timer is a live
 * handle), like the socket it dials: a daemon with nothing else open does not exit while its peer is away.
 */
export class PeerLink extends EventEmitter<PeerLinkEvents> {
  session: Session | null = null;
  peer: PeerIdentity | null = null;
  lastError: Error | null = null;
  /**
   * Why the last session was refused (by us, through `refuse`, or by the peer, `refusedByPeer`), until a
   * session is accepted: shown in stats and in the errors of requests that find no usable peer.
   */
  refusal: Error | null = null;
  /** When the next dial is due (ms since the epoch); null while connected or dialling. */
  retryAt: number | null = null;
  connects = 0;
  private stopped = false;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private refusing: Error | null = null;

  /** Swaps the certificate used for the next connections (rotation). */
  setCredentials(credentials: PeerLinkOptions['credentials']): void {
    this.opts = { ...this.opts, credentials };
  }

  constructor(private opts: PeerLinkOptions) {
    super();
  }

  get address(): string {
    return `${this.opts.host}:${this.opts.port}`;
  }

  start(): this {
    void this.dial();
    return this;
  }

  stop(): void {
    this.stopped = true;
    this.retryAt = null;
    if (this.timer) clearTimeout(this.timer);
    this.session?.close();
  }

  /**
   * The current session cannot be used (e.g. payments refused: the proxy's contract is not registered):
   * hang up, and try again after a backoff that keeps growing while the refusals go on.
   */
  refuse(err: Error): void {
    this.refusal = err;
    const s = this.session;
    if (!s) return;
    this.refusing = err;
    // The peer is told why (a CocoonError's message; anything else stays "internal" on the wire).
    s.close(err instanceof CocoonError ? err : asCocoonError(err));
  }

  /**
   * The peer hung up before the session could be used (e.g. a proxy that cannot read our contract on its
   * chain): kept as the refusal, like one of ours, until a session is accepted.
   */
  refusedByPeer(err: Error): void {
    if (!this.stopped) this.refusal = err;
  }

  /** The current session is good (e.g. payments confirmed): the refusal is over. */
  accepted(): void {
    this.refusal = null;
  }

  private async dial(): Promise<void> {
    if (this.stopped) return;
    this.retryAt = null;
    try {
      const { session, peer } = await dialPeer(this.opts);
      if (this.stopped) {
        session.close();
        return;
      }
      const upAt = Date.now();
      this.connects++;
      this.session = session;
      this.peer = peer;
      this.refusing = null;
      session.once('close', (err) => {
        this.session = null;
        if (this.stopped) return; // we hung up ourselves
        const refused = this.refusing !== null;
        const cause = this.refusing ?? err ?? new Error('closed');
        this.refusing = null;
        // A session that served a while, or ended as planned (a certificate's end: with short-lived
        // certificates a session may last well under `stableMs`), starts the backoff over; a refused or
        // short-lived one does not.
        const planned = (err as CocoonError | undefined)?.code === 'certificate_expired';
        if (!refused && (planned || Date.now() - upAt >= (this.opts.stableMs ?? 1000))) this.failures = 0;
        this.lastError = cause;
        this.scheduleRetry(cause, refused);
      });
      this.emit('up', session, peer);
    } catch (err) {
      this.lastError = err as Error;
      this.scheduleRetry(err as Error, false);
    }
  }

  private scheduleRetry(cause: Error, refused: boolean): void {
    if (this.stopped) return;
    const delay = backoffDelay(
      this.failures++,
      this.opts.minBackoffMs ?? 100,
      this.opts.maxBackoffMs ?? 10_000,
    );
    this.retryAt = Date.now() + delay;
    // Not unref'd: the link is the daemon's work while its peer is away (see the class comment).
    this.timer = setTimeout(() => void this.dial(), delay);
    this.emit('down', cause, { retryInMs: Math.round(delay), refused });
  }
}
