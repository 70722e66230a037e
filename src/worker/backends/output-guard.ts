import type { InferenceRequest } from '../../protocol/inference.ts';
import { choiceOutputBytes, SILENT_TOKENS_PER_CHOICE } from '../../protocol/observed-output.ts';
import { ChunkShapes } from '../../protocol/openai-shapes.ts';

/**
 * The worker's check of its engine's output against the call's bounds. The engine was told the bounds
 * (`engineBody`), but an engine may ignore them (a bug, a misconfigured server, a body field we did not
 * know of); the caller must still get no more than it pays for, and the worker must never report more than
 * the proxy accepts, or the proxy cuts it off with every other stream it carries.
 *
 * What counts as output is what the proxy and the client count (src/protocol/observed-output.ts): text in a
 * choice's `text`, `content`, `reasoning_content`, `reasoning`, `refusal`, or a tool call's name or
 * arguments. A stream part carrying output stands for one token (engines stream one token per part per
 * choice); a whole response stands for at most one token per UTF-8 byte of output (a BPE token covers at
 * least one byte); each choice may add a few tokens that print nothing (SILENT_TOKENS_PER_CHOICE).
 */

type Json = Record<string, unknown>;

/** Output-less parts a choice may send besides one per token: its role chunk, its finish chunk, a few more. */
const FRAMING_PARTS_PER_CHOICE = SILENT_TOKENS_PER_CHOICE + 2;

/** Parts with no choice at all (neither output nor usage) a stream may send. */
const MAX_STRAY_PARTS = 16;

/**
 * Follows one stream, chunk by chunk. Each choice may carry at most `maxTokens` output parts, and only
 * until it finished; indexes are 0..n−1; a choice sends at most a few output-less parts besides; the stream
 * at most a few parts without any choice. The first chunk past a bound sets `violation`: its offending
 * choices are dropped, and the backend stops the engine and closes the stream (`closingChunks`).
 */
export class StreamGuard {
  /** Why the engine is being stopped (null while it stays within the bounds). */
  violation: string | null = null;
  private readonly outputParts: number[];
  private readonly parts: number[];
  private readonly finished: boolean[];
  private readonly seen: boolean[];
  private stray = 0;
  /** The last chunk's envelope (id, object, created, …): closing chunks are made in its image. */
  private template: Json | null = null;

  constructor(private readonly req: InferenceRequest) {
    this.outputParts = new Array(req.n).fill(0);
    this.parts = new Array(req.n).fill(0);
    this.finished = new Array(req.n).fill(false);
    this.seen = new Array(req.n).fill(false);
  }

  /**
   * Checks one parsed chunk that has no usage-only role (a chunk with `choices: []` and usage is the
   * backend's to hold). Returns `'as-is'` when the chunk is one valid choice (forward the engine's text),
   * or else the chunks to forward instead: one per valid choice, so every forwarded part carries one choice
   * and one part is one token of one choice, the way the proxy counts.
   */
  admit(chunk: Json): 'as-is' | Json[] {
    this.template = chunk;
    const choices = chunk.choices;
    if (!Array.isArray(choices) || choices.length === 0) {
      if (++this.stray > MAX_STRAY_PARTS) {
        this.violation = `more than ${MAX_STRAY_PARTS} stream parts without a choice`;
        return [];
      }
      return 'as-is';
    }
    const kept: Json[] = [];
    for (const c of choices) if (this.admitChoice(c)) kept.push(c as Json);
    if (kept.length === choices.length && choices.length === 1) return 'as-is';
    return kept.map((c) => ({ ...chunk, choices: [c] }));
  }

