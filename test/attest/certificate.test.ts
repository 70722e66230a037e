import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  createNodeCertificate,
  MAX_CERTIFICATE_BYTES,
  verifyPeerCertificate,
} from '../../src/attest/certificate.ts';
import { DevAttestationProvider, DevAttestationVerifier } from '../../src/attest/dev/index.ts';
import type { AttestationError } from '../../src/attest/errors.ts';
import { generateNodeKey } from '../../src/attest/identity.ts';
import { OID_ATTESTATION_CLAIMS } from '../../src/attest/oids.ts';
import { StaticPolicy } from '../../src/attest/policy.ts';
import { gateVerifiers } from '../../src/attest/trust-setup.ts';
import type { AttestationProvider, AttestationVerifier, VerifyContext } from '../../src/attest/types.ts';
import { x509 } from '../../src/attest/x509.ts';

const refusedWith = (code: string) => (e: AttestationError) => {
  assert.equal(e.code, code, e.message);
  return true;
};
const dev = new DevAttestationVerifier();
const devOnly = new Map([[dev.kind, dev]]);

async function cert(opts: {
  provider?: AttestationProvider;
  role?: 'client' | 'proxy' | 'worker';
  extra?: x509.Extension[];
}) {
  return (
    await createNodeCertificate({
      key: generateNodeKey(),
      provider: opts.provider ?? new DevAttestationProvider(),
      claims: { role: opts.role ?? 'client', protocol: { min: 1, max: 1 } },
      ...(opts.extra ? { extraExtensions: opts.extra } : {}),
    })
  ).certDer;
}

/** A verifier that records what reached it and hands the caller's precheck a claimed image. */
function spyVerifier(kind: string, tier: 'dev' | 'tee-cpu', imageHash = 'ab'.repeat(32)) {
  const spy = {
    calls: 0,
    prechecked: 0,
    costly: 0,
    v: {
      kind,
      async verify(_q: Uint8Array, _rd: Uint8Array, ctx: VerifyContext = {}) {
        spy.calls++;
        const claimed = { kind, tier, imageHash };
        ctx.precheck?.(claimed);
        spy.prechecked++;
        spy.costly++; // where signatures and collateral would be
        return claimed;
      },
    } satisfies AttestationVerifier,
  };
  return spy;
}

describe('certificate bounds, checked before parsing or verifying', () => {
  test(`a certificate larger than ${MAX_CERTIFICATE_BYTES} bytes is refused on its size`, async () => {
    const der = await cert({ extra: [new x509.Extension('1.2.3.4', false, new Uint8Array(70 * 1024))] });
    await assert.rejects(verifyPeerCertificate(der, { verifiers: devOnly }), refusedWith('bad_certificate'));
  });

  test('more than 16 extensions, or one repeated, is refused', async () => {
    const many = Array.from(
      { length: 16 },
      (_, i) => new x509.Extension(`1.2.3.${i}`, false, new Uint8Array(1)),
    );
    await assert.rejects(
      verifyPeerCertificate(await cert({ extra: many }), { verifiers: devOnly }),
      refusedWith('bad_certificate'),
    );
    const twice = [new x509.Extension(OID_ATTESTATION_CLAIMS, true, Buffer.from('{}'))];
    await assert.rejects(
      verifyPeerCertificate(await cert({ extra: twice }), { verifiers: devOnly }),
      refusedWith('bad_certificate'),
    );
  });

  test('an oversized dev quote is refused before it is parsed', async () => {
    const big: AttestationProvider = { kind: 'dev', quote: async () => Buffer.alloc(20_000, 0x20) };
    await assert.rejects(
      verifyPeerCertificate(await cert({ provider: big }), { verifiers: devOnly }),
      refusedWith('bad_quote'),
    );
  });

  test('a kind this node does not accept is refused before the self-signature or the quote is checked', async () => {
    const spy = spyVerifier('tdx', 'tee-cpu');
    await assert.rejects(
      verifyPeerCertificate(await cert({}), { verifiers: new Map([['tdx', spy.v]]) }),
      refusedWith('attestation_kind_refused'),
    );
    assert.equal(spy.calls, 0);
  });
});

describe('link checks before the quote’s costly verification (peerTrust gate)', () => {
  test('a role not allowed on the link is refused before the verifier runs', async () => {
    const spy = spyVerifier('dev', 'dev');
    const gated = gateVerifiers(new Map([['dev', spy.v]]), ['worker'], 'dev', new StaticPolicy());
    await assert.rejects(
      verifyPeerCertificate(await cert({ role: 'client' }), { verifiers: gated }),
      refusedWith('role_refused'),
    );
    assert.equal(spy.calls, 0);
  });

  test('a tier below the minimum, or an image off the allow-list, is refused in the precheck', async () => {
    const low = spyVerifier('dev', 'dev');
    await assert.rejects(
      verifyPeerCertificate(await cert({}), {
        verifiers: gateVerifiers(new Map([['dev', low.v]]), ['client'], 'tee-cpu', new StaticPolicy()),
      }),
      refusedWith('trust_tier_too_low'),
    );
    assert.deepEqual([low.calls, low.costly], [1, 0]);
    const off = spyVerifier('dev', 'dev', 'cd'.repeat(32));
    const policy = StaticPolicy.fromConfig({ allowedWorkerImages: ['ab'.repeat(32)] });
    await assert.rejects(
      verifyPeerCertificate(await cert({ role: 'worker' }), {
        verifiers: gateVerifiers(new Map([['dev', off.v]]), ['worker'], 'dev', policy),
      }),
      refusedWith('image_not_allowed'),
    );
    assert.deepEqual([off.calls, off.costly], [1, 0]);
    const on = spyVerifier('dev', 'dev', 'ab'.repeat(32));
    const peer = await verifyPeerCertificate(await cert({ role: 'worker' }), {
      verifiers: gateVerifiers(new Map([['dev', on.v]]), ['worker'], 'dev', policy),
    });
    assert.equal(peer.role, 'worker');
    assert.equal(on.costly, 1);
  });

  test('the real dev verifier passes the gate and still verifies', async () => {
    const gated = gateVerifiers(devOnly, ['client'], 'dev', new StaticPolicy());
    const peer = await verifyPeerCertificate(await cert({}), { verifiers: gated });
    assert.equal(peer.attestation.tier, 'dev');
  });
});
