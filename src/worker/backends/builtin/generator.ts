import { createHash } from 'node:crypto';
import {
  findWord,
  isPunctuation,
  isTrigram,
  LOG_COUNTS,
  MAX_SUCCESSORS,
  PERIOD,
  type Piece,
  pieceOf,
  SUCCESSORS,
} from './bigram-model.ts';

/**
 * The built-in model's decoder: a deterministic walk over the bigram table. Each step scores the current
 * word's successors (log count + a prompt-dependent bias − a penalty for words used recently) and takes the
 * best (temperature 0) or samples with a PRNG seeded from (model, prompt, seed, choice), after temperature
 * scaling and top_p truncation. The prompt bias is what makes different prompts give different answers
 * even greedily; the seed only moves sampling, so at temperature 0 every seed and choice agree, as with a
 * real engine. After a length drawn from the same hash (20–100 tokens) it ends at the next full stop.
 */

export interface GeneratorInput {
  model: string;
  /** The rendered prompt (what the model conditions on). */
  prompt: string;
  seed: number | null;
  /** Choice index: each choice samples its own stream. */
  choice: number;
  temperature: number;
  topP: number;
  /** Start with a word without leading space (chat answers, or a prompt that ends in whitespace). */
  bareStart: boolean;
  /** Continue the prompt's last sentence instead of starting a new one when its last word is known. */
  continuePrompt: boolean;
}

const MIN_TARGET = 20;
const TARGET_SPAN = 81;
/** Past the target, favour ending the sentence; well past it, end it regardless. */
const END_BONUS = 3;
const FORCE_END_AFTER = 20;
const PROMPT_BIAS = 1.5;
const TRIGRAM_BONUS = 1;
const REPEAT_PENALTY = 1.2;
const RECENT = 12;

/** sfc32: small, fast, and fully determined by 128 bits of hash. */
function sfc32(a: number, b: number, c: number, d: number): () => number {
  return () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/** A 32-bit integer hash (lowbias32), for per-(prompt, word pair) biases without any table. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

// Scratch space for one step's scores; steps run synchronously, so one set serves every generator.
const scores = new Float64Array(MAX_SUCCESSORS);
const order: number[] = [];

export class TextGenerator {
  /** Tokens produced so far (before any cut by the caller). */
  tokens = 0;
  private readonly promptKey: number;
  private readonly random: () => number;
  private readonly target: number;
  private readonly recent = new Int32Array(RECENT).fill(-1);
  private recentAt = 0;
  private prev = PERIOD;
  private prev2 = PERIOD;
  /** Pieces so far: salts the prompt bias, so greedy decoding cannot settle into a cycle. */
  private step = 0;
  private first = true;
  private readonly bareStart: boolean;

  constructor(private readonly input: GeneratorInput) {
    const promptDigest = createHash('sha256').update(`${input.model}\u0000${input.prompt}`).digest();
    this.promptKey = promptDigest.readUInt32LE(0);
    const greedy = input.temperature === 0 || input.topP === 0;
    const choiceDigest = createHash('sha256')
      .update(promptDigest)
      .update(greedy ? 'greedy' : `${input.seed ?? 'none'}\u0000${input.choice}`)
      .digest();
    const w = (i: number) => choiceDigest.readUInt32LE(i * 4);
    this.random = sfc32(w(0), w(1), w(2), w(3));
    this.target = MIN_TARGET + (w(4) % TARGET_SPAN);
    this.bareStart = input.bareStart;
    if (input.continuePrompt) {
      const last = /([A-Za-z]+|[.,])\s*$/.exec(input.prompt)?.[1];
      const id = last === undefined ? -1 : findWord(last);
      if (id >= 0) this.prev = id;
    }
  }

  /** The next piece; `final` means the model would emit end-of-text after it. */
  next(): Piece & { final: boolean } {
    const id = this.choose();
    const piece = pieceOf(id, this.first && this.bareStart, this.prev === PERIOD);
    this.first = false;
    this.prev2 = this.prev;
    this.prev = id;
    this.step++;
    if (!isPunctuation(id)) {
      this.recent[this.recentAt] = id;
      this.recentAt = (this.recentAt + 1) % RECENT;
    }
    this.tokens += piece.tokens;
    return { ...piece, final: id === PERIOD && this.tokens >= this.target };
  }

  private choose(): number {
    const succ = SUCCESSORS[this.prev]!;
    const logCounts = LOG_COUNTS[this.prev]!;
    // Never right after punctuation: '.' next to ',' would merge into one pre-token.
    if (this.tokens >= this.target + FORCE_END_AFTER && !isPunctuation(this.prev)) return PERIOD;
    const wantEnd = this.tokens >= this.target;
    const salt = this.promptKey ^ Math.imul(this.prev + 1, 0x9e3779b1) ^ Math.imul(this.step + 1, 0xc2b2ae35);
    let best = 0;
    for (let i = 0; i < succ.length; i++) {
      const id = succ[i]!;
      let s = logCounts[i]! + (mix32(salt ^ Math.imul(id + 1, 0x85ebca77)) / 2 ** 32) * PROMPT_BIAS;
      if (isTrigram(this.prev2, this.prev, id)) s += TRIGRAM_BONUS;
      for (let r = 0; r < RECENT; r++) if (this.recent[r] === id) s -= REPEAT_PENALTY;
      if (wantEnd && id === PERIOD) s += END_BONUS;
      scores[i] = s;
      if (s > scores[best]!) best = i;
    }
    const { temperature, topP } = this.input;
    if (succ.length === 1 || temperature === 0 || topP === 0) return succ[best]!;

    // Softmax weights at this temperature, most likely first, cut to the top_p nucleus.
    const top = scores[best]!;
    let total = 0;
    order.length = 0;
    for (let i = 0; i < succ.length; i++) {
      scores[i] = Math.exp((scores[i]! - top) / temperature);
      total += scores[i]!;
      order.push(i);
    }
    order.sort((x, y) => scores[y]! - scores[x]! || x - y);
    let keep = order.length;
    if (topP < 1) {
      let mass = 0;
      for (let k = 0; k < order.length; k++) {
        mass += scores[order[k]!]!;
        if (mass >= topP * total) {
          keep = k + 1;
          break;
        }
      }
    }
    let kept = 0;
    for (let k = 0; k < keep; k++) kept += scores[order[k]!]!;
    let r = this.random() * kept;
    for (let k = 0; k < keep; k++) {
      r -= scores[order[k]!]!;
      if (r < 0) return succ[order[k]!]!;
    }
    return succ[order[keep - 1]!]!;
  }
}
