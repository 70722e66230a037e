import { EventEmitter } from 'node:events';
import type { PeerIdentity } from '../attest/types.ts';
import type { CocoonError } from '../errors.ts';
import type { Session } from './session.ts';
import { type DialOptions, dialPeer } from './tls.ts';

export interface PeerLinkOptions extends DialOptions {
  /** First retry delay; doubles per failure up to maxBackoffMs, with ±25% jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

interface PeerLinkEvents {
  up: [Session, PeerIdentity];
  down: [CocoonError | Error];
}

/**
 * Keeps one session to a peer alive: dials, and after any failure or disconnect dials again with
 * exponential backoff, until stopped.
 */
export class PeerLink extends EventEmitter<PeerLinkEvents> {
  session: Session | null = null;
  peer: PeerIdentity | null = null;
  lastError: Error | null = null;
  connects = 0;
  private stopped = false;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;

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
    if (this.timer) clearTimeout(this.timer);
    this.session?.close();
  }

  private async dial(): Promise<void> {
    if (this.stopped) return;
    try {
      const { session, peer } = await dialPeer(this.opts);
      if (this.stopped) {
        session.close();
        return;
      }
      this.failures = 0;
      this.connects++;
      this.session = session;
      this.peer = peer;
      session.once('close', (err) => {
        this.session = null;
        if (this.stopped) return; // we hung up ourselves
        this.lastError = err;
        this.emit('down', err ?? new Error('closed'));
        this.scheduleRetry();
      });
      this.emit('up', session, peer);
    } catch (err) {
      this.lastError = err as Error;
      this.emit('down', err as Error);
      this.scheduleRetry();
    }
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    const min = this.opts.minBackoffMs ?? 100;
    const max = this.opts.maxBackoffMs ?? 10_000;
    const base = Math.min(max, min * 2 ** this.failures++);
    const delay = base * (0.75 + Math.random() * 0.5);
    this.timer = setTimeout(() => void this.dial(), delay);
    this.timer.unref();
  }
}