  private admitChoice(c: unknown): boolean {
    const { maxTokens, n } = this.req;
    if (!c || typeof c !== 'object') return this.violate('a choice that is not an object');
    const choice = c as Json;
    const i = choice.index;
    if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= n) {
      return this.violate(`choice index ${JSON.stringify(i)} outside 0..${n - 1} (n = ${n})`);
    }
    const carries = choiceOutputBytes(choice) > 0;
    if (carries && this.finished[i]) return this.violate(`output for choice ${i} after it finished`);
    if (carries && this.outputParts[i]! >= maxTokens) {
      return this.violate(`more than max_tokens = ${maxTokens} tokens for choice ${i}`);
    }
    if (this.parts[i]! >= maxTokens + FRAMING_PARTS_PER_CHOICE) {
      return this.violate(`more than ${maxTokens + FRAMING_PARTS_PER_CHOICE} stream parts for choice ${i}`);
    }
    this.parts[i]!++;
    if (carries) this.outputParts[i]!++;
    this.seen[i] = true;
    if (choice.finish_reason !== null && choice.finish_reason !== undefined) this.finished[i] = true;
    return true;
  }

  private violate(why: string): false {
    this.violation ??= why;
    return false;
  }

  /** Output parts forwarded, over all choices: what the caller was delivered, one token each. */
  get deliveredParts(): number {
    return this.outputParts.reduce((a, b) => a + b, 0);
  }

  /**
   * The most completion tokens a stream that ended on its own can account for: per choice that appeared,
   * one per output part plus the silent allowance, never above max_tokens.
   */
  completionCap(): number {
    let cap = 0;
    for (let i = 0; i < this.req.n; i++) {
      if (this.seen[i]) cap += Math.min(this.req.maxTokens, this.outputParts[i]! + SILENT_TOKENS_PER_CHOICE);
    }
    return cap;
  }

  /** Finish chunks (`finish_reason: 'length'`) for every choice that began and did not finish. */
  closingChunks(): Json[] {
    const out: Json[] = [];
    const shapes = this.shapesOf(this.template ?? {});
    for (let i = 0; i < this.req.n; i++) {
      if (!this.seen[i] || this.finished[i]) continue;
      this.finished[i] = true;
      out.push(shapes.chunkObject([shapes.finishChoice(i, 'length')]));
    }
    return out;
  }

  /** A chunk in the stream's own envelope (id, created, fingerprint), our model name, the given choices. */
  envelope(t: Json, choices: unknown[]): Json {
    return this.shapesOf(t).chunkObject(choices);
  }

  private shapesOf(t: Json): ChunkShapes {
    return new ChunkShapes({
      id: typeof t.id === 'string' ? t.id : '',
      kind: this.req.kind,
      created: typeof t.created === 'number' ? t.created : Math.floor(Date.now() / 1000),
      model: this.req.model,
      includeUsage: this.req.includeUsage,
      ...(typeof t.system_fingerprint === 'string' ? { systemFingerprint: t.system_fingerprint } : {}),
    });
  }

  /** The last chunk seen (the envelope for a usage chunk made by the worker). */
  get lastChunk(): Json {
    return this.template ?? {};
  }
}

/** What checking a whole (non-stream) reply found. */
export interface ReplyCheck {
  /** Why the reply went past the call's bounds (none when it did not). */
  violations: string[];
  /** The most completion tokens the reply, as it goes to the caller, can account for. */
  completionCap: number;
}

/**
 * Checks a whole reply in place. Choices beyond `n`, with an index outside 0..n−1 or repeated, are dropped.
 * If the engine says it generated more than max_tokens per choice, the text cannot be cut at a token
 * boundary here (the worker has not the model's tokenizer): each choice's output is cut to max_tokens
 * UTF-8 bytes, which is at most max_tokens tokens under any tokenizer whose tokens cover a byte at least,
 * and marked `finish_reason: 'length'` (its log-probabilities no longer match it and are dropped).
 */
export function checkReply(obj: Json, req: InferenceRequest, reportedCompletion: number): ReplyCheck {
  const violations: string[] = [];
  const raw = Array.isArray(obj.choices) ? (obj.choices as unknown[]) : [];
  const taken = new Set<number>();
  const kept: Json[] = [];
  raw.forEach((c, position) => {
    if (!c || typeof c !== 'object') {
      violations.push('a choice that is not an object');
      return;
    }
    const choice = c as Json;
    const i = choice.index === undefined ? position : choice.index;
    if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= req.n || taken.has(i)) {
      violations.push(`choice index ${JSON.stringify(i)} outside 0..${req.n - 1} or repeated (n = ${req.n})`);
      return;
    }
    taken.add(i);
    kept.push(choice);
  });
  if (kept.length !== raw.length) obj.choices = kept;
  if (reportedCompletion > req.maxTokens * kept.length) {
    violations.push(
      `engine reports ${reportedCompletion} completion tokens for ${kept.length} choices of at most ${req.maxTokens}`,
    );
    for (const c of kept) if (choiceOutputBytes(c) > req.maxTokens) cutChoice(c, req.maxTokens);
  }
  let cap = 0;
  for (const c of kept) cap += Math.min(req.maxTokens, choiceOutputBytes(c) + SILENT_TOKENS_PER_CHOICE);
  return { violations, completionCap: cap };
}

/** Cuts a choice's output to `budget` UTF-8 bytes (reasoning first, then content; tool calls only whole). */
function cutChoice(c: Json, budget: number): void {
  let left = budget;
  const take = (s: string): string => {
    const cut = utf8Prefix(s, left);
    left -= Buffer.byteLength(cut);
    return cut;
  };
  if (typeof c.text === 'string') c.text = take(c.text);
  const m = c.message as Json | undefined;
  if (m && typeof m === 'object') {
    for (const f of ['reasoning_content', 'reasoning', 'content', 'refusal'] as const) {
      if (typeof m[f] === 'string') m[f] = take(m[f] as string);
    }
    if (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) {
      const bytes = choiceOutputBytes({ message: { tool_calls: m.tool_calls } });
      if (bytes > left) delete m.tool_calls;
      else left -= bytes;
    }
  }
  c.finish_reason = 'length';
  if (c.logprobs !== undefined) c.logprobs = null;
}

/** The longest prefix of `s` of at most `maxBytes` UTF-8 bytes, cut between code points. */
export function utf8Prefix(s: string, maxBytes: number): string {
  if (maxBytes <= 0) return '';
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let bytes = 0;
  let end = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const size = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += ch.length;
  }
  return s.slice(0, end);
}
