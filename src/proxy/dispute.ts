import { E2EOpenError } from '../errors.ts';
import { ReplyHasher } from '../protocol/receipt.ts';
import { SealedReplyCount } from '../protocol/sealed-reply-count.ts';
import { REPLY_SECRET_BYTES, ReplyOpener } from '../protocol/sealing/index.ts';

/**
 * Disputes over sealed replies. The proxy cannot read a sealed reply, so it bills one token per part (or
 * per byte of a whole reply) within what the worker signed; a worker could pad its reply with empty parts
 * and be paid for them. The client can read it: when the worker claims more than the plaintext accounts
 * for, it reveals the reply's secret and hands back the sealed parts. The proxy checks that they are the
 * very parts it relayed (a hash it kept as it relayed them), opens them, counts them as the client did
 * (SealedReplyCount), and rules:
 *
 * - upheld: the parts are the relayed ones, the secret opens them, and the bill claims more completion
 *   tokens than they account for. Nothing is charged, the worker is not paid and is cut off.
 * - rejected: anything else (other parts, a secret that does not open the first part, a fair bill). The
 *   bill stays unpaid: the client is struck as for any bill it refuses, the worker is paid.
 *
 * A first part that does not open cannot be told from a wrong secret, so it counts against the client; a
 * later one that does not open is the worker's (the secret opened the first): it and what follows count
 * for nothing. What the proxy learns is this one reply's text, which the client chose to show it.
 */

/** What the proxy relayed of a sealed reply: the parts in order (ReplyHasher framing), their count and bytes. */
export class RelayedReply {
  private readonly hasher = new ReplyHasher();
  parts = 0;
  bytes = 0;

  add(part: Buffer): void {
    this.hasher.update(part);
    this.parts++;
    this.bytes += part.length;
  }

  /** The record, finished (the hasher is done after it). */
  seal(): RelayedRecord {
    return { digest: this.hasher.digest(), parts: this.parts, bytes: this.bytes };
  }
}

export interface RelayedRecord {
  digest: string;
  parts: number;
  bytes: number;
}

/** What a bill for a sealed reply can be disputed on, kept with the bill until it is signed. */
export interface DisputeTerms {
  relayed: RelayedRecord;
  /** The sealed request's `enc` (the client's HPKE ephemeral key): the reply's keys derive from it. */
  enc: Buffer;
  stream: boolean;
  choices: number;
  /** Completion tokens the bill claims. */
  billed: number;
}

export type Verdict = { upheld: true; counted: number } | { upheld: false; reason: string };

/** Largest sealed part the proof may hold: a session frame, as the reply's own parts. */
const MAX_PART_BYTES = 8 * 1024 * 1024;

/** Reads a dispute's proof (its stream's parts) and rules on it. Throws only if the stream fails. */
export async function judgeDispute(proof: AsyncIterable<Buffer>, terms: DisputeTerms): Promise<Verdict> {
  const { relayed } = terms;
  const hasher = new ReplyHasher();
  const count = new SealedReplyCount(terms.stream);
  let opener: ReplyOpener | null = null;
  let parts = 0;
  let bytes = 0;
  /** A part did not open: it and what follows count for nothing; the first not opening rules out the secret. */
  let unopened: 'none' | 'first' | 'later' = 'none';
  for await (const part of proof) {
    if (!opener) {
      if (part.length !== REPLY_SECRET_BYTES) return rejected(`a secret of ${part.length} bytes`);
      opener = new ReplyOpener(part, terms.enc, MAX_PART_BYTES);
      continue;
    }
    parts++;
    bytes += part.length;
    if (parts > relayed.parts || bytes > relayed.bytes) return rejected('more parts than were relayed');
    hasher.update(part);
    if (unopened !== 'none') continue;
    try {
      count.add(opener.open(part), opener.finished);
    } catch (err) {
      if (!(err instanceof E2EOpenError)) throw err;
      unopened = parts === 1 ? 'first' : 'later';
    }
  }
  if (!opener) return rejected('no secret');
  if (parts !== relayed.parts || hasher.digest() !== relayed.digest)
    return rejected('the parts are not those relayed');
  if (unopened === 'first') return rejected("the secret does not open the reply's first part");
  const counted = count.completionTokens(terms.choices);
  if (terms.billed <= counted) {
    return rejected(
      `the bill's ${terms.billed} completion tokens are within the ${counted} the reply accounts for`,
    );
  }
  return { upheld: true, counted };
}

function rejected(reason: string): Verdict {
  return { upheld: false, reason };
}
