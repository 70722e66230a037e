import { webcrypto } from 'node:crypto';
import { decodeClaims, encodeClaims, reportDataFor } from './claims.ts';
import { AttestationError } from './errors.ts';
import type { NodeKey } from './identity.ts';
import { KNOWN_CRITICAL_OIDS, OID_ATTESTATION_CLAIMS, OID_ATTESTATION_QUOTE } from './oids.ts';
import type { AttestationProvider, AttestationVerifier, CertificateClaims, PeerIdentity } from './types.ts';
import { x509 } from './x509.ts';

const ED25519 = { name: 'Ed25519' } as const;

export interface NodeCertificate {
  certPem: string;
  certDer: Buffer;
  claims: CertificateClaims;
  notAfter: Date;
}

export interface CertificateOptions {
  key: NodeKey;
  provider: AttestationProvider;
  claims: Omit<CertificateClaims, 'publicKey' | 'attestation' | 'v'>;
  now?: Date;
  validityMs?: number;
  /** Test hook: sign the certificate with another key than the one it names. */
  signingKey?: NodeKey;
  /** Test hook: extra extensions (e.g. an unknown critical one). */
  extraExtensions?: x509.Extension[];
}

/** A self-signed Ed25519 RA-TLS certificate carrying the claims and the quote over them. */
export async function createNodeCertificate(opts: CertificateOptions): Promise<NodeCertificate> {
  const now = opts.now ?? new Date();
  const notAfter = new Date(now.getTime() + (opts.validityMs ?? 24 * 3600_000));
  const claims: CertificateClaims = {
    v: 1,
    ...opts.claims,
    publicKey: opts.key.publicKeyHex,
    attestation: opts.provider.kind,
  };
  const claimsBytes = encodeClaims(claims);
  const quote = await opts.provider.quote(reportDataFor(claimsBytes));
  const signer = opts.signingKey ?? opts.key;
  const keys = {
    publicKey: await webcrypto.subtle.importKey(
      'spki',
      opts.key.publicKey.export({ format: 'der', type: 'spki' }),
      ED25519,
      true,
      ['verify'],
    ),
    privateKey: await webcrypto.subtle.importKey(
      'pkcs8',
      signer.privateKey.export({ format: 'der', type: 'pkcs8' }),
      ED25519,
      false,
      ['sign'],
    ),
  };
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=cocoon-${claims.role}-${claims.publicKey.slice(0, 16)}`,
    notBefore: new Date(now.getTime() - 60_000), // tolerate small clock skew between peers
    notAfter,
    keys: keys as unknown as x509.X509CertificateCreateSelfSignedParams['keys'],
    signingAlgorithm: ED25519,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.Extension(OID_ATTESTATION_CLAIMS, true, claimsBytes),
      new x509.Extension(OID_ATTESTATION_QUOTE, true, quote),
      ...(opts.extraExtensions ?? []),
    ],
  });
  return { certPem: cert.toString('pem'), certDer: Buffer.from(cert.rawData), claims, notAfter };
}

export interface PeerVerificationOptions {
  verifiers: ReadonlyMap<string, AttestationVerifier>;
  now?: Date;
}

/**
 * Bounds checked before anything is parsed or verified. Our certificates are about 6 KB with a TDX quote
 * (claims ≤ 20 KB with 64 model names); TLS itself lets a peer send up to 100 KB.
 */
export const MAX_CERTIFICATE_BYTES = 64 * 1024;
export const MAX_CLAIMS_BYTES = 32 * 1024;
export const MAX_EXTENSIONS = 16;

/**
 * Verifies a peer's certificate by our own rules, not a CA's: Ed25519, self-signed, in its validity window,
 * no unknown critical extension, claims naming this very key, and a quote over exactly these claims that
 * a verifier of its kind accepts. TLS 1.3 already proved the peer holds the certificate's private key.
 * Cheapest first: sizes, structure, dates, claims, key binding and kind, then the self-signature, then
 * the quote (whose verifier checks report data and anything else it can before costly work).
 */
export async function verifyPeerCertificate(
  der: Uint8Array,
  opts: PeerVerificationOptions,
): Promise<PeerIdentity> {
  if (der.length > MAX_CERTIFICATE_BYTES) {
    throw new AttestationError(
      'bad_certificate',
      `peer certificate of ${der.length} bytes, more than ${MAX_CERTIFICATE_BYTES}`,
    );
  }
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(der);
  } catch {
    throw new AttestationError('bad_certificate', 'peer certificate is not valid DER X.509');
  }
  const algorithm = cert.publicKey.algorithm as { name?: string };
  if (algorithm.name !== 'Ed25519') {
    throw new AttestationError(
      'bad_key_type',
      `peer key must be Ed25519, got ${algorithm.name ?? 'unknown'}`,
    );
  }
  const now = opts.now ?? new Date();
  if (now < cert.notBefore)
    throw new AttestationError('certificate_not_yet_valid', 'peer certificate is not yet valid');
  if (now > cert.notAfter) throw new AttestationError('certificate_expired', 'peer certificate has expired');
  if (cert.extensions.length > MAX_EXTENSIONS) {
    throw new AttestationError(
      'bad_certificate',
      `peer certificate has ${cert.extensions.length} extensions`,
    );
  }
  const seen = new Set<string>();
  for (const ext of cert.extensions) {
    if (seen.has(ext.type)) {
      throw new AttestationError('bad_certificate', `peer certificate repeats extension ${ext.type}`);
    }
    seen.add(ext.type);
    if (ext.critical && !KNOWN_CRITICAL_OIDS.has(ext.type)) {
      throw new AttestationError(
        'unknown_critical_extension',
        `peer certificate has unknown critical extension ${ext.type}`,
      );
    }
  }

  const claimsExt = cert.getExtension(OID_ATTESTATION_CLAIMS);
  const quoteExt = cert.getExtension(OID_ATTESTATION_QUOTE);
  if (!claimsExt) throw new AttestationError('missing_claims', 'peer certificate has no attestation claims');
  if (!quoteExt) throw new AttestationError('missing_quote', 'peer certificate has no attestation quote');
  if (claimsExt.value.byteLength > MAX_CLAIMS_BYTES) {
    throw new AttestationError('bad_claims', `certificate claims of ${claimsExt.value.byteLength} bytes`);
  }
  const claimsBytes = new Uint8Array(claimsExt.value);
  const claims = decodeClaims(claimsBytes);
  // Ed25519 SPKI = fixed 12-byte prefix + the 32-byte raw key.
  const certKey = Buffer.from(cert.publicKey.rawData).subarray(-32).toString('hex');
  if (claims.publicKey !== certKey) {
    throw new AttestationError('claims_key_mismatch', 'certificate claims name another key than the TLS key');
  }
  const verifier = opts.verifiers.get(claims.attestation);
  if (!verifier) {
    throw new AttestationError(
      'attestation_kind_refused',
      `attestation kind '${claims.attestation}' is not accepted`,
    );
  }
  const selfSigned = await cert.verify({ signatureOnly: true }).catch(() => false);
  if (!selfSigned)
    throw new AttestationError('bad_signature', 'peer certificate is not signed by its own key');
  const attestation = await verifier.verify(new Uint8Array(quoteExt.value), reportDataFor(claimsBytes), {
    claims,
  });
  return {
    role: claims.role,
    publicKey: claims.publicKey,
    claims,
    attestation,
    notAfter: cert.notAfter,
    certificate: Buffer.from(der),
  };
}
