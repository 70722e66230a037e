import { createHash } from 'node:crypto';
import { z } from 'zod';
import { E2E_SUITES } from '../protocol/sealing/suite.ts';
import { AttestationError } from './errors.ts';
import type { CertificateClaims } from './types.ts';

const claimsSchema = z.object({
  v: z.literal(1),
  role: z.enum(['client', 'proxy', 'worker']),
  publicKey: z.string().regex(/^[0-9a-f]{64}$/),
  attestation: z.string().min(1).max(32),
  protocol: z.object({ min: z.number().int().positive(), max: z.number().int().positive() }),
  models: z.array(z.string().max(300)).max(64).optional(),
  e2e: z.object({ suite: z.enum(E2E_SUITES), publicKey: z.string().regex(/^[0-9a-f]{64}$/) }).optional(),
});

/** Canonical bytes of the claims: the exact bytes in the certificate, and what REPORTDATA commits to. */
export function encodeClaims(claims: CertificateClaims): Buffer {
  const ordered: CertificateClaims = {
    v: claims.v,
    role: claims.role,
    publicKey: claims.publicKey,
    attestation: claims.attestation,
    protocol: { min: claims.protocol.min, max: claims.protocol.max },
    ...(claims.models ? { models: [...claims.models] } : {}),
    // Only when present, so certificates without it encode as before.
    ...(claims.e2e ? { e2e: { suite: claims.e2e.suite, publicKey: claims.e2e.publicKey } } : {}),
  };
  return Buffer.from(JSON.stringify(ordered));
}

export function decodeClaims(bytes: Uint8Array): CertificateClaims {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new AttestationError('bad_claims', 'certificate claims are not valid JSON');
  }
  const r = claimsSchema.safeParse(json);
  if (!r.success)
    throw new AttestationError('bad_claims', `certificate claims are malformed: ${r.error.message}`);
  return r.data as CertificateClaims;
}

/** REPORTDATA = SHA-512(claims bytes): 64 bytes, the size of a TDX report's user data. */
export function reportDataFor(claimsBytes: Uint8Array): Buffer {
  return createHash('sha512').update(claimsBytes).digest();
}
