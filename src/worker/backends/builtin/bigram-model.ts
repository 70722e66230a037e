import { encodeText } from './tokenizer.ts';

/**
 * The built-in "weights": a word bigram table learned at load time from a small English corpus. Words are
 * plain ASCII letters and the only punctuation is '.' and ',', so every emitted piece (' word', 'Word', '.',
 * ',') is exactly one cl100k pre-token: per-piece token counts add up to the count of the whole text, and
 * the generator never has to re-encode what it has produced.
 */
const CORPUS = [
  'the network routes each request to a worker that runs the model inside a trusted machine.',
  'a proxy checks the attestation of every worker before it sends any traffic.',
  'the client pays for tokens with small payments on the chain.',
  'each worker reports the tokens it used, and the proxy settles the bill.',
  'the model reads the prompt and writes a short answer one token at a time.',
  'confidential computing keeps the prompt hidden from the owner of the machine.',
  'Cocoon brings private inference to everyone who holds a wallet on TON.',
  'a good answer is clear, short and honest.',
  'the weather today is calm and the sky is clear.',
  'a small garden needs water, light and a little patience.',
  'the river runs past the old mill and into the quiet valley.',
  'every morning the baker opens the shop and the town smells of fresh bread.',
  'the cat sleeps in the sun while the dog watches the door.',
  'a careful engineer measures twice and ships once.',
  'the cache keeps recent results close to the worker.',
  'when the load grows, the proxy sends new requests to the least busy worker.',
  'the answer depends on the question and on the context you give.',
  'a stream of tokens arrives quickly when the network is fast.',
  'the team writes tests so that the code keeps working after each change.',
  'the library has many books about history, science and art.',
  'at night the stars are bright above the quiet hills.',
  'the train leaves the station at noon and reaches the coast by evening.',
  'good tools make hard work feel simple.',
  'the worker signs each response so the client can trust the result.',
  'privacy matters because the prompt may contain personal data.',
  'the proxy balances traffic across many workers in different regions.',
  'the model has learned patterns from a large amount of text.',
  'a short walk in the park can clear the mind.',
  'the price of each token is set by the worker and accepted by the client.',
  'the old map shows a road that no longer exists.',
  'the children build a tower of blocks and laugh when it falls.',
  'the server restarts quickly and the users notice nothing.',
  'a clear plan makes the long journey easier.',
  'the owner of the machine earns a fair price for the work it serves.',
  'the answer arrives token by token, and the usage arrives at the end.',
  'a good network keeps serving when one of its parts fails.',
];

/** One emittable piece of text with its cl100k token ids. */
export interface Piece {
  text: string;
  tokens: number;
  ids: readonly number[];
}

/** Vocabulary: id → word ('.' and ',' included). */
export const WORDS: string[] = [];
const idOf = new Map<string, number>();
const wordId = (w: string): number => {
  let id = idOf.get(w);
  if (id === undefined) {
    id = WORDS.length;
    WORDS.push(w);
    idOf.set(w, id);
  }
  return id;
};

/** '.' doubles as the sentence-start state: its successors are the corpus's first words. */
export const PERIOD = wordId('.');
export const COMMA = wordId(',');

/** Per word: successor ids (most frequent first) and the log of their counts. */
export const SUCCESSORS: Int32Array[] = [];
export const LOG_COUNTS: Float64Array[] = [];
/** Word triples seen in the corpus: the decoder favours them, which keeps phrases intact. */
const TRIGRAMS = new Set<number>();
const trigramKey = (a: number, b: number, c: number): number => (a * 4096 + b) * 4096 + c;

function learn(): void {
  const counts: Map<number, number>[] = [];
  let prev2 = PERIOD;
  let prev = PERIOD;
  for (const sentence of CORPUS) {
    for (const w of sentence.match(/[A-Za-z]+|[.,]/g) ?? []) {
      const id = wordId(w);
      counts[prev] ??= new Map();
      counts[prev]!.set(id, (counts[prev]!.get(id) ?? 0) + 1);
      TRIGRAMS.add(trigramKey(prev2, prev, id));
      prev2 = prev;
      prev = id;
    }
  }
  for (let id = 0; id < WORDS.length; id++) {
    // Stable sort keeps first-seen order among equals, so greedy decoding is reproducible.
    const entries = [...(counts[id] ?? new Map<number, number>()).entries()].sort((a, b) => b[1] - a[1]);
    SUCCESSORS[id] = Int32Array.from(entries, (e) => e[0]);
    LOG_COUNTS[id] = Float64Array.from(entries, (e) => Math.log(e[1]));
  }
}
learn();
if (WORDS.length > 4096) throw new Error('built-in vocabulary too large for trigram keys');

export const MAX_SUCCESSORS = SUCCESSORS.reduce((m, s) => Math.max(m, s.length), 0);

export const isTrigram = (a: number, b: number, c: number): boolean => TRIGRAMS.has(trigramKey(a, b, c));

export const isPunctuation = (id: number): boolean => id === PERIOD || id === COMMA;

/** Look up a word of the vocabulary (case-insensitive for ordinary words), or -1. */
export function findWord(word: string): number {
  return idOf.get(word) ?? idOf.get(word.toLowerCase()) ?? -1;
}

const piece = (text: string): Piece => {
  const ids = encodeText(text);
  return { text, tokens: ids.length, ids };
};
const capitalize = (w: string): string => w.charAt(0).toUpperCase() + w.slice(1);

/**
 * Precomputed pieces per word, indexed `id * 4 + (bare ? 2 : 0) + (capital ? 1 : 0)`: with or without the
 * leading space, lower or sentence case. Encoding once here keeps the per-token cost at a table lookup.
 */
const FORMS: Piece[] = [];
for (const w of WORDS) {
  if (w === '.' || w === ',') {
    const p = piece(w);
    FORMS.push(p, p, p, p);
  } else {
    FORMS.push(piece(` ${w}`), piece(` ${capitalize(w)}`), piece(w), piece(capitalize(w)));
  }
}

export function pieceOf(id: number, bare: boolean, capital: boolean): Piece {
  return FORMS[id * 4 + (bare ? 2 : 0) + (capital ? 1 : 0)]!;
}

/** Every distinct piece the model can emit (tests check the token-additivity claim over all of them). */
export function allPieces(): Piece[] {
  return [...new Set(FORMS)];
}
