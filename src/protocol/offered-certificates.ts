import { createHash } from 'node:crypto';
import { ProtocolError } from '../errors.ts';
import type { ControlMessage } from './messages.ts';

type Offer = Extract<ControlMessage, { type: 'request.offer' }>;

/** An offer with its certificate at hand: the DER and its SHA-256, whether it came whole or by hash. */
export interface ResolvedOffer {
  requestId: string;
  der: Buffer;
  hash: Buffer;
  coefficient: number;
  worker: string;
}

/**
 * Certificates offered whole on one client session, the same on both sides. The proxy offers a worker's
 * certificate whole the first time on a session, then by its hash: an offer is one per request, and a
 * certificate is kilobytes to encode, send, decode and hash again each time. Both sides keep the last
 * `CERTIFICATES_PER_SESSION` in the order they were sent, over one ordered session, so the client holds
 * every certificate the proxy may name by hash; one it does not hold is the proxy's protocol violation.
 */
export const CERTIFICATES_PER_SESSION = 64;

export class OfferedCertificates {
  private readonly known = new Map<string, Buffer>();

  /** Proxy side: was this certificate offered whole on the session (still remembered)? Records it if not. */
  offeredBefore(hashHex: string, der: Buffer): boolean {
    if (this.known.has(hashHex)) return true;
    this.remember(hashHex, der);
    return false;
  }

  /** Client side: the offer's certificate, from the offer or from an earlier one on this session. */
  resolve(offer: Offer): ResolvedOffer {
    const { requestId, coefficient, worker } = offer;
    if (offer.certificate !== undefined) {
      const der = Buffer.from(offer.certificate, 'base64');
      const hash = createHash('sha256').update(der).digest();
      this.remember(hash.toString('hex'), der);
      return { requestId, der, hash, coefficient, worker };
    }
    const der = offer.certificateHash !== undefined ? this.known.get(offer.certificateHash) : undefined;
    if (!der) {
      throw new ProtocolError(
        'an offer names a certificate not offered on this session',
        'offer_unknown_certificate',
      );
    }
    return { requestId, der, hash: Buffer.from(offer.certificateHash!, 'hex'), coefficient, worker };
  }

  private remember(hashHex: string, der: Buffer): void {
    if (this.known.has(hashHex)) return;
    this.known.set(hashHex, der);
    if (this.known.size > CERTIFICATES_PER_SESSION) this.known.delete(this.known.keys().next().value!);
  }
}
