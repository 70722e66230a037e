import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AttestationError } from '../errors.ts';
import { type Collateral, fetchPccsCollateral } from './pccs.ts';
import type { PlatformId } from './quote.ts';

export type { Collateral } from './pccs.ts';
export type { PlatformId } from './quote.ts';

/**
 * Where Intel's collateral for a platform comes from. `get` is only ever called for a platform read from
 * a PCK chain that already verified up to Intel's root (src/attest/tdx/quote.ts), never for raw bytes.
 */
export interface CollateralSource {
  get(platform: PlatformId): Promise<Collateral>;
}

interface CollateralFacts {
  fmspc: string;
  nextUpdate: number;
}
const facts = new WeakMap<Collateral, CollateralFacts>();

function collateralFacts(c: Collateral): CollateralFacts {
  let f = facts.get(c);
  if (f) return f;
  let tcb: { fmspc?: unknown; nextUpdate?: unknown; tcbInfo?: { fmspc?: unknown; nextUpdate?: unknown } };
  let qe: { nextUpdate?: unknown; enclaveIdentity?: { nextUpdate?: unknown } };
  try {
    tcb = JSON.parse(c.tcb_info);
    qe = c.qe_identity ? JSON.parse(c.qe_identity) : {};
  } catch {
    throw new AttestationError('bad_collateral', 'collateral TCB info or QE identity is not JSON');
  }
  const time = (v: unknown) => (typeof v === 'string' ? Date.parse(v) / 1000 : Number.NaN);
  const tcbNext = time(tcb.tcbInfo?.nextUpdate ?? tcb.nextUpdate);
  const qeNext = time(qe.enclaveIdentity?.nextUpdate ?? qe.nextUpdate);
  if (!Number.isFinite(tcbNext))
    throw new AttestationError('bad_collateral', 'collateral has no TCB nextUpdate');
  const fmspc = tcb.tcbInfo?.fmspc ?? tcb.fmspc;
  f = {
    fmspc: typeof fmspc === 'string' ? fmspc.toUpperCase() : '',
    nextUpdate: Number.isFinite(qeNext) ? Math.min(tcbNext, qeNext) : tcbNext,
  };
  facts.set(c, f);
  return f;
}

/** Unix seconds until which the collateral may be used: the earlier `nextUpdate` of its TCB info and QE identity. */
export function collateralNextUpdate(c: Collateral): number {
  return collateralFacts(c).nextUpdate;
}

/** The FMSPC (upper-case hex) the collateral's TCB info is for. */
export function collateralFmspc(c: Collateral): string {
  return collateralFacts(c).fmspc;
}

/**
 * The collateral without a PCK chain: dcap-qvl would judge a quote by a chain found in the collateral
 * instead of the quote's own, which must never happen for collateral shared between quotes.
 */
function platformOnly(c: Collateral & { pck_certificate_chain?: unknown }): Collateral {
  if (!('pck_certificate_chain' in c)) return c;
  const { pck_certificate_chain: _, ...rest } = c;
  return rest;
}

/** Collateral from a JSON file (offline use): the same for every quote. */
export class FileCollateral implements CollateralSource {
  private cached: Promise<Collateral> | null = null;
  constructor(private readonly path: string) {}

  get(): Promise<Collateral> {
    this.cached ??= readFile(this.path, 'utf8').then((t) => platformOnly(JSON.parse(t) as Collateral));
    return this.cached;
  }
}

/** Bounds of the PCCS collateral source (defaults in `PCCS_DEFAULTS`). */
export interface PccsLimits {
  /** Platforms kept in memory, and their total size (bytes of JSON). */
  memoryEntries: number;
  memoryBytes: number;
  /** Platforms kept on disk, and their total size; the oldest files go first. */
  diskEntries: number;
  diskBytes: number;
  /** One platform's collateral larger than this is refused (and never written). */
  maxCollateralBytes: number;
  /** PCCS fetches running at once (each is 4 HTTP requests), and waiting for a slot; beyond, refused. */
  maxConcurrentFetches: number;
  maxQueuedFetches: number;
  /** Per HTTP request. */
  fetchTimeoutMs: number;
  maxResponseBytes: number;
  /** After a failed fetch a platform is not fetched again for this long, doubling up to the maximum. */
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** Platforms whose failures are remembered (oldest forgotten first). */
  failureEntries: number;
}

