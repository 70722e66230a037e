import { OutputObserver } from './observed-output.ts';
import { SEALED_EVENT_SEPARATOR } from './sealing/index.ts';

/**
 * What a sealed reply's plaintext accounts for, counted as OutputObserver counts a clear reply: each event
 * of a stream, the text of a whole reply. The client counts what it opened; in a dispute the proxy counts
 * the same parts, opened with the key the client reveals, with this same code, so both reach one figure.
 *
 * A part is handed over with its `last` flag as the reply's opener saw it: the last part (the sealed end,
 * carrying a stream's usage chunk) is one event, never split; other stream parts are split into the events
 * the worker coalesced; a whole reply's body is counted once, whole.
 */
export class SealedReplyCount {
  private readonly observer = new OutputObserver();
  private readonly body: Buffer[] = [];

  constructor(private readonly stream: boolean) {}

  /** One opened part; returns the events it carries (a whole reply's pieces come back as they are). */
  add(plain: Buffer, last: boolean): Buffer[] {
    if (!this.stream) {
      if (last) this.observer.observeResponse(plain);
      else this.body.push(plain);
      return [plain];
    }
    const events = last ? [plain] : splitEvents(plain);
    for (const e of events) this.observer.observePart(e);
    return events;
  }

  /** The most completion tokens the plaintext so far accounts for, for a request of `n` choices. */
  completionTokens(n: number): number {
    if (this.body.length > 0) {
      this.observer.observeResponse(this.body.length === 1 ? this.body[0]! : Buffer.concat(this.body));
      this.body.length = 0;
    }
    return this.observer.completionTokens(n);
  }
}

/** The events of a coalesced stream part, in order (newline-separated: JSON text never holds one). */
export function splitEvents(plain: Buffer): Buffer[] {
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
