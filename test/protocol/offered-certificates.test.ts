import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { CERTIFICATES_PER_SESSION, OfferedCertificates } from '../../src/protocol/offered-certificates.ts';

/**
 * Offers carry a worker's certificate whole the first time on a session, then its hash. The proxy's and
 * the client's memories of one session hold the same certificates, so every hash the proxy sends names
 * one the client has; a hash it does not hold is the proxy's protocol violation.
 */
const cert = () => {
  const der = randomBytes(1500);
  return { der, hash: createHash('sha256').update(der).digest('hex') };
};

/** One offer as the proxy would send it for `c`, and what the client makes of it. */
function offerOver(proxy: OfferedCertificates, client: OfferedCertificates, c: ReturnType<typeof cert>) {
  const byHash = proxy.offeredBefore(c.hash, c.der);
  const msg = {
    type: 'request.offer' as const,
    requestId: 'r',
    coefficient: 1000,
    worker: 'w',
    ...(byHash ? { certificateHash: c.hash } : { certificate: c.der.toString('base64') }),
  };
  return { byHash, resolved: client.resolve(msg) };
}

describe('offered certificates', () => {
  test('whole the first time, by hash after; the client gets the same DER either way', () => {
    const [proxy, client, c] = [new OfferedCertificates(), new OfferedCertificates(), cert()];
    const first = offerOver(proxy, client, c);
    const second = offerOver(proxy, client, c);
    assert.equal(first.byHash, false);
    assert.equal(second.byHash, true);
    for (const { resolved } of [first, second]) {
      assert.deepEqual(resolved.der, c.der);
      assert.equal(resolved.hash.toString('hex'), c.hash);
    }
  });

  test('both sides forget the same ones: past the bound every hash sent is still known', () => {
    const [proxy, client] = [new OfferedCertificates(), new OfferedCertificates()];
    const certs = Array.from({ length: CERTIFICATES_PER_SESSION * 3 }, cert);
    for (let round = 0; round < 3; round++) {
      // Old and new certificates interleaved, so some are named by hash and some sent again whole.
      for (const [i, c] of certs.entries()) if ((i + round) % 3 !== 0) offerOver(proxy, client, c);
    }
  });

  test('a hash never sent whole on the session is refused as the proxy’s violation', () => {
    const client = new OfferedCertificates();
    const c = cert();
    assert.throws(
      () =>
        client.resolve({
          type: 'request.offer',
          requestId: 'r',
          coefficient: 1,
          worker: 'w',
          certificateHash: c.hash,
        }),
      (e: Error & { code?: string }) => e.code === 'offer_unknown_certificate',
    );
    assert.throws(
      () => client.resolve({ type: 'request.offer', requestId: 'r', coefficient: 1, worker: 'w' }),
      /not offered on this session/,
    );
  });
});
