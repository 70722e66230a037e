import { BadGatewayError, ProtocolError } from '../errors.ts';
import type { Stream } from '../net/stream.ts';
import type { InferenceRequest } from '../protocol/inference.ts';
import type { ControlMessage, WorkerTrailer } from '../protocol/messages.ts';
import { ReplyHasher, sha256Hex } from '../protocol/receipt.ts';
import {
  type ReplyOpener,
  requestAad,
  SEALED_EVENT_SEPARATOR,
  sealRequest,
} from '../protocol/sealing/index.ts';
import type { ProxyConnection } from './proxy-pool.ts';
import type { CheckedWorker, WorkerCheck } from './worker-check.ts';

type Offer = Extract<ControlMessage, { type: 'request.offer' }>;

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
 * Opens the reply's parts (sealed by the worker we checked, or as they came when E2E is off) and hashes
 * every event as it is read, in order, the tail last: what the worker's receipt must name.
 */
export class ReplyReader {
  private readonly hasher = new ReplyHasher();

  constructor(private readonly opener: ReplyOpener | null) {}

  get sealed(): boolean {
    return this.opener !== null;
  }

  /** The events one part of a stream carries (one, or several a sealed part coalesced). */
  open(part: Buffer): Buffer[] {
    const events = this.opener ? splitEvents(this.opener.open(part)) : [part];
    for (const e of events) this.hasher.update(e);
    return events;
  }

  /** A whole reply: one part. */
  openWhole(body: Buffer): Buffer {
    const plain = this.opener ? this.opener.open(body) : body;
    this.hasher.update(plain);
    return plain;
  }

  /** The reply's last part (its usage chunk, if any) from the worker's trailer; a cut reply fails here. */
  tail(reply: WorkerTrailer | undefined): string | null {
    let tail: string | null = reply?.tail ?? null;
    if (this.opener) {
      if (reply?.end === undefined)
        throw new ProtocolError('a sealed reply without its sealed end', 'bad_message');
      const end = this.opener.open(Buffer.from(reply.end, 'base64'));
      if (!this.opener.finished)
        throw new ProtocolError('a sealed reply whose end is not last', 'bad_message');
      tail = end.length > 0 ? end.toString('utf8') : null;
    }
    if (tail !== null) this.hasher.update(Buffer.from(tail));
    return tail;
  }

  /** SHA-256 over what was read (ReplyHasher); call once, after the tail. */
  digest(): string {
    return this.hasher.digest();
  }
}

function splitEvents(plain: Buffer): Buffer[] {
  const events: Buffer[] = [];
  let from = 0;
  for (
    let at = plain.indexOf(SEALED_EVENT_SEPARATOR);
    at >= 0;
    at = plain.indexOf(SEALED_EVENT_SEPARATOR, from)
  ) {
    events.push(plain.subarray(from, at));
    from = at + 1;
  }
  events.push(plain.subarray(from));
  return events;
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

  constructor(
    private readonly o: { workers: WorkerCheck; e2e: boolean },
    private readonly conn: ProxyConnection,
    private readonly stream: Stream,
    private readonly request: InferenceRequest,
    private readonly requestId: string,
    private readonly body: Buffer,
  ) {}

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
    if (!this.current) {
      throw new BadGatewayError('The proxy sent a reply before offering a worker.', 'reply_before_offer');
    }
    const { checked, reply, requestHash } = this.current;
    return { worker: checked, reply, requestHash };
  }

  private async answer(offer: Offer): Promise<void> {
    if (this.done || this.stream.isClosed) return;
    const checked = await this.o.workers.check(offer, this.request, this.o.e2e);
    let part = this.body;
    let reply = new ReplyReader(null);
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
      reply = new ReplyReader(sealed.reply);
    }
    if (this.done || this.stream.isClosed) return;
    this.current = { checked, reply, requestHash: sha256Hex(part) };
    // The bill may name only the coefficient of the worker we sent the body to.
    this.conn.payments?.served(this.requestId, offer.coefficient, checked.peer.publicKey);
    const p = this.stream.write(part);
    if (p) await p;
  }
}
