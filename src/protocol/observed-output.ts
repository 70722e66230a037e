/**
 * What a caller actually received of a reply: the one measure both the proxy and the client bound a bill
 * by. Neither trusts the worker's (or the proxy's) word for how many tokens were generated; both count the
 * same parts the same way, so an honest proxy never bills more than an honest client accepts.
 *
 * - A stream part carries output when one of its choices has text (content, reasoning, a refusal, a tool
 *   call); engines stream one token per such part, so a stream accounts for one completion token per part.
 * - A whole (non-stream) response accounts for one completion token per UTF-8 byte of generated text (a
 *   BPE token covers at least one byte).
 * - Each choice may add a few tokens that print nothing (end of sequence, tool-call markers).
 *
 * A sealed reply (end-to-end encrypted) shows neither side's relay its text, only its parts' sizes, so
 * both count what they can see: every part of a stream as one token (the worker sends one part per token
 * and holds back the parts that carry none until the first that does), and every byte of a whole reply as
 * one. The client can read its reply and check the worker's signed usage against the text itself.
 */

/** Tokens per choice that generate no visible text (EOS, tool-call delimiters). */
export const SILENT_TOKENS_PER_CHOICE = 8;

interface ChoiceLike {
  text?: unknown;
  message?: Record<string, unknown>;
  delta?: Record<string, unknown>;
}

const TEXT_FIELDS = ['content', 'reasoning_content', 'reasoning', 'refusal'] as const;

/** UTF-8 bytes of generated text in one message or delta (tool-call names and arguments included). */
function generatedBytes(m: Record<string, unknown> | undefined): number {
  if (!m || typeof m !== 'object') return 0;
  let bytes = 0;
  for (const f of TEXT_FIELDS) {
    const v = m[f];
    if (typeof v === 'string') bytes += Buffer.byteLength(v);
  }
  const calls = m.tool_calls;
  if (Array.isArray(calls)) {
    for (const c of calls) {
      const fn = (c as { function?: { name?: unknown; arguments?: unknown } })?.function;
      if (typeof fn?.name === 'string') bytes += Buffer.byteLength(fn.name);
      if (typeof fn?.arguments === 'string') bytes += Buffer.byteLength(fn.arguments);
    }
  }
  return bytes;
}

function choicesOf(json: unknown): ChoiceLike[] {
  const choices = (json as { choices?: unknown } | null)?.choices;
  return Array.isArray(choices) ? (choices as ChoiceLike[]) : [];
}

/** UTF-8 bytes of generated output in one choice (a stream delta, a message or a completion choice). */
export function choiceOutputBytes(c: unknown): number {
  if (!c || typeof c !== 'object') return 0;
  const choice = c as ChoiceLike;
  return (
    (typeof choice.text === 'string' ? Buffer.byteLength(choice.text) : 0) +
    generatedBytes(choice.delta ?? choice.message)
  );
}

/**
 * The compact content chunk nearly every part of a chat stream is (vLLM's shape, as our worker relays it),
 * matched whole: nothing else can hide in it, so its `content` decides exactly as parsing would, at a
 * sixth of the cost. Every other part is parsed.
 */
const COMPACT_CONTENT_CHUNK =
  /^\{"id":"[^"\\]*","object":"chat\.completion\.chunk","created":\d+,"model":"(?:[^"\\]|\\.)*","choices":\[\{"index":\d+,"delta":\{"content":"((?:[^"\\]|\\.)*)"\}(?:,"logprobs":null)?,"finish_reason":null\}\](?:,"usage":null)?\}$/;

/** Does a stream part carry generated output? Unparseable parts carry none (a client cannot read them). */
export function partCarriesOutput(part: Buffer | string): boolean {
  // latin1 keeps every byte; multi-byte UTF-8 never contains `"` or `\`, so the match is the same.
  const m = COMPACT_CONTENT_CHUNK.exec(typeof part === 'string' ? part : part.toString('latin1'));
  if (m) return m[1]!.length > 0;
  let json: unknown;
  try {
    json = JSON.parse(typeof part === 'string' ? part : part.toString('utf8'));
  } catch {
    return false;
  }
  for (const c of choicesOf(json)) if (choiceOutputBytes(c) > 0) return true;
  return false;
}

/** UTF-8 bytes of generated text in a whole response. */
export function responseOutputBytes(body: Buffer | string): number {
  let json: unknown;
  try {
    json = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch {
    return 0;
  }
  let bytes = 0;
  for (const c of choicesOf(json)) bytes += choiceOutputBytes(c);
  return bytes;
}

/** Counts what one request delivered, part by part (streams) or as one body (JSON replies). */
export class OutputObserver {
  /** Stream parts that carried output. */
  outputParts = 0;
  /** Bytes of generated text in whole responses. */
  outputBytes = 0;

  observePart(part: Buffer | string): boolean {
    const carries = partCarriesOutput(part);
    if (carries) this.outputParts++;
    return carries;
  }

  /** One part of a stream, sealed or not: does it count as output? */
  observeStreamPart(part: Buffer, sealed: boolean): boolean {
    if (!sealed) return this.observePart(part);
    this.outputParts++;
    return true;
  }

  observeResponse(body: Buffer | string): void {
    this.outputBytes += responseOutputBytes(body);
  }

  /** Keeps a part of a whole response that is still arriving; it is read when the bound is asked for. */
  collect(part: Buffer, sealed = false): void {
    if (sealed) this.outputBytes += part.length;
    else this.pending.push(part);
  }

  private pending: Buffer[] = [];

  /** The most completion tokens what was observed can account for, for a request of `n` choices. */
  completionTokens(n: number): number {
    if (this.pending.length > 0) {
      this.observeResponse(Buffer.concat(this.pending));
      this.pending = [];
    }
    return this.outputParts + this.outputBytes + SILENT_TOKENS_PER_CHOICE * n;
  }
}
