/**
 * Attack: hammering the PCCS through the node. Many connections whose quotes need collateral arrive while
 * the PCCS is slow or failing (or distinct platforms at once), hoping the node opens a fetch per connection
 * and hammers the PCCS (or piles up waiting fetches). Expected: one fetch in flight per platform, a global
 * cap with a bounded queue (beyond it, refused at once), and after a failure a backoff during which the
 * platform is not fetched again (`collateral_unavailable`); once the PCCS is back, one fetch serves all.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { dialAsStranger, startTdxVictim, strangerProvider } from '../attest/stranger.ts';
import { tdxQuote, tdxReportData } from '../attest/vectors.ts';

describe('attack: hammering the PCCS', () => {
  test('100 verifications of a genuine quote while the PCCS hangs, then fails: at most one fetch at a time, none during backoff', async () => {
    const victim = await startTdxVictim({ pccsLimits: { backoffInitialMs: 60_000, fetchTimeoutMs: 300 } });
    after(() => victim.close());
    const gated = victim.trust.verifiers.get('tdx')!;
    victim.pccs.mode = 'hang';
    const codes = await Promise.all(
      Array.from({ length: 50 }, () =>
        gated.verify(tdxQuote, tdxReportData).then(
          () => 'ok',
          (e) => e.code,
        ),
      ),
    );
    assert.deepEqual([...new Set(codes)], ['collateral_unavailable'], 'the hung fetch timed out for all');
    assert.equal(victim.pccs.tcbRequests, 1, 'one fetch for 50 concurrent verifications');
    victim.pccs.mode = 'fail';
    for (let i = 0; i < 50; i++) {
      await assert.rejects(
        gated.verify(tdxQuote, tdxReportData),
        (e: { code: string }) => e.code === 'collateral_unavailable',
      );
    }
    assert.equal(victim.pccs.tcbRequests, 1, 'no fetch during the backoff');
    // Strangers' quotes, meanwhile, never reach the collateral stage at all.
    await dialAsStranger(
      victim,
      strangerProvider(() => Buffer.concat([tdxQuote, Buffer.from('x')])),
    );
    assert.equal(victim.pccs.tcbRequests, 1);
    assert.deepEqual(victim.cacheFiles(), []);
  });

  test('once the PCCS answers, one fetch serves every connection', async () => {
    const victim = await startTdxVictim();
    after(() => victim.close());
    const gated = victim.trust.verifiers.get('tdx')!;
    const results = await Promise.all(
      Array.from({ length: 50 }, () => gated.verify(tdxQuote, tdxReportData)),
    );
    assert.equal(results.length, 50);
    assert.equal(victim.pccs.tcbRequests, 1);
    assert.equal(victim.cacheFiles().length, 1);
  });
});
