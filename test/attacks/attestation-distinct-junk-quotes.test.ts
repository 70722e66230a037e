/**
 * Attack: many distinct junk quotes. A stranger sends a stream of quotes, each different (random bytes
 * flipped anywhere in the public quote, truncated, extended; its own claims' hash as report data), so that
 * no cache of refusals can help and each one is new work, hoping every one costs a PCCS fetch, a disk file
 * or a cache entry. Expected: each refused on the cheap checks; no PCCS request, no file, no cache entry.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { dialAsStranger, startTdxVictim, strangerProvider } from '../attest/stranger.ts';
import { tdxQuote } from '../attest/vectors.ts';

function junk(rd: Uint8Array): Buffer {
  let q = Buffer.from(tdxQuote);
  Buffer.from(rd).copy(q, 48 + 520);
  switch (randomInt(4)) {
    case 0:
      for (let i = 0; i < 1 + randomInt(8); i++) q[randomInt(q.length)]! ^= 1 + randomInt(255);
      break;
    case 1:
      q = q.subarray(0, randomInt(q.length));
      break;
    case 2:
      q = Buffer.concat([q, randomBytes(1 + randomInt(64))]);
      break;
    default:
      q = randomBytes(randomInt(6000));
  }
  return q;
}

describe('attack: many distinct junk quotes', () => {
  test('300 distinct junk quotes (30 over TLS): all refused cheaply, nothing fetched, written or cached', async () => {
    const victim = await startTdxVictim();
    after(() => victim.close());
    const codes = new Map<string, number>();
    const count = (c: string | undefined) => codes.set(String(c), (codes.get(String(c)) ?? 0) + 1);
    for (let i = 0; i < 30; i++) count(await dialAsStranger(victim, strangerProvider(junk)));
    // The rest straight into the gated verifier the handshake calls (with a stranger's claims).
    const gated = victim.trust.verifiers.get('tdx')!;
    const claims = {
      v: 1 as const,
      role: 'worker' as const,
      publicKey: '00'.repeat(32),
      attestation: 'tdx',
      protocol: { min: 1, max: 1 },
    };
    for (let i = 0; i < 270; i++) {
      const rd = randomBytes(64);
      await gated.verify(junk(rd), rd, { claims }).then(
        () => count('accepted'),
        (e) => count(e.code),
      );
    }
    assert.equal(codes.get('accepted'), undefined);
    for (const code of codes.keys()) {
      assert.ok(
        ['quote_invalid', 'report_data_mismatch', 'not_tdx'].includes(code),
        `${code}: ${[...codes]}`,
      );
    }
    assert.equal(victim.pccs.requests, 0);
    assert.deepEqual(victim.cacheFiles(), []);
    assert.equal(victim.verifier.cacheEntries.results, 0);
    assert.equal(victim.verifier.collateralLookups, 0);
  });
});