export const PCCS_DEFAULTS: PccsLimits = {
  memoryEntries: 64,
  memoryBytes: 8 * 1024 * 1024,
  diskEntries: 64,
  diskBytes: 16 * 1024 * 1024,
  maxCollateralBytes: 1024 * 1024,
  maxConcurrentFetches: 2,
  maxQueuedFetches: 8,
  fetchTimeoutMs: 10_000,
  maxResponseBytes: 1024 * 1024,
  backoffInitialMs: 5_000,
  backoffMaxMs: 5 * 60_000,
  failureEntries: 256,
};

interface MemoryEntry {
  collateral: Collateral;
  bytes: number;
  nextUpdate: number;
}

interface Failure {
  until: number;
  delayMs: number;
}

const CACHE_FILE = /^[0-9a-f]{64}\.json$/;

/**
 * Collateral from a PCCS (or Intel's PCS) per platform — FMSPC, CA, TEE type: every quote of a platform
 * shares one entry — kept in memory and on disk (`<cacheDir>/<sha256>.json`) until its next update, so a
 * restart or another machine of the same platform costs no round trip. Both caches are bounded (entries
 * and bytes); one fetch per platform runs at a time, at most `maxConcurrentFetches` in all with a bounded
 * queue, and a platform whose fetch failed is not asked for again before its backoff ends.
 */
