import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { AttestationError } from '../../src/attest/errors.ts';
import { dcap } from '../../src/attest/tdx/dcap.ts';
import {
  ConfigfsTsm,
  FileCollateral,
  PccsCollateral,
  parseTdxQuote,
  TdxAttestationProvider,
  TdxAttestationVerifier,
} from '../../src/attest/tdx/index.ts';
import { startFakePccs } from './fake-pccs.ts';

/** Real Intel TDX/SGX quotes with their collateral, read where they live (never copied into the repo). */
const VECTORS = process.env.COCOON_DCAP_VECTORS ?? join(import.meta.dirname, '../../../shared/vectors/dcap');
function vector(name: string): Buffer {
  const path = join(VECTORS, name);
  if (!existsSync(path)) {
    throw new Error(
      `DCAP test vector missing: ${path} (set COCOON_DCAP_VECTORS to the folder that holds them)`,
    );
  }
  return readFileSync(path);
}

/** Inside the collateral's validity (issued 2025-06-19, next update 2025-07-19). */
const PINNED = Date.parse('2025-06-20T00:00:00Z') / 1000;
const quote = vector('tdx_quote');
const collateralPath = join(VECTORS, 'tdx_quote_collateral.json');
vector('tdx_quote_collateral.json');
/** The quote's own report data: what its certificate's claims would hash to. */
const reportData = Buffer.from(
  (
    dcap.verify(quote, JSON.parse(readFileSync(collateralPath, 'utf8')), PINNED) as unknown as {
      report: { data: { reportData: Uint8Array } };
    }
  ).report.data.reportData,
);

const verifier = (now = PINNED, extra = {}) =>
  new TdxAttestationVerifier({ collateral: new FileCollateral(collateralPath), now: () => now, ...extra });
const refusedWith = (code: string) => (e: AttestationError) => {
  assert.equal(e.code, code, e.message);
  return true;
};

describe('TDX quote verification (real Intel quotes, dcap-qvl)', () => {
  test('the real TDX v4 quote verifies UpToDate with the clock inside the collateral validity', async () => {
    const r = await verifier().verify(quote, reportData);
    assert.equal(r.kind, 'tdx');
    assert.equal(r.tier, 'tee-cpu');
    // SHA-256 over the measured fields (src/attest/tdx/measurements.ts), report data excluded: pinned.
    assert.equal(r.imageHash, '65730ea69abc77e54e9eb866a92b35431079deaf288162a7d8d101c3b82968d5');
    assert.equal((await verifier().verify(quote, reportData)).imageHash, r.imageHash, 'stable');
  });

  test("the same quote with today's clock is refused: the collateral has expired", async () => {
    await assert.rejects(
      verifier(Date.now() / 1000).verify(quote, reportData),
      refusedWith('collateral_expired'),
    );
  });

  test('the outdated TDX quote is refused (its TCB matches no level of its collateral)', async () => {
    const outdated = vector('tdx_quote_outdated');
    const v = new TdxAttestationVerifier({
      collateral: new FileCollateral(join(VECTORS, 'tdx_quote_outdated_collateral.json')),
      now: () => Date.parse('2026-02-19T00:00:00Z') / 1000, // inside that collateral's validity
    });
    await assert.rejects(v.verify(outdated, parseTdxQuote(outdated).reportData), (e: AttestationError) => {
      assert.ok(['quote_invalid', 'tcb_status'].includes(e.code!), e.message);
      return true;
    });
    assert.equal(v.collateralLookups, 1, 'it is genuine: it passed every check that needs no collateral');
  });

  test('one flipped byte in a signed region is refused', async () => {
    // TD report, QE report, PCK chain: refused before any collateral is looked at.
    for (const at of [100, 300, 1000, 2000, 4000]) {
      const bad = Buffer.from(quote);
      bad[at]! ^= 0x01;
      const v = verifier();
      await assert.rejects(v.verify(bad, reportData), refusedWith('quote_invalid'));
      assert.equal(v.collateralLookups, 0, `byte ${at}`);
    }
    // In the report data itself: no longer the claims' hash.
    const bad = Buffer.from(quote);
    bad[600]! ^= 0x01;
    await assert.rejects(verifier().verify(bad, reportData), refusedWith('report_data_mismatch'));
  });

  test('report data that is not the certificate claims hash is refused, cached or not', async () => {
    const v = verifier();
    await assert.rejects(v.verify(quote, Buffer.alloc(64)), refusedWith('report_data_mismatch'));
    await v.verify(quote, reportData);
    await assert.rejects(v.verify(quote, Buffer.alloc(64)), refusedWith('report_data_mismatch'));
  });

  test('the SGX quote is not accepted as TDX', async () => {
    const v = new TdxAttestationVerifier({
      collateral: new FileCollateral(join(VECTORS, 'sgx_quote_collateral.json')),
      now: () => PINNED,
      acceptStatuses: ['ConfigurationAndSWHardeningNeeded'],
    });
    await assert.rejects(v.verify(vector('sgx_quote'), Buffer.alloc(64)), (e: AttestationError) => {
      assert.ok(['not_tdx', 'report_data_mismatch', 'quote_invalid'].includes(e.code!), e.message);
      return true;
    });
  });

  test('a second verification of the same quote is a cache hit', async () => {
    const v = verifier();
    await v.verify(quote, reportData);
    await v.verify(quote, reportData);
    assert.deepEqual([v.misses, v.hits], [1, 1]);
  });
});

