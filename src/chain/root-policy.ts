import type { Address } from '@ton/core';
import type { TonClient } from '@ton/ton';
import type { PolicySource, TrustLists } from '../attest/policy.ts';
import { backoffDelay } from '../net/peer-link.ts';
import type { Logger } from '../ops/log.ts';
import { RootContract } from './contracts/root-contract.ts';

const hex = (n: bigint) => n.toString(16).padStart(64, '0');

/**
 * The allow-lists the root contract publishes (proxy images, worker images, model hashes), re-read every
 * `intervalMs`; listeners hear about each new root version. The lists are enforced exactly: an empty list
 * allows nothing. Until the first read succeeds nothing is accepted: `start()` has not resolved, or (for a
 * daemon's boot) `startInBackground()` keeps trying.
 */
export class RootPolicy implements PolicySource {
  private lists: TrustLists = { proxyImages: new Set(), workerImages: new Set(), models: new Set() };
  private version = -1;
  private readonly listeners: ((l: TrustLists) => void)[] = [];
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** The first read has not succeeded yet: why (shown by daemons that started without it). */
  lastError: string | null = null;

  constructor(
    private readonly client: TonClient,
    private readonly root: Address,
    private readonly log: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  /** Reads the lists (the chain must answer now: a check, a CLI command), then re-reads them in the background. */
  async start(): Promise<this> {
    await this.refresh();
    this.every();
    return this;
  }

  /**
   * For a daemon's boot, which must not depend on the chain: returns at once. Until the first read succeeds
   * the lists are empty, so nothing is accepted (peers are refused and retry on their side); the read is
   * retried with backoff (1 s doubling to 30 s, one warning per try), then re-done every `intervalMs`.
   */
  startInBackground(): this {
    let failures = 0;
    const first = () => {
      this.timer = null;
      this.refresh().then(
        () => {
          this.lastError = null;
          if (failures > 0) this.log.info('root policy read; the chain answers again');
          if (!this.stopped) this.every();
        },
        (err) => {
          if (this.stopped) return;
          const delay = backoffDelay(failures++, 1000, 30_000);
          this.lastError = (err as Error).message;
          this.log.warn(
            { err: this.lastError, retryInMs: Math.round(delay) },
            'cannot read the root policy (nothing is accepted until it is read); retrying after backoff',
          );
          this.timer = setTimeout(first, delay);
          this.timer.unref();
        },
      );
    };
    first();
    return this;
  }

  private every(): void {
    this.timer = setInterval(() => {
      this.refresh().catch((err) => this.log.warn({ err: String(err) }, 'cannot read the root policy'));
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Reads the root; returns true if its version changed. */
  async refresh(): Promise<boolean> {
    const d = await this.client.open(RootContract.fromAddress(this.root)).getRootData();
    if (d.version === this.version) return false;
    this.version = d.version;
    this.lists = {
      proxyImages: new Set(d.proxyHashes.map(hex)),
      workerImages: new Set(d.workerHashes.map(hex)),
      models: new Set(d.modelHashes.map(hex)),
    };
    this.log.info({ version: d.version }, 'root policy loaded');
    for (const l of this.listeners) l(this.lists);
    return true;
  }

  current(): TrustLists {
    return this.lists;
  }

  onChange(listener: (lists: TrustLists) => void): void {
    this.listeners.push(listener);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer); // an interval or the first read's retry timeout
  }
}
