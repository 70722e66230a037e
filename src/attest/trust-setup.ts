import type { TlsCredentials } from '../net/tls.ts';
import { type NodeRole, PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION } from '../protocol/version.ts';
import { createNodeCertificate, type NodeCertificate } from './certificate.ts';
import { DevAttestationProvider, DevAttestationVerifier } from './dev/index.ts';
import type { NodeKey } from './identity.ts';
import { type PolicySource, StaticPolicy } from './policy.ts';
import type { AttestationProvider, AttestationVerifier, TrustTier } from './types.ts';

/**
 * The trust modes a daemon can run in. `dev` is the explicit, labelled mode for machines without a TEE:
 * it makes software quotes and accepts them. Hardware modes (tdx, sev-snp) plug in here.
 */
export type TrustMode = 'dev';

export interface TrustSetup {
  mode: TrustMode;
  provider: AttestationProvider;
  verifiers: ReadonlyMap<string, AttestationVerifier>;
  /** Lowest tier this node accepts from peers. */
  minPeerTier: TrustTier;
  /** Image and model allow-lists (root contract or config); unrestricted unless configured. */
  policy: PolicySource;
}

/** How a trust mode is shown to people (stats pages, start-up lines): dev mode always says what it is. */
export function trustLabel(mode: TrustMode): string {
  return mode === 'dev' ? 'dev (software attestation, no TEE)' : mode;
}

export function trustSetup(mode: TrustMode): TrustSetup {
  switch (mode) {
    case 'dev': {
      const verifier = new DevAttestationVerifier();
      return {
        mode,
        provider: new DevAttestationProvider(),
        verifiers: new Map([[verifier.kind, verifier]]),
        minPeerTier: 'dev',
        policy: new StaticPolicy(),
      };
    }
  }
}

/** Makes this node's RA-TLS certificate and the TLS credentials to present it. */
export async function makeCredentials(
  key: NodeKey,
  role: NodeRole,
  provider: AttestationProvider,
  models?: string[],
): Promise<{ cert: NodeCertificate; credentials: TlsCredentials }> {
  const cert = await createNodeCertificate({
    key,
    provider,
    claims: {
      role,
      protocol: { min: PROTOCOL_MIN_VERSION, max: PROTOCOL_MAX_VERSION },
      ...(models ? { models } : {}),
    },
  });
  return { cert, credentials: { privateKeyPem: key.privateKeyPem, certPem: cert.certPem } };
}
