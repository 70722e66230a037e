/**
 * Attack: oversized certificates and extensions. A stranger presents a certificate swollen with a huge
 * extension, too many extensions, a repeated claims extension, or a huge dev "quote", hoping the node
 * parses and hashes it all (or keeps it). Expected: refused on size and structure before the claims are
 * decoded or any quote is looked at (`bad_certificate`, `bad_quote`), no PCCS request.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { OID_ATTESTATION_CLAIMS } from '../../src/attest/oids.ts';
import { x509 } from '../../src/attest/x509.ts';
import { dialAsStranger, startTdxVictim, strangerProvider } from '../attest/stranger.ts';
import { tdxQuote } from '../attest/vectors.ts';

describe('attack: oversized certificates and extensions', () => {
  test('a 70 KB extension, 20 extensions, a repeated claims extension: refused before the quote is read', async () => {
    const victim = await startTdxVictim();
    after(() => victim.close());
    const quote = strangerProvider(() => tdxQuote);
    const big = [new x509.Extension('1.2.3.4', false, new Uint8Array(70 * 1024))];
    const many = Array.from(
      { length: 20 },
      (_, i) => new x509.Extension(`1.2.3.${i}`, false, new Uint8Array(8)),
    );
    const twice = [new x509.Extension(OID_ATTESTATION_CLAIMS, true, Buffer.from('{}'))];
    for (const extra of [big, many, twice]) {
      const code = await dialAsStranger(victim, quote, { extra });
      assert.ok(code === 'bad_certificate' || code === 'tls_error', String(code));
    }
    assert.equal(victim.verifier.misses + victim.verifier.hits, 0, 'the quote was never looked at');
    assert.equal(victim.pccs.requests, 0);
  });

  test('a TDX "quote" of 40 KB is refused on its size, before it is parsed', async () => {
    const victim = await startTdxVictim();
    after(() => victim.close());
    const code = await dialAsStranger(
      victim,
      strangerProvider(() => Buffer.concat([tdxQuote, Buffer.alloc(40 * 1024)])),
    );
    assert.equal(code, 'quote_invalid');
    assert.equal(victim.verifier.misses, 0, 'refused before the cache lookup and the parse');
    assert.equal(victim.pccs.requests, 0);
  });
});
