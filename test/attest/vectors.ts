import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Collateral } from '../../src/attest/tdx/collateral.ts';
import { dcap } from '../../src/attest/tdx/dcap.ts';

/** Real Intel TDX/SGX quotes with their collateral, read where they live (never copied into the repo). */
export const VECTORS =
  process.env.COCOON_DCAP_VECTORS ?? join(import.meta.dirname, '../../../shared/vectors/dcap');

export function vector(name: string): Buffer {
  const path = join(VECTORS, name);
  if (!existsSync(path)) {
    throw new Error(
      `DCAP test vector missing: ${path} (set COCOON_DCAP_VECTORS to the folder that holds them)`,
    );
  }
  return readFileSync(path);
}

/** Inside the collateral's validity (issued 2025-06-19, next update 2025-07-19). */
export const PINNED = Date.parse('2025-06-20T00:00:00Z') / 1000;
/** The real TDX v4 quote (zero-padded to 5006 bytes, as configfs-tsm hands them out). */
export const tdxQuote = vector('tdx_quote');
export const collateralPath = join(VECTORS, 'tdx_quote_collateral.json');
export const tdxCollateral = JSON.parse(vector('tdx_quote_collateral.json').toString('utf8')) as Collateral;
/** The quote's own report data: what its certificate's claims would hash to. */
export const tdxReportData = Buffer.from(
  (
    dcap.verify(tdxQuote, tdxCollateral, PINNED) as unknown as {
      report: { data: { reportData: Uint8Array } };
    }
  ).report.data.reportData,
);
/** The platform the quote's PCK certificate names. */
export const TDX_FMSPC = 'B0C06F000000';
