import { BadGatewayError } from '../../../errors.ts';

/**
 * Incremental decoder for server-sent events (the WHATWG format engines stream in): bytes in, the `data`
 * of each complete event out. Handles chunks split anywhere (also inside a UTF-8 character), CRLF/CR/LF
 * line ends, comment lines (`:` keep-alives), and multi-line data. Other fields (event, id, retry) are
 * ignored: OpenAI-compatible engines put everything in `data`.
 */
export class SseDecoder {
  private readonly text = new TextDecoder('utf-8');
  private buf = '';
  private data: string[] = [];
  private dataChars = 0;

  /** `maxEventChars`: an event (or an unfinished line) longer than this is refused, not buffered on. */
  constructor(private readonly maxEventChars = Number.POSITIVE_INFINITY) {}

  /** Feeds bytes; returns the data of every event completed by them. */
  push(chunk: Uint8Array): string[] {
    this.buf += this.text.decode(chunk, { stream: true });
    const events: string[] = [];
    let start = 0;
    for (;;) {
      const nl = this.nextLineEnd(start);
      if (nl < 0) break;
      const line = this.buf.slice(start, nl);
      // A CR at the very end may be the first half of CRLF: wait for the next chunk to know.
      const crlf = this.buf[nl] === '\r' && this.buf[nl + 1] === '\n';
      start = nl + (crlf ? 2 : 1);
      this.onLine(line, events);
    }
    this.buf = this.buf.slice(start);
    if (this.buf.length + this.dataChars > this.maxEventChars) this.tooLong();
    return events;
  }

  /** Ends the input. Unlike the browser EventSource, we deliver an unterminated last event: some engines
   *  close the stream right after `data: [DONE]` without the blank line. */
  end(): string[] {
    const events: string[] = [];
    const rest = this.buf + this.text.decode();
    this.buf = '';
    if (rest.length > 0) this.onLine(rest.replace(/\r$/, ''), events);
    if (this.data.length > 0) this.onLine('', events);
    return events;
  }

  private nextLineEnd(from: number): number {
    for (let i = from; i < this.buf.length; i++) {
      const c = this.buf.charCodeAt(i);
      if (c === 10) return i;
      if (c === 13) return i + 1 < this.buf.length ? i : -1;
    }
    return -1;
  }

  private onLine(line: string, events: string[]): void {
    if (line === '') {
      if (this.data.length > 0) events.push(this.data.join('\n'));
      this.data = [];
      this.dataChars = 0;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.data.push(value);
    this.dataChars += value.length + 1;
    if (this.dataChars > this.maxEventChars) this.tooLong();
  }

  private tooLong(): never {
    throw new BadGatewayError(
      `engine streamed an event longer than ${this.maxEventChars} characters`,
      'engine_reply_too_large',
    );
  }
}