export class PccsCollateral implements CollateralSource {
  /** Collateral fetches started (each is a few HTTP requests to the PCCS). */
  fetches = 0;
  private readonly limits: PccsLimits;
  private readonly clock: () => number;
  private readonly memory = new Map<string, MemoryEntry>();
  private memoryBytes = 0;
  private readonly inflight = new Map<string, Promise<Collateral>>();
  private readonly failures = new Map<string, Failure>();
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    private readonly pccsUrl: string,
    private readonly cacheDir: string,
    private readonly now: () => number = () => Date.now() / 1000,
    limits: Partial<PccsLimits> = {},
    /** Milliseconds, for the backoff (the collateral's validity uses `now`). */
    clock: () => number = Date.now,
  ) {
    this.limits = { ...PCCS_DEFAULTS, ...limits };
    this.clock = clock;
  }

  /** The cache key: what the collateral depends on, and where it comes from. */
  keyOf(p: PlatformId): string {
    return createHash('sha256')
      .update(`cocoon-collateral-v2\0${this.pccsUrl}\0${p.tee}\0${p.ca}\0${p.fmspc.toUpperCase()}`)
      .digest('hex');
  }

  /** Entries in memory, and their bytes. */
  get memoryUsage(): { entries: number; bytes: number } {
    return { entries: this.memory.size, bytes: this.memoryBytes };
  }

  async get(platform: PlatformId): Promise<Collateral> {
    if (!/^[0-9A-Fa-f]{12}$/.test(platform.fmspc) || !['processor', 'platform'].includes(platform.ca)) {
      throw new AttestationError('collateral_unavailable', 'not a platform id');
    }
    const key = this.keyOf(platform);
    const hit = this.memory.get(key);
    if (hit && hit.nextUpdate > this.now()) {
      this.memory.delete(key);
      this.memory.set(key, hit);
      return hit.collateral;
    }
    const running = this.inflight.get(key);
    if (running) return running;
    const p = this.load(key, platform).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async load(key: string, platform: PlatformId): Promise<Collateral> {
    const path = join(this.cacheDir, `${key}.json`);
    const fromDisk = await this.readDisk(path, platform);
    if (fromDisk) return this.remember(key, fromDisk.collateral, fromDisk.bytes);
    const failure = this.failures.get(key);
    if (failure && this.clock() < failure.until) {
      throw new AttestationError(
        'collateral_unavailable',
        `collateral for FMSPC ${platform.fmspc} failed recently; next try in ${Math.ceil((failure.until - this.clock()) / 1000)} s`,
      );
    }
    await this.acquire();
    let c: Collateral;
    let text: string;
    try {
      this.fetches++;
      c = await fetchPccsCollateral(this.pccsUrl, platform, {
        timeoutMs: this.limits.fetchTimeoutMs,
        maxResponseBytes: this.limits.maxResponseBytes,
      });
      text = JSON.stringify(c);
      this.check(c, text, platform);
    } catch (err) {
      this.fail(key, failure);
      throw new AttestationError(
        'collateral_unavailable',
        `cannot fetch collateral for FMSPC ${platform.fmspc} from ${this.pccsUrl}: ${(err as Error).message ?? err}`,
      );
    } finally {
      this.release();
    }
    this.failures.delete(key);
    await this.writeDisk(path, text).catch(() => {}); // a full or read-only disk costs a refetch later, no more
    return this.remember(key, c, Buffer.byteLength(text));
  }

  /** A usable cached file: not too large, valid JSON, for this platform, not past its next update. */
  private async readDisk(
    path: string,
    platform: PlatformId,
  ): Promise<{ collateral: Collateral; bytes: number } | null> {
    try {
      const st = await stat(path);
      if (!st.isFile() || st.size > this.limits.maxCollateralBytes) return null;
      const text = await readFile(path, 'utf8');
      const c = platformOnly(JSON.parse(text) as Collateral);
      this.check(c, text, platform);
      return { collateral: c, bytes: Buffer.byteLength(text) };
    } catch {
      return null;
    }
  }

  private check(c: Collateral, text: string, platform: PlatformId): void {
    if (Buffer.byteLength(text) > this.limits.maxCollateralBytes) {
      throw new Error(`collateral of more than ${this.limits.maxCollateralBytes} bytes`);
    }
    if (collateralFmspc(c) !== platform.fmspc.toUpperCase())
      throw new Error('collateral is for another FMSPC');
    if (collateralNextUpdate(c) <= this.now()) throw new Error('collateral is past its next update');
  }

  private remember(key: string, collateral: Collateral, bytes: number): Collateral {
    const old = this.memory.get(key);
    if (old) {
      this.memory.delete(key);
      this.memoryBytes -= old.bytes;
    }
    this.memory.set(key, { collateral, bytes, nextUpdate: collateralNextUpdate(collateral) });
    this.memoryBytes += bytes;
    while (this.memory.size > this.limits.memoryEntries || this.memoryBytes > this.limits.memoryBytes) {
      const [k, e] = this.memory.entries().next().value!;
      this.memory.delete(k);
      this.memoryBytes -= e.bytes;
    }
    return collateral;
  }

  private async writeDisk(path: string, text: string): Promise<void> {
    await mkdir(this.cacheDir, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, text);
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
    await this.evictDisk();
  }

  /** Keeps at most `diskEntries` cache files and `diskBytes` in all, removing the oldest first. */
  private async evictDisk(): Promise<void> {
    const names = (await readdir(this.cacheDir)).filter((n) => CACHE_FILE.test(n));
    const files = (
      await Promise.all(
        names.map((n) =>
          stat(join(this.cacheDir, n)).then(
            (s) => ({ path: join(this.cacheDir, n), size: s.size, mtime: s.mtimeMs }),
            () => null,
          ),
        ),
      )
    ).filter((f) => f !== null);
    files.sort((a, b) => b.mtime - a.mtime); // newest first
    let bytes = 0;
    for (const [i, f] of files.entries()) {
      bytes += f.size;
      if (i >= this.limits.diskEntries || bytes > this.limits.diskBytes) await unlink(f.path).catch(() => {});
    }
  }

  private fail(key: string, previous: Failure | undefined): void {
    const delayMs = previous
      ? Math.min(previous.delayMs * 2, this.limits.backoffMaxMs)
      : this.limits.backoffInitialMs;
    this.failures.delete(key);
    this.failures.set(key, { until: this.clock() + delayMs, delayMs });
    while (this.failures.size > this.limits.failureEntries)
      this.failures.delete(this.failures.keys().next().value!);
  }

  private async acquire(): Promise<void> {
    if (this.active < this.limits.maxConcurrentFetches) {
      this.active++;
      return;
    }
    if (this.queue.length >= this.limits.maxQueuedFetches) {
      throw new AttestationError(
        'collateral_unavailable',
        'too many collateral fetches waiting for the PCCS',
      );
    }
    await new Promise<void>((resolve) => this.queue.push(resolve));
  }

  private release(): void {
    const next = this.queue.shift();
    if (next)
      next(); // the slot passes to the next fetch
    else this.active--;
  }
}
