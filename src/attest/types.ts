import type { E2ESuiteId } from '../protocol/sealing/suite.ts';
import type { NodeRole } from '../protocol/version.ts';

/**
 * What a verified peer proved about itself. `tee-gpu` and `tee-cpu` come from hardware quotes;
 * `dev` is a software attestation for machines without a TEE and is labelled so everywhere.
 */
export type TrustTier = 'tee-gpu' | 'tee-cpu' | 'dev';
export const TRUST_TIER_RANK: Record<TrustTier, number> = { dev: 0, 'tee-cpu': 1, 'tee-gpu': 2 };

/** The statements a node makes in its certificate; REPORTDATA of its quote is SHA-512 of their encoding. */
export interface CertificateClaims {
  v: 1;
  role: NodeRole;
  /** Raw Ed25519 public key of the TLS certificate, hex. Binds the quote to this TLS key. */
  publicKey: string;
  /** Which attestation provider made the quote (selects the verifier). */
  attestation: string;
  protocol: { min: number; max: number };
  /** Models served (workers). */
  models?: string[];
  /**
   * The worker's X25519 key that clients seal requests to (raw, hex), and the suite they seal with. In the
   * claims so the quote binds it: only the attested image holds its private half.
   */
  e2e?: { suite: E2ESuiteId; publicKey: string };
}

/** Makes quotes: hardware (`tdx`, later `sev-snp`) or software (`dev`). */
export interface AttestationProvider {
  readonly kind: string;
  /** A quote over `reportData` (64 bytes: SHA-512 of the claims). */
  quote(reportData: Uint8Array): Promise<Uint8Array>;
}

export interface VerifiedAttestation {
  kind: string;
  tier: TrustTier;
  /** Identity of the software image the quote measures (hex SHA-256). */
  imageHash: string;
}

/** What the certificate check hands a verifier besides the quote. */
export interface VerifyContext {
  /** The certificate's claims (already decoded and bound to the TLS key; the quote's report data commits to them). */
  claims?: CertificateClaims;
  /**
   * Called with what the quote claims (kind, tier, image) once it is parsed and its report data matches,
   * before anything costly (signatures, collateral, network); throw AttestationError to refuse early.
   * What it sees is not yet verified, so it may only refuse, never accept.
   */
  precheck?: (claimed: VerifiedAttestation) => void;
}

/**
 * Checks quotes of one kind. Throws AttestationError with a specific reason when a quote is refused.
 * Cheap checks come first: a verifier must not fetch, write or cache anything for a quote before its
 * structure and report data were checked and `ctx.precheck` ran.
 */
export interface AttestationVerifier {
  readonly kind: string;
  verify(
    quote: Uint8Array,
    expectedReportData: Uint8Array,
    ctx?: VerifyContext,
  ): Promise<VerifiedAttestation>;
}

/** A peer after its certificate, claims and quote were verified. */
export interface PeerIdentity {
  role: NodeRole;
  publicKey: string;
  claims: CertificateClaims;
  attestation: VerifiedAttestation;
  notAfter: Date;
  /** The certificate (DER) it was proved by: the proxy relays a worker's to clients, who check it themselves. */
  certificate: Buffer;
}
