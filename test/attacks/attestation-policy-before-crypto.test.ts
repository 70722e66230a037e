/**
 * Attack: making the node verify what it would refuse anyway. A stranger of the wrong role for the port,
 * of a kind the node does not accept, or running an image off the allow-list, presents a quote, hoping the
 * node first runs the costly DCAP verification (signatures, collateral fetch) and only then refuses.
 * Expected: the role, kind, tier and allow-list checks run on what the certificate and quote claim before
 * any signature or collateral; refused with their usual codes, with no PCCS request and no quote parsed
 * (role, kind) or no signature checked (image).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { DevAttestationProvider } from '../../src/attest/dev/index.ts';
import { StaticPolicy } from '../../src/attest/policy.ts';
import { dialAsStranger, startTdxVictim, strangerProvider } from '../attest/stranger.ts';
import { tdxQuote, tdxReportData } from '../attest/vectors.ts';

describe('attack: policy checks before costly verification', () => {
  test('a wrong role, or a dev quote on a tdx node, is refused before the quote is parsed', async () => {
    const victim = await startTdxVictim({ roles: ['worker'] });
    after(() => victim.close());
    assert.equal(
      await dialAsStranger(
        victim,
        strangerProvider(() => tdxQuote),
        { role: 'client' },
      ),
      'role_refused',
    );
    assert.equal(await dialAsStranger(victim, new DevAttestationProvider()), 'attestation_kind_refused');
    assert.equal(victim.verifier.misses + victim.verifier.hits, 0);
    assert.equal(victim.pccs.requests, 0);
  });

  test('a genuine quote of an image off the allow-list costs no signature check and no collateral', async () => {
    const victim = await startTdxVictim({
      policy: StaticPolicy.fromConfig({ allowedWorkerImages: ['00'.repeat(32)] }),
    });
    after(() => victim.close());
    const gated = victim.trust.verifiers.get('tdx')!;
    const claims = {
      v: 1 as const,
      role: 'worker' as const,
      publicKey: '00'.repeat(32),
      attestation: 'tdx',
      protocol: { min: 1, max: 1 },
    };
    for (let i = 0; i < 20; i++) {
      await assert.rejects(
        gated.verify(tdxQuote, tdxReportData, { claims }),
        (e: { code: string }) => e.code === 'image_not_allowed',
      );
    }
    assert.deepEqual(victim.verifier.cacheEntries, { results: 0, pckChains: 0 });
    assert.equal(victim.verifier.collateralLookups, 0);
    assert.equal(victim.pccs.requests, 0);
  });
});
