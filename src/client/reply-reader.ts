import { ProtocolError } from '../errors.ts';
import type { ReplyRead } from '../pay/payer.ts';
import type { WorkerTrailer } from '../protocol/messages.ts';
import { ReplyHasher } from '../protocol/receipt.ts';
import { SealedReplyCount } from '../protocol/sealed-reply-count.ts';
import type { ReplyOpener } from '../protocol/sealing/index.ts';

/** The most of a sealed reply kept as a dispute's proof; a longer reply cannot be disputed. */
export const MAX_PROOF_BYTES = 16 * 1024 * 1024;

/** What opens a sealed reply: the opener, and the secret it was made from (revealed only in a dispute). */
export interface ReplyKeys {
  opener: ReplyOpener;
  secret: Buffer;
}

/**
 * One reply as the client reads it. Each part is opened as it arrives (sealed by the worker we checked,
 * or as it came when E2E is off), so a bill, which comes before the reply's trailer, is checked against
 * all of it; every event is hashed in order, the tail last, which the worker's receipt must name. For a
 * sealed reply it also counts the plaintext (the bound no proxy can see) and keeps the sealed parts as
 * they came, the proof should the worker's claim exceed it (src/proxy/dispute.ts).
 */
export class ReplyReader implements ReplyRead {
  private readonly hasher = new ReplyHasher();
  private readonly count: SealedReplyCount;
  /** Opened stream parts not yet taken by the relay, one entry each (or the error its opening hit). */
  private readonly opened: (Buffer[] | Error)[] = [];
  private readonly body: Buffer[] = [];
  private wholeBody: Buffer | null = null;
  private kept: Buffer[] | null;
  private keptBytes = 0;
  private failure: Error | null = null;
  /** The sealed end, once opened (from the bill, or else the trailer). */
  private end: { tail: string | null } | null = null;
  private tailText: string | null = null;

  constructor(
    private readonly keys: ReplyKeys | null,
    private readonly stream: boolean,
    /** Keep the sealed parts for a dispute (payments are on). */
    keepProof: boolean,
    /** A part did not open: the reply cannot be trusted past it. */
    private readonly onUnreadable: (err: Error) => void = () => {},
  ) {
    this.count = new SealedReplyCount(stream);
    this.kept = keys && keepProof ? [] : null;
  }

  get sealed(): boolean {
    return this.keys !== null;
  }

  /** A part as it arrives, before the relay reads it. Never throws: a part that fails is remembered. */
  arrive(part: Buffer): void {
    this.keep(part);
    if (this.failure) return;
    const opener = this.keys?.opener;
    let plain: Buffer;
    try {
      plain = opener ? opener.open(part) : part;
    } catch (err) {
      this.failure = err as Error;
      if (this.stream) this.opened.push(this.failure);
      this.onUnreadable(this.failure);
      return;
    }
    if (!this.stream) {
      this.body.push(plain);
      if (opener) this.count.add(plain, opener.finished);
      return;
    }
    const events = opener ? this.count.add(plain, opener.finished) : [plain];
    for (const e of events) this.hasher.update(e);
    this.opened.push(events);
  }

  private keep(part: Buffer): void {
    if (!this.kept) return;
    this.keptBytes += part.length;
    if (this.keptBytes > MAX_PROOF_BYTES) this.kept = null;
    else this.kept.push(part);
  }

  /** The events of the stream's next part, in arrival order; throws if that part did not open. */
  next(): Buffer[] {
    const e = this.opened.shift();
    if (e === undefined) throw new ProtocolError('a reply part read before it arrived', 'bad_message');
    if (e instanceof Error) throw e;
    return e;
  }

  /** A whole reply's body, opened. */
  whole(): Buffer {
    if (this.failure) throw this.failure;
    if (!this.wholeBody) {
      this.wholeBody = this.body.length === 1 ? this.body[0]! : Buffer.concat(this.body);
      this.hasher.update(this.wholeBody);
    }
    return this.wholeBody;
  }

  /** The reply's last part (its usage chunk, if any) from the worker's trailer; a cut reply fails here. */
  tail(reply: WorkerTrailer | undefined): string | null {
    this.tailText = this.keys ? this.openEnd(reply?.end) : (reply?.tail ?? null);
    return this.tailText;
  }

  /** Opens the sealed end once (the bill carries it before the trailer does). */
  private openEnd(end: string | undefined): string | null {
    if (this.end) return this.end.tail;
    if (this.failure) throw this.failure;
    if (end === undefined) throw new ProtocolError('a sealed reply without its sealed end', 'bad_message');
    const opener = this.keys!.opener;
    const plain = opener.open(Buffer.from(end, 'base64'));
    if (!opener.finished) throw new ProtocolError('a sealed reply whose end is not last', 'bad_message');
    this.count.add(plain, true);
    this.end = { tail: plain.length > 0 ? plain.toString('utf8') : null };
    return this.end.tail;
  }

  /** SHA-256 over what was read (ReplyHasher), the tail last; call once, after `tail`. */
  digest(): string {
    if (this.tailText !== null) this.hasher.update(Buffer.from(this.tailText));
    return this.hasher.digest();
  }

  completionTokens(choices: number, end: string | undefined): number {
    if (this.keys && end !== undefined) this.openEnd(end);
    return this.count.completionTokens(choices);
  }

  proof(end: string | undefined): Buffer[] | null {
    if (!this.keys || !this.kept) return null;
    return [this.keys.secret, ...this.kept, ...(end !== undefined ? [Buffer.from(end, 'base64')] : [])];
  }
}
