import { verifyPeerCertificate } from '../attest/certificate.ts';
import { AttestationError } from '../attest/errors.ts';
import { attestedModel } from '../attest/model-identity.ts';
import { checkPeerPolicy } from '../attest/policy.ts';
import { gateVerifiers, type TrustSetup } from '../attest/trust-setup.ts';
import { type PeerIdentity, TRUST_TIER_RANK, type TrustTier } from '../attest/types.ts';
import { asCocoonError, BadGatewayError } from '../errors.ts';
import type { Serving } from '../protocol/messages.ts';

/** Verified worker certificates kept, by SHA-256 of their DER (a network has few workers). */
const CACHE_ENTRIES = 256;

/** A worker the client has checked itself: what it shows the user, and what it seals the request to. */
export interface CheckedWorker {
  serving: Serving;
  /** SHA-256 of the certificate's DER: the sealed request names it, so it opens only for this one. */
  certificateHash: Buffer;
  /** The X25519 key the quote binds (`claims.e2e.publicKey`), when the worker has one. */
  e2eKey: string | null;
  peer: PeerIdentity;
}

export interface OfferedWorker {
  /** The worker's certificate, DER, as the proxy relayed it, and its SHA-256. */
  der: Buffer;
  hash: Buffer;
  coefficient: number;
  worker: string;
}

/**
 * The client's own check of the worker a proxy offers for a request, with its own verifiers and policy: the
 * trust tier, image and model the user is shown come from the worker's certificate and quote, never from
 * the proxy's word. A proxy that names a better tier, passes off another worker's certificate or an old
 * one gets the request refused here (502 `worker_not_trusted`, with the reason), and the client moves on
 * to another proxy. With E2E on, the request is then sealed to the key this certificate carries, so no
 * other worker can read it or answer for it.
 */
export class WorkerCheck {
  private readonly verified = new Map<string, PeerIdentity>();

  constructor(
    private readonly trust: TrustSetup,
    /** Reasons for refusals, counted (stats, metrics). */
    private readonly refusals: Record<string, number>,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async check(
    offer: OfferedWorker,
    request: { model: string; minTier: TrustTier },
    sealed: boolean,
  ): Promise<CheckedWorker> {
    try {
      return await this.checkOrThrow(offer, request, sealed);
    } catch (err) {
      const e = asCocoonError(err);
      const code = e.code ?? 'worker_not_trusted';
      this.refusals[code] = (this.refusals[code] ?? 0) + 1;
      throw new BadGatewayError(
        `The proxy offered worker '${offer.worker}', which this client does not accept: ${e.message} (${code}).`,
        'worker_not_trusted',
      );
    }
  }

  private async checkOrThrow(
    offer: OfferedWorker,
    request: { model: string; minTier: TrustTier },
    sealed: boolean,
  ): Promise<CheckedWorker> {
    const { der, hash } = offer;
    const peer = await this.verify(der, hash.toString('hex'), request.minTier);
    checkPeerPolicy(peer, this.trust.policy.current());
    if (TRUST_TIER_RANK[peer.attestation.tier] < TRUST_TIER_RANK[request.minTier]) {
      throw new AttestationError(
        'trust_tier_too_low',
        `its attestation proves '${peer.attestation.tier}', below the required '${request.minTier}'`,
      );
    }
    const model = attestedModel(peer.claims, request.model);
    if (model === undefined) {
      throw new AttestationError('model_not_attested', `its certificate does not attest '${request.model}'`);
    }
    const e2eKey = peer.claims.e2e?.publicKey ?? null;
    if (sealed && e2eKey === null) {
      throw new AttestationError('no_e2e_key', 'its certificate carries no key to seal the request to');
    }
    const serving: Serving = {
      worker: offer.worker,
      tier: peer.attestation.tier,
      image: peer.attestation.imageHash,
      model,
      coefficient: offer.coefficient,
    };
    return { serving, certificateHash: hash, e2eKey, peer };
  }

  /** The certificate verified (once per certificate while it is valid; its dates on every use). */
  private async verify(der: Buffer, hash: string, minTier: TrustTier): Promise<PeerIdentity> {
    const now = this.now();
    const known = this.verified.get(hash);
    if (known && known.notAfter > now) return known;
    this.verified.delete(hash);
    const verifiers = gateVerifiers(this.trust.verifiers, ['worker'], minTier, this.trust.policy);
    const peer = await verifyPeerCertificate(der, { verifiers, now });
    if (peer.role !== 'worker') throw new AttestationError('role_refused', `it is a ${peer.role}`);
    this.verified.set(hash, peer);
    if (this.verified.size > CACHE_ENTRIES) this.verified.delete(this.verified.keys().next().value!);
    return peer;
  }
}
