import { createHash, timingSafeEqual } from 'node:crypto';
import { AttestationError } from '../errors.ts';
import type { AttestationVerifier, VerifiedAttestation } from '../types.ts';
import { type CollateralSource, collateralNextUpdate } from './collateral.ts';
import { dcap, type TdxVerified } from './dcap.ts';
import { tdxImageHash } from './measurements.ts';

export interface TdxVerifierOptions {
  collateral: CollateralSource;
  /** TCB statuses accepted besides `UpToDate`, by name (e.g. `SWHardeningNeeded`). */
  acceptStatuses?: string[];
  /** Unix seconds; injectable so tests pin time inside the collateral's validity. */
  now?: () => number;
  /** Verified quotes remembered (LRU), until their collateral's next update. */
  cacheSize?: number;
}

interface CacheEntry {
  reportData: Buffer;
  result: VerifiedAttestation;
  expiresAt: number;
}

/**
 * Verifies Intel TDX quotes with a real DCAP verifier (@phala/dcap-qvl: the quote's signature chain up to
 * Intel's SGX root CA, which the library pins, its QE report, and the platform's TCB level against Intel's
 * collateral). A quote proves the CPU TEE: tier `tee-cpu` (a GPU tier needs GPU attestation, which no
 * verifier here provides). Results are cached by quote hash, so a peer reconnecting with the same
 * certificate costs a hash and a lookup; the expected report data is still compared on every call.
 */
export class TdxAttestationVerifier implements AttestationVerifier {
  readonly kind = 'tdx';
  private readonly accept: Set<string>;
  private readonly now: () => number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly cacheSize: number;
  hits = 0;
  misses = 0;

  constructor(private readonly opts: TdxVerifierOptions) {
    this.accept = new Set(['UpToDate', ...(opts.acceptStatuses ?? [])]);
    this.now = opts.now ?? (() => Date.now() / 1000);
    this.cacheSize = opts.cacheSize ?? 1024;
  }

  async verify(quote: Uint8Array, expectedReportData: Uint8Array): Promise<VerifiedAttestation> {
    const key = createHash('sha256').update(quote).digest('hex');
    const now = this.now();
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > now) {
      this.hits++;
      this.cache.delete(key); // refresh its place in the LRU order
      this.cache.set(key, hit);
      checkReportData(hit.reportData, expectedReportData);
      return hit.result;
    }
    this.misses++;
    const collateral = await this.opts.collateral.get(quote);
    let v: TdxVerified;
    try {
      v = dcap.verify(Buffer.from(quote), collateral, Math.floor(now)) as unknown as TdxVerified;
    } catch (err) {
      const msg = (err as Error).message ?? String(err);
      const code = /expired/i.test(msg) ? 'collateral_expired' : 'quote_invalid';
      throw new AttestationError(code, `TDX quote refused: ${msg}`);
    }
    if (v.report.type !== 'td10' && v.report.type !== 'td15') {
      throw new AttestationError('not_tdx', `expected a TDX quote, got a ${v.report.type} report`);
    }
    if (!this.accept.has(v.status)) {
      const adv = v.advisory_ids?.length ? ` (advisories: ${v.advisory_ids.join(', ')})` : '';
      throw new AttestationError(
        'tcb_status',
        `TDX platform TCB status is ${v.status}${adv}; accepted: ${[...this.accept].join(', ')}`,
      );
    }
    const reportData = Buffer.from(v.report.data.reportData!);
    checkReportData(reportData, expectedReportData);
    const result: VerifiedAttestation = {
      kind: 'tdx',
      tier: 'tee-cpu',
      imageHash: tdxImageHash(v.report.data),
    };
    this.cache.set(key, { reportData, result, expiresAt: collateralNextUpdate(collateral) });
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    return result;
  }
}

function checkReportData(actual: Buffer, expected: Uint8Array): void {
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    throw new AttestationError(
      'report_data_mismatch',
      'quote report data does not match the certificate claims',
    );
  }
}