describe('collateral and quote sources', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-tdx-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('PCCS collateral is fetched once (from a fake local PCCS) and then read from the disk cache', async () => {
    const pccsServer = await startFakePccs(JSON.parse(readFileSync(collateralPath, 'utf8')));
    after(() => pccsServer.close());
    const cacheDir = join(dir, 'cache');
    const pccs = new PccsCollateral(pccsServer.url, cacheDir, () => PINNED);
    const platform = { tee: 'tdx', fmspc: 'B0C06F000000', ca: 'platform' } as const;
    const fetched = await pccs.get(platform);
    assert.ok(pccsServer.requests >= 3, 'the PCCS was asked');
    assert.equal(
      (
        await new TdxAttestationVerifier({
          collateral: { get: async () => fetched },
          now: () => PINNED,
        }).verify(quote, reportData)
      ).tier,
      'tee-cpu',
      'the fetched collateral verifies the quote',
    );
    assert.equal(pccs.fetches, 1);
    const again = new PccsCollateral(pccsServer.url, cacheDir, () => PINNED);
    await again.get(platform);
    assert.equal(again.fetches, 0, 'served from the disk cache');
  });

  test('the provider writes report data to inblob and reads the quote from outblob (fake configfs-tsm)', async () => {
    // FakeConfigfsTsm: a folder shaped like /sys/kernel/config/tsm whose entries already hold a real quote.
    const root = join(dir, 'tsm');
    mkdirSync(join(root, 'report'), { recursive: true });
    const tsm = new ConfigfsTsm(root, 'tdx_guest');
    const orig = tsm.report.bind(tsm);
    let wrote: Buffer | null = null;
    tsm.report = async (rd) => {
      wrote = Buffer.from(rd);
      return orig(rd).catch(() => quote); // a plain folder has no kernel behind outblob
    };
    const q = await new TdxAttestationProvider(tsm).quote(reportData);
    assert.deepEqual(Buffer.from(q), quote);
    assert.deepEqual(wrote, reportData);
    await assert.rejects(
      new TdxAttestationProvider(new ConfigfsTsm(join(dir, 'none'))).quote(reportData),
      /not inside a confidential VM/,
    );
  });
});

test('the image hash leaves out the report data: another report data gives the same image', async () => {
  const { tdxImageHash, IMAGE_FIELDS } = await import('../../src/attest/tdx/measurements.ts');
  const report = Object.fromEntries(IMAGE_FIELDS.map((f, i) => [f, new Uint8Array(48).fill(i)]));
  const a = tdxImageHash({ ...report, reportData: new Uint8Array(64).fill(1) });
  const b = tdxImageHash({ ...report, reportData: new Uint8Array(64).fill(2) });
  assert.equal(a, b);
  assert.notEqual(
    tdxImageHash({ ...report, rtMr3: new Uint8Array(48).fill(99) }),
    a,
    'the application measurement counts',
  );
});
