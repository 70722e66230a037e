/**
 * Attack: PCCS fetches by strangers. An unauthenticated stranger connects to a `tdx` node with a
 * certificate carrying the public quote of some genuine TD — plus junk bytes, as is, or with its own
 * claims' hash spliced into the report data — hoping each connection costs the node a PCCS fetch and a
 * new collateral cache file (the cache used to be keyed by the quote's tail, and collateral was fetched
 * before the report data was checked). Expected: every such connection is refused on the cheap checks;
 * zero PCCS requests, zero cache files, nothing in any cache; an honest quote still verifies, costs one
 * fetch, and is then served from the caches (memory, and disk after a restart).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { trustSetup } from '../../src/attest/trust-setup.ts';
import { dialAsStranger, startTdxVictim, strangerProvider } from '../attest/stranger.ts';
import { PINNED, tdxQuote, tdxReportData } from '../attest/vectors.ts';

const REPORT_DATA_AT = 48 + 520; // header + the TD report's fields before REPORTDATA

describe('attack: PCCS fetches by strangers', () => {
  test('strangers with the public quote (junk appended, as is, or re-bound to their claims) cost no fetch, no file, no cache entry', async () => {
    const victim = await startTdxVictim();
    after(() => victim.close());
    const codes: (string | undefined)[] = [];
    for (let i = 0; i < 10; i++) {
      // The public quote + junk bytes (another tail each time: the old cache key).
      codes.push(
        await dialAsStranger(
          victim,
          strangerProvider(() => Buffer.concat([tdxQuote, randomBytes(16 + i)])),
          {},
        ),
      );
      // The public quote as is: its report data is some other certificate's claims hash.
      codes.push(
        await dialAsStranger(
          victim,
          strangerProvider(() => tdxQuote),
        ),
      );
      // The public quote with the stranger's own claims hash written into its report data.
      codes.push(
        await dialAsStranger(
          victim,
          strangerProvider((rd) => {
            const q = Buffer.from(tdxQuote);
            Buffer.from(rd).copy(q, REPORT_DATA_AT);
            return q;
          }),
        ),
      );
    }
    assert.deepEqual(
      [...new Set(codes)].sort(),
      ['quote_invalid', 'report_data_mismatch'],
      `refusal codes: ${codes.join(', ')}`,
    );
    assert.equal(codes.length, 30);
    assert.equal(victim.pccs.requests, 0, 'no PCCS request');
    assert.deepEqual(victim.cacheFiles(), [], 'no collateral cache file');
    assert.deepEqual(victim.verifier.cacheEntries, { results: 0, pckChains: 0 }, 'nothing cached');
    assert.equal(victim.verifier.collateralLookups, 0);

    // An honest quote, through the same gated verifier the handshake uses: one fetch, then cached.
    const gated = victim.trust.verifiers.get('tdx')!;
    const ok = await gated.verify(tdxQuote, tdxReportData);
    assert.equal(ok.tier, 'tee-cpu');
    assert.equal(victim.pccs.tcbRequests, 1, 'one collateral fetch');
    assert.equal(victim.cacheFiles().length, 1, 'one cache file, for the platform');
    const requests = victim.pccs.requests;
    for (let i = 0; i < 5; i++) await gated.verify(tdxQuote, tdxReportData);
    assert.equal(victim.verifier.hits, 5, 'served from the result cache');
    assert.equal(victim.pccs.requests, requests, 'no further PCCS request');

    // A restart (a new verifier on the same cache dir) reads the collateral from disk.
    const restarted = trustSetup('tdx', {
      pccsUrl: victim.pccs.url,
      collateralCacheDir: victim.cacheDir,
      now: () => PINNED,
    });
    await restarted.verifiers.get('tdx')!.verify(tdxQuote, tdxReportData);
    assert.equal(victim.pccs.requests, requests, 'served from the disk cache');

    // And strangers still cost nothing once the platform's collateral is cached.
    await dialAsStranger(
      victim,
      strangerProvider(() => Buffer.concat([tdxQuote, randomBytes(32)])),
    );
    assert.equal(victim.pccs.requests, requests);
    assert.equal(victim.cacheFiles().length, 1);
    assert.equal(victim.verifier.cacheEntries.results, 1);
  });
});
