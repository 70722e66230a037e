import { createHash, timingSafeEqual } from 'node:crypto';
import { AttestationError } from '../errors.ts';
import type {
  AttestationProvider,
  AttestationVerifier,
  VerifiedAttestation,
  VerifyContext,
} from '../types.ts';

/**
 * DEV TRUST: a software "quote" for machines without a TEE (laptops, CI). It binds the claims like a real
 * quote does (report data = SHA-512 of the claims) but proves nothing about the hardware; anyone can make
 * one. It is always labelled tier `dev`, and a policy that requires a TEE never accepts it.
 */
const DEV_QUOTE_TYPE = 'cocoon-dev-attestation';
/** A dev quote is about 300 bytes; anything much larger is not one (checked before JSON.parse). */
export const MAX_DEV_QUOTE_BYTES = 2048;
const MAX_DEV_IMAGE_NAME = 256;

interface DevQuote {
  type: typeof DEV_QUOTE_TYPE;
  warning: string;
  image: string;
  reportData: string;
}

export class DevAttestationProvider implements AttestationProvider {
  readonly kind = 'dev';
  constructor(private readonly image = 'cocoon-dev') {}

  async quote(reportData: Uint8Array): Promise<Uint8Array> {
    const q: DevQuote = {
      type: DEV_QUOTE_TYPE,
      warning: 'software attestation, no TEE: proves nothing about the hardware',
      image: this.image,
      reportData: Buffer.from(reportData).toString('hex'),
    };
    return Buffer.from(JSON.stringify(q));
  }
}

export class DevAttestationVerifier implements AttestationVerifier {
  readonly kind = 'dev';

  async verify(
    quote: Uint8Array,
    expectedReportData: Uint8Array,
    ctx: VerifyContext = {},
  ): Promise<VerifiedAttestation> {
    if (quote.length > MAX_DEV_QUOTE_BYTES) {
      throw new AttestationError(
        'bad_quote',
        `dev quote of ${quote.length} bytes, more than ${MAX_DEV_QUOTE_BYTES}`,
      );
    }
    let q: Partial<DevQuote>;
    try {
      q = JSON.parse(Buffer.from(quote).toString('utf8'));
    } catch {
      throw new AttestationError('bad_quote', 'dev quote is not valid JSON');
    }
    if (
      q === null ||
      typeof q !== 'object' ||
      q.type !== DEV_QUOTE_TYPE ||
      typeof q.reportData !== 'string' ||
      !/^[0-9a-f]{128}$/.test(q.reportData) ||
      typeof q.image !== 'string' ||
      q.image.length > MAX_DEV_IMAGE_NAME
    ) {
      throw new AttestationError('bad_quote', 'not a dev quote');
    }
    const rd = Buffer.from(q.reportData, 'hex');
    if (rd.length !== expectedReportData.length || !timingSafeEqual(rd, expectedReportData)) {
      throw new AttestationError(
        'report_data_mismatch',
        'quote report data does not match the certificate claims',
      );
    }
    const imageHash = createHash('sha256').update(`dev-image:${q.image}`).digest('hex');
    const result: VerifiedAttestation = { kind: 'dev', tier: 'dev', imageHash };
    ctx.precheck?.(result);
    return result;
  }
}
