import type { Piece } from './bigram-model.ts';
import type { TextGenerator } from './generator.ts';
import { countTokens, decodeTokens } from './tokenizer.ts';

export type FinishReason = 'stop' | 'length';

/**
 * One choice of a request: pulls pieces from its generator and applies max tokens and stop sequences.
 * `step()` returns the text that may be released now. While stop sequences are set it keeps back the last
 * (longest stop − 1) characters: any stop match must begin in that unreleased tail, so text that turns
 * out to be part of a stop sequence is never sent.
 */
export class ChoiceRun {
  /** Released text, the choice's content. */
  text = '';
  /** Tokens of `text` plus the held-back tail: what the engine has generated. */
  tokens = 0;
  finishReason: FinishReason | null = null;
  private pending = '';
  private readonly holdBack: number;

  constructor(
    readonly index: number,
    private readonly generator: TextGenerator,
    private readonly maxTokens: number,
    private readonly stops: string[],
  ) {
    this.holdBack = stops.reduce((m, s) => Math.max(m, s.length - 1), 0);
  }

  /** Generates one piece. Returns the newly releasable text ('' if none); sets finishReason at the end. */
  step(): string {
    if (this.finishReason) return '';
    const room = this.maxTokens - this.tokens;
    if (room <= 0) return this.finish('length');
    const piece = this.generator.next();
    let { text, tokens } = piece;
    // At the limit the engine stops mid-word, after whole tokens; it never emitted end-of-text, so 'length'.
    let reason: FinishReason | null = piece.final ? 'stop' : null;
    if (tokens >= room) {
      if (tokens > room) ({ text, tokens } = firstTokens(piece, room));
      reason = 'length';
    }
    this.tokens += tokens;
    this.pending += text;
    if (this.stops.length > 0) {
      const cut = firstStop(this.pending, this.stops);
      if (cut >= 0) {
        const out = this.pending.slice(0, cut);
        this.pending = '';
        this.text += out;
        // The cut may fall inside a piece: bill what is actually returned.
        this.tokens = countTokens(this.text);
        this.finishReason = 'stop';
        return out;
      }
    }
    if (reason) return this.finish(reason);
    const release = this.pending.length - this.holdBack;
    if (release <= 0) return '';
    const out = this.pending.slice(0, release);
    this.pending = this.pending.slice(release);
    this.text += out;
    return out;
  }

  private finish(reason: FinishReason): string {
    const out = this.pending;
    this.pending = '';
    this.text += out;
    this.finishReason = reason;
    return out;
  }
}

/** The longest prefix of a piece made of at most `k` of its tokens (verified by re-encoding). */
function firstTokens(piece: Piece, k: number): { text: string; tokens: number } {
  for (let j = k; j > 0; j--) {
    const text = decodeTokens(piece.ids.slice(0, j));
    const tokens = countTokens(text);
    if (tokens <= k) return { text, tokens };
  }
  return { text: '', tokens: 0 };
}

/** Index of the earliest stop sequence in `text`, or -1. */
function firstStop(text: string, stops: string[]): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}
