/**
 * Cocoon's X.509 extension OIDs, under the arc the original COCOON uses for RA-TLS (1.3.6.1.4.1.12345),
 * in a sub-arc of our own (.100) because our claims encoding differs from the original's (.1/.2).
 * Both extensions are critical: a verifier that does not understand them must refuse the certificate,
 * and ours refuses every other unknown critical extension.
 */
export const COCOON_OID_ARC = '1.3.6.1.4.1.12345.100';
/** The raw attestation quote (TDX quote, or the labelled dev quote). */
export const OID_ATTESTATION_QUOTE = `${COCOON_OID_ARC}.1`;
/** The claims (canonical JSON of CertificateClaims); the quote's report data is SHA-512 of these bytes. */
export const OID_ATTESTATION_CLAIMS = `${COCOON_OID_ARC}.2`;

/** Standard extensions our verifier understands when critical. */
export const KNOWN_CRITICAL_OIDS = new Set([
  '2.5.29.15', // keyUsage
  '2.5.29.19', // basicConstraints
  '2.5.29.37', // extKeyUsage
  '2.5.29.17', // subjectAltName
  OID_ATTESTATION_QUOTE,
  OID_ATTESTATION_CLAIMS,
]);
