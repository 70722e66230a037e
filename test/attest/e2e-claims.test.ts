import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createNodeCertificate, verifyPeerCertificate } from '../../src/attest/certificate.ts';
import { decodeClaims, encodeClaims } from '../../src/attest/claims.ts';
import { DevAttestationProvider, DevAttestationVerifier } from '../../src/attest/dev/index.ts';
import { generateE2EKey } from '../../src/attest/e2e-key.ts';
import type { AttestationError } from '../../src/attest/errors.ts';
import { generateNodeKey } from '../../src/attest/identity.ts';
import type { CertificateClaims } from '../../src/attest/types.ts';
import { E2E_SUITE } from '../../src/protocol/sealing/index.ts';

const dev = new DevAttestationVerifier();
const devOnly = new Map([[dev.kind, dev]]);

async function workerCert(e2e: unknown) {
  return createNodeCertificate({
    key: generateNodeKey(),
    provider: new DevAttestationProvider(),
    claims: {
      role: 'worker',
      protocol: { min: 1, max: 1 },
      models: ['m'],
      e2e: e2e as CertificateClaims['e2e'],
    },
  });
}

describe('the E2E key in the certificate claims', () => {
  test('a worker certificate with an E2E key verifies and exposes it', async () => {
    const key = await generateE2EKey();
    const cert = await workerCert({ suite: key.suite, publicKey: key.publicKeyHex });
    const peer = await verifyPeerCertificate(cert.certDer, { verifiers: devOnly });
    assert.deepEqual(peer.claims.e2e, { suite: E2E_SUITE, publicKey: key.publicKeyHex });
  });

  test('claims without it encode exactly as before (no e2e key in the bytes)', () => {
    const claims: CertificateClaims = {
      v: 1,
      role: 'worker',
      publicKey: 'ab'.repeat(32),
      attestation: 'dev',
      protocol: { min: 1, max: 1 },
      models: ['m'],
    };
    assert.equal(
      encodeClaims(claims).toString(),
      `{"v":1,"role":"worker","publicKey":"${'ab'.repeat(32)}","attestation":"dev","protocol":{"min":1,"max":1},"models":["m"]}`,
    );
    const withKey = encodeClaims({
      ...claims,
      e2e: { suite: E2E_SUITE, publicKey: 'cd'.repeat(32) },
    }).toString();
    assert.ok(
      withKey.endsWith(`"models":["m"],"e2e":{"suite":"${E2E_SUITE}","publicKey":"${'cd'.repeat(32)}"}}`),
    );
    assert.deepEqual(decodeClaims(Buffer.from(withKey)).e2e, {
      suite: E2E_SUITE,
      publicKey: 'cd'.repeat(32),
    });
  });

  const bad: [string, unknown][] = [
    ['a key of 31 bytes', { suite: E2E_SUITE, publicKey: 'ab'.repeat(31) }],
    ['a key of 33 bytes', { suite: E2E_SUITE, publicKey: 'ab'.repeat(33) }],
    ['a key in upper-case hex', { suite: E2E_SUITE, publicKey: 'AB'.repeat(32) }],
    ['an unknown suite', { suite: 'x25519-hkdf-sha256-chacha20poly1305', publicKey: 'ab'.repeat(32) }],
    ['no suite', { publicKey: 'ab'.repeat(32) }],
  ];
  for (const [what, e2e] of bad) {
    test(`${what} is refused as bad_claims`, async () => {
      const cert = await workerCert(e2e);
      await assert.rejects(
        verifyPeerCertificate(cert.certDer, { verifiers: devOnly }),
        (e: AttestationError) => {
          assert.equal(e.code, 'bad_claims', e.message);
          return true;
        },
      );
    });
  }
});
