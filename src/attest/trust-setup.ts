import type { PeerTrust, TlsCredentials } from '../net/tls.ts';
import { type NodeRole, PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION } from '../protocol/version.ts';
import { createNodeCertificate, type NodeCertificate } from './certificate.ts';
import { DevAttestationProvider, DevAttestationVerifier } from './dev/index.ts';
import { AttestationError } from './errors.ts';
import type { NodeKey } from './identity.ts';
import { checkPeerPolicy, type PolicySource, StaticPolicy } from './policy.ts';
import {
  FileCollateral,
  PccsCollateral,
  type PccsLimits,
  TdxAttestationProvider,
  TdxAttestationVerifier,
} from './tdx/index.ts';
import {
  type AttestationProvider,
  type AttestationVerifier,
  type CertificateClaims,
  TRUST_TIER_RANK,
  type TrustTier,
  type VerifyContext,
} from './types.ts';

/**
 * The trust modes a daemon can run in. `dev` is the explicit, labelled mode for machines without a TEE:
 * it makes software quotes and accepts them. Hardware modes (tdx, sev-snp) plug in here.
 */
export type TrustMode = 'dev' | 'tdx';

/** Where a `tdx` node finds Intel's collateral: a PCCS (cached on disk) or a file (offline). */
export interface TdxTrustOptions {
  pccsUrl?: string;
  collateralFile?: string;
  collateralCacheDir: string;
  /** TCB statuses accepted besides UpToDate. */
  acceptTcbStatuses?: string[];
  /** Bounds of the PCCS collateral source (defaults: PCCS_DEFAULTS). */
  pccsLimits?: Partial<PccsLimits>;
  /** Test hook: the verifier's clock (Unix seconds), e.g. pinned inside a test collateral's validity. */
  now?: () => number;
}

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
 * Whom a node accepts on one link: these roles, at its minimum tier, within its allow-lists. The same
 * checks run twice: once on what the certificate and quote claim, before the quote's costly verification
 * (so a peer of the wrong role or an image off the list costs no signature check and no collateral), and
 * again on the verified identity once the handshake's checks are done (src/net/tls.ts).
 */
export function peerTrust(setup: TrustSetup, roles: NodeRole[]): PeerTrust {
  return {
    verifiers: gateVerifiers(setup.verifiers, roles, setup.minPeerTier, setup.policy),
    roles,
    minTier: setup.minPeerTier,
    policy: (peer) => checkPeerPolicy(peer, setup.policy.current()),
  };
}

/** Wraps each verifier so that the link's role, tier and allow-list checks run before its costly work. */
export function gateVerifiers(
  verifiers: ReadonlyMap<string, AttestationVerifier>,
  roles: readonly NodeRole[],
  minTier: TrustTier,
  policy: PolicySource,
): ReadonlyMap<string, AttestationVerifier> {
  const gated = new Map<string, AttestationVerifier>();
  for (const [kind, v] of verifiers) {
    gated.set(kind, {
      kind: v.kind,
      async verify(quote, reportData, ctx: VerifyContext = {}) {
        const claims = ctx.claims;
        if (claims && !roles.includes(claims.role)) {
          throw new AttestationError(
            'role_refused',
            `a ${claims.role} may not connect here (expects ${roles.join('/')})`,
          );
        }
        return v.verify(quote, reportData, {
          ...ctx,
          precheck: (claimed) => {
            ctx.precheck?.(claimed);
            if (TRUST_TIER_RANK[claimed.tier] < TRUST_TIER_RANK[minTier]) {
              throw new AttestationError(
                'trust_tier_too_low',
                `peer trust tier '${claimed.tier}' is below the required '${minTier}'`,
              );
            }
            if (claims) {
              const peer = { role: claims.role, publicKey: claims.publicKey, claims, attestation: claimed };
              checkPeerPolicy(
                { ...peer, notAfter: new Date(0), certificate: Buffer.alloc(0) },
                policy.current(),
              );
            }
          },
        });
      },
    });
  }
  return gated;
}

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
  return mode === 'dev' ? 'dev (software attestation, no TEE)' : `${mode} (hardware attestation)`;
}

/**
 * `tdx`: hardware quotes only, made and accepted. `dev`: software quotes, labelled; given where Intel's
 * collateral comes from, a dev node also verifies TDX quotes — a client on a laptop has no TEE of its own,
 * but must still check the TDX workers it is offered (and a TDX quote still proves only `tee-cpu`).
 */
export function trustSetup(mode: TrustMode, tdx?: TdxTrustOptions): TrustSetup {
  switch (mode) {
    case 'tdx': {
      if (!tdx || (!tdx.pccsUrl && !tdx.collateralFile)) {
        throw new Error('trust tdx needs pccsUrl or collateralFile (where Intel collateral comes from)');
      }
      const verifier = tdxVerifier(tdx);
      // Hardware only: no dev verifier, so a software quote is refused whatever its claims.
      return {
        mode,
        provider: new TdxAttestationProvider(),
        verifiers: new Map([[verifier.kind, verifier]]),
        minPeerTier: 'tee-cpu',
        policy: new StaticPolicy(),
      };
    }
    case 'dev': {
      const verifier = new DevAttestationVerifier();
      const verifiers = new Map<string, AttestationVerifier>([[verifier.kind, verifier]]);
      if (tdx && (tdx.pccsUrl || tdx.collateralFile)) {
        const hardware = tdxVerifier(tdx);
        verifiers.set(hardware.kind, hardware);
      }
      return {
        mode,
        provider: new DevAttestationProvider(),
        verifiers,
        minPeerTier: 'dev',
        policy: new StaticPolicy(),
      };
    }
  }
}

function tdxVerifier(tdx: TdxTrustOptions): TdxAttestationVerifier {
  const collateral = tdx.collateralFile
    ? new FileCollateral(tdx.collateralFile)
    : new PccsCollateral(tdx.pccsUrl!, tdx.collateralCacheDir, tdx.now, tdx.pccsLimits);
  return new TdxAttestationVerifier({
    collateral,
    ...(tdx.now ? { now: tdx.now } : {}),
    ...(tdx.acceptTcbStatuses ? { acceptStatuses: tdx.acceptTcbStatuses } : {}),
  });
}

/** Makes this node's RA-TLS certificate and the TLS credentials to present it. */
export async function makeCredentials(
  key: NodeKey,
  role: NodeRole,
  provider: AttestationProvider,
  models?: string[],
  validityMs = CERT_VALIDITY_MS,
  extra: Pick<CertificateClaims, 'e2e'> = {},
): Promise<{ cert: NodeCertificate; credentials: TlsCredentials }> {
  const cert = await createNodeCertificate({
    key,
    provider,
    validityMs,
    claims: {
      role,
      protocol: { min: PROTOCOL_MIN_VERSION, max: PROTOCOL_MAX_VERSION },
      ...(models ? { models } : {}),
      ...extra,
    },
  });
  return { cert, credentials: { privateKeyPem: key.privateKeyPem, certPem: cert.certPem } };
}
