import { createHash, timingSafeEqual } from 'node:crypto';
import { AttestationError } from '../errors.ts';
import type { AttestationVerifier, VerifiedAttestation, VerifyContext } from '../types.ts';
import { type CollateralSource, collateralFmspc, collateralNextUpdate } from './collateral.ts';
import { dcap, type TdxVerified } from './dcap.ts';
import { MAX_TDX_QUOTE_BYTES, PckChainCache, parseTdxQuote, verifyQuoteSignatures } from './quote.ts';

export interface TdxVerifierOptions {
  collateral: CollateralSource;
  /** TCB statuses accepted besides `UpToDate`, by name (e.g. `SWHardeningNeeded`). */
  acceptStatuses?: string[];
  /** Unix seconds; injectable so tests pin time inside the collateral's validity. */
  now?: () => number;
  /** Verified quotes remembered (LRU), until their collateral's next update; default 1024. */
  cacheSize?: number;
  /** Verified PCK chains remembered (LRU), so a machine's next quote skips its chain; default 256. */
  pckChainCacheSize?: number;
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
 * verifier here provides).
 *
 * Cheap checks first, so a stranger's bytes cost no collateral, no disk and no cache entry:
 *  1. size, then the verified-result cache (by SHA-256 of the whole quote; report data compared on a hit);
 *  2. strict parse: TDX, v4/v5, ECDSA P-256, Intel's QE, exact section sizes, zeros only after the end,
 *     PCK chain in the quote (type 5);
 *  3. report data = the expected SHA-512 of the certificate claims;
 *  4. the caller's precheck on what the quote claims (role, tier, image and model allow-lists);
 *  5. the signatures that need no collateral: QE report → attestation key → TD report; PCK chain → Intel
 *     root; PCK leaf → QE report;
 *  6. only then collateral, for the platform (FMSPC, CA) the verified PCK certificate names, and the full
 *     DCAP verification with it (CRLs, TCB level, QE identity), then the TCB status policy.
 * Only successes are cached: entries are fixed-size, at most `cacheSize` of them.
 */
export class TdxAttestationVerifier implements AttestationVerifier {
  readonly kind = 'tdx';
  private readonly accept: Set<string>;
  private readonly now: () => number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly cacheSize: number;
  private readonly chains: PckChainCache;
  hits = 0;
  misses = 0;
  /** Quotes that reached the collateral stage (passed every check that needs none). */
  collateralLookups = 0;

  constructor(private readonly opts: TdxVerifierOptions) {
    this.accept = new Set(['UpToDate', ...(opts.acceptStatuses ?? [])]);
    this.now = opts.now ?? (() => Date.now() / 1000);
    this.cacheSize = opts.cacheSize ?? 1024;
    this.chains = new PckChainCache(opts.pckChainCacheSize ?? 256);
  }

  /** Entries in the verified-result cache and the PCK chain cache. */
  get cacheEntries(): { results: number; pckChains: number } {
    return { results: this.cache.size, pckChains: this.chains.size };
  }

  async verify(
    quote: Uint8Array,
    expectedReportData: Uint8Array,
    ctx: VerifyContext = {},
  ): Promise<VerifiedAttestation> {
    if (quote.length > MAX_TDX_QUOTE_BYTES) {
      throw new AttestationError(
        'quote_invalid',
        `TDX quote refused: ${quote.length} bytes, more than ${MAX_TDX_QUOTE_BYTES}`,
      );
    }
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
    const q = parseTdxQuote(quote); // structure only, no crypto
    checkReportData(q.reportData, expectedReportData);
    const claimed: VerifiedAttestation = { kind: 'tdx', tier: 'tee-cpu', imageHash: q.imageHash };
    ctx.precheck?.(claimed);
    const platform = verifyQuoteSignatures(q, now, this.chains);

    this.collateralLookups++;
    const collateral = await this.opts.collateral.get(platform);
    if (collateralFmspc(collateral) !== platform.fmspc) {
      throw new AttestationError(
        'quote_invalid',
        `TDX quote refused: collateral is for FMSPC ${collateralFmspc(collateral)}, the quote's platform is ${platform.fmspc}`,
      );
    }
    let v: TdxVerified;
    try {
      v = dcap.verify(Buffer.from(quote), collateral, Math.floor(now)) as unknown as TdxVerified;
    } catch (err) {
      const msg = (err as Error).message ?? String(err);
      const code = /expired/i.test(msg) ? 'collateral_expired' : 'quote_invalid';
      throw new AttestationError(code, `TDX quote refused: ${msg}`);
    }
    if (v.report.type !== q.reportType) {
      throw new AttestationError('not_tdx', `expected a TDX quote, got a ${v.report.type} report`);
    }
    if (!this.accept.has(v.status)) {
      const adv = v.advisory_ids?.length ? ` (advisories: ${v.advisory_ids.join(', ')})` : '';
      throw new AttestationError(
        'tcb_status',
        `TDX platform TCB status is ${v.status}${adv}; accepted: ${[...this.accept].join(', ')}`,
      );
    }
    // The same bytes dcap-qvl just verified; the image hash is over the TD 1.0 fields (a 1.5 report extends them).
    this.cache.set(key, {
      reportData: q.reportData,
      result: claimed,
      expiresAt: collateralNextUpdate(collateral),
    });
    while (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    return claimed;
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
