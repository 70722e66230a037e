import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AttestationError } from '../errors.ts';
import { dcap } from './dcap.ts';

/** Intel's signed statements that a quote is judged against (TCB info, QE identity, CRLs). */
export type Collateral = import('@phala/dcap-qvl').Collateral;

export interface CollateralSource {
  get(quote: Uint8Array): Promise<Collateral>;
}

/** Unix seconds until which the collateral may be used: its TCB info's `nextUpdate`. */
export function collateralNextUpdate(c: Collateral): number {
  const info = JSON.parse(c.tcb_info) as { nextUpdate?: string; tcbInfo?: { nextUpdate?: string } };
  const next = info.tcbInfo?.nextUpdate ?? info.nextUpdate;
  const t = next ? Date.parse(next) / 1000 : Number.NaN;
  if (!Number.isFinite(t)) throw new AttestationError('bad_collateral', 'collateral has no TCB nextUpdate');
  return t;
}

/** Collateral from a JSON file (offline use): the same for every quote. */
export class FileCollateral implements CollateralSource {
  private cached: Promise<Collateral> | null = null;
  constructor(private readonly path: string) {}

  get(): Promise<Collateral> {
    this.cached ??= readFile(this.path, 'utf8').then((t) => JSON.parse(t) as Collateral);
    return this.cached;
  }
}

/**
 * Collateral from a PCCS (or Intel's PCS), fetched by dcap-qvl for the quote's platform and cached on
 * disk until its next update, so a restart or a second peer on the same platform costs no round trip.
 */
export class PccsCollateral implements CollateralSource {
  fetches = 0;
  constructor(
    private readonly pccsUrl: string,
    private readonly cacheDir: string,
    private readonly now: () => number = () => Date.now() / 1000,
  ) {}

  async get(quote: Uint8Array): Promise<Collateral> {
    // The PCK chain in the quote names the platform; quotes of one platform share it.
    const key = createHash('sha256').update(this.pccsUrl).update(platformKey(quote)).digest('hex');
    const path = join(this.cacheDir, `${key}.json`);
    try {
      const c = JSON.parse(await readFile(path, 'utf8')) as Collateral;
      if (collateralNextUpdate(c) > this.now()) return c;
    } catch {}
    this.fetches++;
    let c: Collateral;
    try {
      c = await dcap.getCollateral(this.pccsUrl, quote);
    } catch (err) {
      throw new AttestationError(
        'collateral_unavailable',
        `cannot fetch collateral from ${this.pccsUrl}: ${err}`,
      );
    }
    await mkdir(this.cacheDir, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(c));
    await rename(tmp, path);
    return c;
  }
}

/** The certification data at the end of the quote (PCK chain) identifies the platform. */
function platformKey(quote: Uint8Array): Buffer {
  const q = Buffer.from(quote);
  const at = q.indexOf('-----BEGIN CERTIFICATE-----');
  return at >= 0 ? q.subarray(at) : q;
}
