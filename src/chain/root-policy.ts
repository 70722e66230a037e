import type { Address } from '@ton/core';
import type { TonClient } from '@ton/ton';
import type { PolicySource, TrustLists } from '../attest/policy.ts';
import type { Logger } from '../ops/log.ts';
import { RootContract } from './contracts/root-contract.ts';

const hex = (n: bigint) => n.toString(16).padStart(64, '0');

/**
 * The allow-lists the root contract publishes (proxy images, worker images, model hashes), re-read every
 * `intervalMs`; listeners hear about each new root version. The lists are enforced exactly: an empty list
 * allows nothing. Until the first read succeeds, `start()` has not resolved and nothing is accepted.
 */
export class RootPolicy implements PolicySource {
  private lists: TrustLists = { proxyImages: new Set(), workerImages: new Set(), models: new Set() };
  private version = -1;
  private readonly listeners: ((l: TrustLists) => void)[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly client: TonClient,
    private readonly root: Address,
    private readonly log: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  async start(): Promise<this> {
    await this.refresh();
    this.timer = setInterval(() => {
      this.refresh().catch((err) => this.log.warn({ err: String(err) }, 'cannot read the root policy'));
    }, this.intervalMs);
    this.timer.unref();
    return this;
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
    if (this.timer) clearInterval(this.timer);
  }
}
