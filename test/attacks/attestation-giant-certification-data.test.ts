/**
 * Attack: giant or lying certification data. A stranger's quote keeps the public quote's header and TD
 * report (with its own claims' hash as report data) but swells the certification-data section — a PCK
 * "chain" padded far beyond three certificates, extra certificates, sizes that claim more bytes than are
 * there — hoping the node parses megabytes of PEM and X.509, or fetches collateral for whatever the
 * section names. Expected: refused on the quote's structure (`quote_invalid`), before any certificate is
 * parsed, with no PCCS request and nothing cached.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { MAX_TDX_QUOTE_BYTES, parseTdxQuote } from '../../src/attest/tdx/index.ts';
import { dialAsStranger, startTdxVictim, strangerProvider } from '../attest/stranger.ts';
import { tdxQuote } from '../attest/vectors.ts';

const real = parseTdxQuote(tdxQuote);
const SIGNED = real.signed.length; // 632
const AUTH_SIZE_AT = SIGNED;
const OUTER_SIZE_AT = SIGNED + 4 + 64 + 64 + 2;
const CHAIN_AT = tdxQuote.indexOf('-----BEGIN CERTIFICATE-----');
const INNER_SIZE_AT = CHAIN_AT - 4;
const END = SIGNED + 4 + tdxQuote.readUInt32LE(AUTH_SIZE_AT);
const chainText = tdxQuote.subarray(CHAIN_AT, END);

/** The public quote with another PCK chain section, every size field made to match it. */
function withChain(chain: Buffer, reportData: Uint8Array): Buffer {
  const head = Buffer.from(tdxQuote.subarray(0, CHAIN_AT));
  Buffer.from(reportData).copy(head, 48 + 520);
  const delta = chain.length - chainText.length;
  head.writeUInt32LE(tdxQuote.readUInt32LE(AUTH_SIZE_AT) + delta, AUTH_SIZE_AT);
  head.writeUInt32LE(tdxQuote.readUInt32LE(OUTER_SIZE_AT) + delta, OUTER_SIZE_AT);
  head.writeUInt32LE(chain.length, INNER_SIZE_AT);
  return Buffer.concat([head, chain]);
}

const leafPem = chainText.subarray(0, chainText.indexOf('-----END CERTIFICATE-----') + 25);

describe('attack: giant certification data in a quote', () => {
  test('swollen, over-long or lying certification data is refused on structure: no X.509 parsed, no fetch', async () => {
    const victim = await startTdxVictim();
    after(() => victim.close());
    const cases: [string, (rd: Uint8Array) => Buffer][] = [
      [
        'a PCK chain padded to 10 KB',
        (rd) => withChain(Buffer.concat([chainText, Buffer.alloc(10_000, 0x20)]), rd),
      ],
      ['four certificates', (rd) => withChain(Buffer.concat([leafPem, Buffer.from('\n'), chainText]), rd)],
      [
        'garbage between certificates',
        (rd) => withChain(Buffer.concat([leafPem, Buffer.from('junk'), chainText]), rd),
      ],
      [
        'a quote beyond the size bound',
        (rd) => withChain(Buffer.concat([chainText, Buffer.alloc(MAX_TDX_QUOTE_BYTES, 0x20)]), rd),
      ],
      [
        'a section claiming 4 GB',
        (rd) => {
          const q = withChain(chainText, rd);
          q.writeUInt32LE(0xffffffff, INNER_SIZE_AT);
          return q;
        },
      ],
      [
        'QE auth data claiming 64 KB',
        (rd) => {
          const q = withChain(chainText, rd);
          q.writeUInt16LE(0xffff, SIGNED + 4 + 128 + 6 + 384 + 64);
          return q;
        },
      ],
    ];
    for (const [name, make] of cases) {
      const code = await dialAsStranger(victim, strangerProvider(make));
      // The 16 KB+ quote makes a certificate the node refuses on its own size, or the quote's.
      assert.ok(code === 'quote_invalid' || code === 'bad_certificate', `${name}: ${code}`);
    }
    assert.equal(victim.pccs.requests, 0);
    assert.deepEqual(victim.cacheFiles(), []);
    assert.deepEqual(
      victim.verifier.cacheEntries,
      { results: 0, pckChains: 0 },
      'no PCK chain was even verified',
    );
    assert.equal(victim.verifier.collateralLookups, 0);
  });

  test('the same section sizes, honestly filled, still parse (the check is not over-strict)', () => {
    assert.equal(parseTdxQuote(withChain(chainText, real.reportData)).pckChain.length, 3);
  });
});
