import { BadGatewayError } from '../errors.ts';
import type { Stream } from '../net/stream.ts';
import type { InferenceRequest } from '../protocol/inference.ts';
import type { ResolvedOffer } from '../protocol/offered-certificates.ts';
import { sha256Hex } from '../protocol/receipt.ts';
import { requestAad, sealRequest } from '../protocol/sealing/index.ts';
import type { ProxyConnection } from './proxy-pool.ts';
import { type ReplyKeys, ReplyReader } from './reply-reader.ts';
import type { CheckedWorker, WorkerCheck } from './worker-check.ts';

type Offer = ResolvedOffer;

/**
 * Offers answered for one request at most: each costs the client a certificate check and a sealing, so a
 * proxy may not make it work without end (the proxy re-dispatches a few times, see its maxAttempts).
 */
export const MAX_OFFERS_PER_REQUEST = 8;

/** A sealed reply part is at most a session frame. */
const MAX_REPLY_PART_BYTES = 8 * 1024 * 1024;

/**
 * Where proxies' offers for our requests arrive: only for a request of ours in flight, and only from the
 * proxy it was sent to, so no proxy can grow this map or answer for another's request.
 */
export class OfferDesk {
  private readonly waiting = new Map<string, { conn: ProxyConnection; take: (offer: Offer) => void }>();

  expect(requestId: string, conn: ProxyConnection, take: (offer: Offer) => void): void {
    this.waiting.set(requestId, { conn, take });
  }

  forget(requestId: string): void {
    this.waiting.delete(requestId);
  }

  /** An offer from `conn`; false when it is for no request of ours there. */
  deliver(offer: Offer, conn: ProxyConnection): boolean {
    const w = this.waiting.get(offer.requestId);
    if (!w || w.conn !== conn) return false;
    w.take(offer);
    return true;
  }
}

/**
 * One attempt's answers to the proxy's offers: each offered worker is checked by the client itself, then
 * the body goes to it (sealed to its attested key). Offers are answered one at a time and in order, so the
 * worker the reply is opened for is the last one answered; none is answered once the reply began.
 */
export class OfferAnswer {
  private queue: Promise<void> = Promise.resolve();
  private current: { checked: CheckedWorker; reply: ReplyReader; requestHash: string } | null = null;
  private done = false;
  private offers = 0;
  /** Reply parts came before any offer was answered: no worker can have sent them. */
  private early = false;

  constructor(
    private readonly o: { workers: WorkerCheck; e2e: boolean },
    private readonly conn: ProxyConnection,
    private readonly stream: Stream,
    private readonly request: InferenceRequest,
    private readonly requestId: string,
    private readonly body: Buffer,
    /** A reply part did not open: stop the request, keep reading what is on its way (it is billed). */
    private readonly onUnreadable: () => void,
  ) {}

  /** A reply part as it arrives: the reader of the worker answered last opens it. */
  arrive(part: Buffer): void {
    if (this.current) this.current.reply.arrive(part);
    else this.early = true;
  }

  offered(offer: Offer): void {
    if (++this.offers > MAX_OFFERS_PER_REQUEST) {
      if (this.offers === MAX_OFFERS_PER_REQUEST + 1) {
        this.stream.reset(
          new BadGatewayError(
            `The proxy offered more than ${MAX_OFFERS_PER_REQUEST} workers.`,
            'too_many_offers',
          ),
        );
      }
      return;
    }
    this.queue = this.queue.then(() => this.answer(offer)).catch((err) => this.stream.reset(err));
  }

  /** The reply began: the worker answered last is the one serving it. */
  accepted(): { worker: CheckedWorker; reply: ReplyReader; requestHash: string } {
    this.done = true;
    if (!this.current || this.early) {
      throw new BadGatewayError('The proxy sent a reply before offering a worker.', 'reply_before_offer');
    }
    const { checked, reply, requestHash } = this.current;
    return { worker: checked, reply, requestHash };
  }

  private async answer(offer: Offer): Promise<void> {
    if (this.done || this.stream.isClosed) return;
    const checked = await this.o.workers.check(offer, this.request, this.o.e2e);
    let part = this.body;
    let keys: ReplyKeys | null = null;
    if (this.o.e2e) {
      const aad = requestAad({
        requestId: this.requestId,
        model: this.request.model,
        workerCertHash: checked.certificateHash,
      });
      const sealed = await sealRequest({
        recipientPublicKey: checked.e2eKey!,
        plaintext: this.body,
        aad,
        maxReplyPartBytes: MAX_REPLY_PART_BYTES,
      });
      part = sealed.sealed;
      keys = { opener: sealed.reply, secret: sealed.secret };
    }
    if (this.done || this.stream.isClosed) return;
    const payments = this.conn.payments;
    const reply = new ReplyReader(keys, this.request.stream, payments !== null, this.onUnreadable);
    this.current = { checked, reply, requestHash: sha256Hex(part) };
    // The bill may name only the coefficient of the worker we sent the body to, and is read against its
    // reply when sealed.
    payments?.served(this.requestId, offer.coefficient, checked.peer.publicKey, keys ? reply : undefined);
    const p = this.stream.write(part);
    if (p) await p;
  }
}
