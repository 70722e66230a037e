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
  /** How long this node's certificates are valid; they are re-issued at 3/4 of it. */
  certValidityMs?: number;
}

export const CERT_VALIDITY_MS = 24 * 3600_000;

/**
 * Re-issues this node's certificate (a fresh quote over fresh claims) at 3/4 of its validity, for as
 * long as the node runs; `apply` hands it to the listeners and dialers. Returns a stop function.
 */
export function rotateCredentials(
  issue: () => Promise<TlsCredentials>,
  apply: (credentials: TlsCredentials) => void,
  validityMs: number,
  onError: (err: unknown) => void,
): () => void {
  const timer = setInterval(() => issue().then(apply, onError), Math.max(50, Math.floor(validityMs * 0.75)));
  timer.unref();
  return () => clearInterval(timer);
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
  validityMs = CERT_VALIDITY_MS,
): Promise<{ cert: NodeCertificate; credentials: TlsCredentials }> {
  const cert = await createNodeCertificate({
    key,
    provider,
    validityMs,
    claims: {
      role,
      protocol: { min: PROTOCOL_MIN_VERSION, max: PROTOCOL_MAX_VERSION },
      ...(models ? { models } : {}),
    },
  });
  return { cert, credentials: { privateKeyPem: key.privateKeyPem, certPem: cert.certPem } };
}
