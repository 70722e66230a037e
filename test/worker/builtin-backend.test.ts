import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encode } from 'gpt-tokenizer/encoding/cl100k_base';
import {
  BadRequestError,
  CancelledError,
  GatewayTimeoutError,
  ModelNotFoundError,
} from '../../src/errors.ts';
import type { InferenceRequest, TokenUsage } from '../../src/protocol/inference.ts';
import { allPieces } from '../../src/worker/backends/builtin/bigram-model.ts';
import { BuiltinBackend } from '../../src/worker/backends/builtin/index.ts';
import { chatPrompt } from '../../src/worker/backends/builtin/prompt.ts';
import { drainReply } from './drain-reply.ts';

const CLOCK_MS = 1_700_000_000_123;
const backend = new BuiltinBackend({ clock: () => CLOCK_MS });
const tokens = (text: string) => encode(text, { disallowedSpecial: new Set() }).length;

type Body = Record<string, unknown>;
// biome-ignore lint/suspicious/noExplicitAny: parsed OpenAI JSON, inspected field by field
type Json = any;

/** The call's bounds as an honest client normalizes them from the body (tests may pass others in `extra`). */
function bounds(body: Body): Pick<InferenceRequest, 'maxTokens' | 'n'> {
  const limit = body.max_completion_tokens ?? body.max_tokens;
  return { maxTokens: typeof limit === 'number' ? limit : 4096, n: typeof body.n === 'number' ? body.n : 1 };
}

function chatReq(content: string, body: Body = {}, extra: Partial<InferenceRequest> = {}): InferenceRequest {
  return {
    kind: 'chat',
    model: 'cocoon-tiny',
    body: { model: 'cocoon-tiny', messages: [{ role: 'user', content }], ...body },
    stream: false,
    includeUsage: false,
    ...bounds(body),
    timeoutMs: 60_000,
    maxCoefficient: 1000,
    minTier: 'dev',
    ...extra,
  };
}

function completionReq(
  prompt: unknown,
  body: Body = {},
  extra: Partial<InferenceRequest> = {},
): InferenceRequest {
  return {
    ...chatReq('', {}, { ...bounds(body), ...extra }),
    kind: 'completion',
    body: { model: 'cocoon-tiny', prompt, ...body },
  };
}

const streaming = (req: InferenceRequest, includeUsage = false): InferenceRequest => ({
  ...req,
  stream: true,
  includeUsage,
});

async function run(
  req: InferenceRequest,
  b: BuiltinBackend = backend,
  signal = new AbortController().signal,
): Promise<{ out: Json[]; usage: TokenUsage }> {
  return drainReply(b.infer(req, signal));
}

/** Non-stream: the one response object. */
async function complete(req: InferenceRequest): Promise<Json> {
  const { out, usage } = await run(req);
  assert.equal(out.length, 1);
  const u = out[0].usage;
  assert.deepEqual(usage, {
    promptTokens: u.prompt_tokens,
    cachedTokens: 0,
    completionTokens: u.completion_tokens,
    reasoningTokens: 0,
  });
  return out[0];
}

const content = (r: Json, i = 0): string => r.choices[i].message.content;

/** Streamed text per choice index, from chat or completion chunks. */
function streamedText(chunks: Json[]): Map<number, string> {
  const texts = new Map<number, string>();
  for (const c of chunks) {
    for (const ch of c.choices) {
      const piece = ch.delta ? (ch.delta.content ?? '') : ch.text;
      texts.set(ch.index, (texts.get(ch.index) ?? '') + piece);
    }
  }
  return texts;
}

describe('BuiltinBackend', () => {
  test('serves the configured model names', () => {
    assert.equal(backend.kind, 'builtin');
    assert.deepEqual(backend.models(), ['cocoon-tiny']);
    assert.deepEqual(new BuiltinBackend({ models: ['a', 'b'] }).models(), ['a', 'b']);
  });

  test('unknown model is ModelNotFoundError, before anything is yielded', async () => {
    const err = await run({ ...chatReq('hi'), model: 'gpt-9' }).catch((e: unknown) => e);
    assert.ok(err instanceof ModelNotFoundError);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'model_not_found');
  });

  test('invalid sampling parameters are 400s', async () => {
    for (const body of [
      { n: 9 },
      { n: 0 },
      { temperature: 3 },
      { top_p: -1 },
      { stop: ['a', 'b', 'c', 'd', 'e'] },
    ]) {
      await assert.rejects(run(chatReq('hi', body)), BadRequestError, JSON.stringify(body));
    }
    await assert.rejects(run(chatReq('hi', { messages: 'nope' })), BadRequestError);
  });

  test('chat completion has exactly the OpenAI shape', async () => {
    const r = await complete(chatReq('Tell me about TON.', { max_tokens: 30 }));
    assert.match(r.id, /^chatcmpl-[0-9a-f]{32}$/);
    const text = content(r);
    assert.ok(text.length > 0);
    const u = r.usage;
    const reason = r.choices[0].finish_reason;
    assert.deepEqual(r, {
      id: r.id,
      object: 'chat.completion',
      created: Math.floor(CLOCK_MS / 1000),
      model: 'cocoon-tiny',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: text, refusal: null },
          logprobs: null,
          finish_reason: reason,
        },
      ],
      usage: {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: tokens(text),
        total_tokens: u.prompt_tokens + tokens(text),
        prompt_tokens_details: { cached_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0 },
      },
    });
    assert.ok(u.prompt_tokens > 0 && u.completion_tokens <= 30);
    assert.ok(['stop', 'length'].includes(reason));
  });

  test('completion has exactly the OpenAI shape, and echo prepends the prompt', async () => {
    const r = await complete(completionReq('Once upon a time', { max_tokens: 12 }));
    assert.match(r.id, /^cmpl-[0-9a-f]{32}$/);
    const text = r.choices[0].text;
    assert.deepEqual(r, {
      id: r.id,
      object: 'text_completion',
      created: Math.floor(CLOCK_MS / 1000),
      model: 'cocoon-tiny',
      choices: [{ text, index: 0, logprobs: null, finish_reason: 'length' }],
      usage: {
        prompt_tokens: tokens('Once upon a time'),
        completion_tokens: 12,
        total_tokens: tokens('Once upon a time') + 12,
        prompt_tokens_details: { cached_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0 },
      },
    });
    assert.equal(tokens(text), 12);
    const echoed = await complete(completionReq('Once upon a time', { max_tokens: 12, echo: true }));
    assert.equal(echoed.choices[0].text, `Once upon a time${text}`);
    assert.equal(echoed.usage.completion_tokens, 12);
  });

  test('deterministic: same request, same output (its own id); prompt and seed change it', async () => {
    const a = await complete(chatReq('determinism', { seed: 7 }));
    const b = await complete(chatReq('determinism', { seed: 7 }));
    assert.notEqual(a.id, b.id);
    assert.deepEqual({ ...a, id: null }, { ...b, id: null });
    const texts = new Set<string>();
    for (const seed of [1, 2, 3, 4]) texts.add(content(await complete(chatReq('determinism', { seed }))));
    assert.equal(texts.size, 4, 'different seeds gave the same text');
    const other = await complete(chatReq('something else', { seed: 7 }));
    assert.notEqual(content(other), content(a));
    // The model name is part of what the output depends on.
    const two = new BuiltinBackend({ models: ['cocoon-tiny', 'cocoon-other'] });
    const m2 = await run({ ...chatReq('determinism', { seed: 7 }), model: 'cocoon-other' }, two);
    assert.notEqual(m2.out[0].choices[0].message.content, content(a));
  });

  test('temperature 0 is greedy: seed and choice do not matter, the prompt does', async () => {
    const g = (prompt: string, seed: number) => complete(chatReq(prompt, { temperature: 0, seed, n: 2 }));
    const a = await g('greedy', 1);
    const b = await g('greedy', 2);
    assert.equal(content(a), content(b));
    assert.equal(content(a, 0), content(a, 1));
    // Same length, so only the words can differ.
    const fixed = (prompt: string) => complete(chatReq(prompt, { temperature: 0, max_tokens: 15 }));
    assert.notEqual(content(await fixed('another prompt')), content(await fixed('greedy')));
    // A vanishing nucleus keeps only the most likely word: the same words as greedy decoding.
    const greedy15 = content(await complete(chatReq('greedy', { temperature: 0, max_tokens: 15 })));
    for (const seed of [1, 2, 3]) {
      const nucleus = await complete(chatReq('greedy', { top_p: 1e-9, seed, max_tokens: 15 }));
      assert.equal(content(nucleus), greedy15);
    }
  });

  test('every piece is whole cl100k pre-tokens: counts add up, prefixes of pieces split cleanly', () => {
    const pieces = allPieces();
    assert.ok(pieces.length > 100);
    for (const p of pieces) {
      assert.equal(p.tokens, tokens(p.text), p.text);
      assert.deepEqual(p.ids, encode(p.text));
    }
    // Adjacent pieces do not merge: the count of a joined text is the sum of the counts.
    const words = pieces.filter((p) => p.text.startsWith(' '));
    for (let i = 0; i + 2 < words.length; i++) {
      const [a, b, c] = [words[i]!, words[i + 1]!, words[i + 2]!];
      assert.equal(tokens(a.text + b.text + ',' + c.text + '.'), a.tokens + b.tokens + c.tokens + 2);
    }
  });

  test('completion_tokens is the real token count of the text, for every choice and setting', async () => {
    let checked = 0;
    for (const temperature of [0, 0.5, 1, 2]) {
      for (const prompt of ['hello', 'What is Cocoon?', 'x'.repeat(50), '<|endoftext|> as text']) {
        const r = await complete(chatReq(prompt, { temperature, n: 3, top_p: 0.9, seed: checked }));
        let sum = 0;
        for (const c of r.choices) sum += tokens(c.message.content);
        assert.equal(r.usage.completion_tokens, sum);
        const cr = await complete(completionReq(prompt, { temperature, n: 2, max_tokens: 50 }));
        assert.equal(cr.usage.completion_tokens, tokens(cr.choices[0].text) + tokens(cr.choices[1].text));
        assert.equal(cr.usage.prompt_tokens, tokens(prompt));
        checked++;
      }
    }
  });

  test('natural answers end with a full stop at 20..120 tokens', async () => {
    for (let seed = 0; seed < 30; seed++) {
      const r = await complete(chatReq('length', { seed }));
      assert.equal(r.choices[0].finish_reason, 'stop');
      assert.ok(content(r).endsWith('.'));
      assert.ok(
        r.usage.completion_tokens >= 20 && r.usage.completion_tokens <= 125,
        `${r.usage.completion_tokens}`,
      );
    }
  });

  test('max tokens is honoured exactly, also when the limit falls inside a word', async () => {
    let midWord = 0;
    // Several answers, until some limit has fallen inside a multi-token word ('attestation', ...).
    for (let seed = 0; seed < 20 && midWord === 0; seed++) {
      const full = content(await complete(chatReq('limits', { seed })));
      // Below the natural length every limit is hit (a limit equal to it would end with 'length' too).
      for (let max = 1; max < tokens(full); max++) {
        const r = await complete(chatReq('limits', { seed, max_tokens: max }));
        const text = content(r);
        assert.equal(r.choices[0].finish_reason, 'length');
        assert.equal(r.usage.completion_tokens, max);
        assert.equal(tokens(text), max);
        assert.ok(full.startsWith(text), 'a limit changes where the text ends, not what it says');
        if (/[a-z]$/i.test(text) && /^[a-z]/i.test(full.slice(text.length))) midWord++;
      }
    }
    assert.ok(midWord > 0, 'no limit fell inside a multi-token word');
  });

  test("the call's maxTokens and n are the bounds, whatever the body says; 0 gives nothing", async () => {
    // A dishonest body asks for more than the call was reserved for: the call wins.
    const more = { max_tokens: 300, max_completion_tokens: 200, n: 8 };
    const a = await complete(chatReq('caps', more, { maxTokens: 4, n: 1 }));
    assert.equal(a.choices.length, 1);
    assert.equal(a.usage.completion_tokens, 4);
    const b = await run(streaming(chatReq('caps', more, { maxTokens: 3, n: 2 }), true));
    assert.deepEqual([...streamedText(b.out).keys()].sort(), [0, 1]);
    assert.equal(b.usage.completionTokens, 6);
    // And a body asking for less does not shrink what the call asked for either.
    const c = await complete(chatReq('caps', { max_tokens: 1, n: 1 }, { maxTokens: 9, n: 2 }));
    assert.equal(c.choices.length, 2);
    assert.equal(c.usage.completion_tokens, 18);
    const zero = await complete(chatReq('caps', { n: 2 }, { maxTokens: 0 }));
    for (const ch of zero.choices) {
      assert.equal(ch.message.content, '');
      assert.equal(ch.finish_reason, 'length');
    }
    assert.equal(zero.usage.completion_tokens, 0);
    // The stream flag is the call's too.
    const s = await run(chatReq('caps', { stream: true, max_tokens: 5 }));
    assert.equal(s.out.length, 1);
    assert.equal(s.out[0].object, 'chat.completion');
  });

  test('stop sequences cut the text before the first match, across piece boundaries', async () => {
    const full = content(await complete(chatReq('stops', { seed: 11 })));
    assert.ok(full.length > 60);
    // Starts mid-word and spans a space: never one piece.
    const at = full.indexOf(' ', 30) - 2;
    const stop = full.slice(at, at + 6);
    assert.ok(stop.includes(' ') && /^[a-z]/i.test(stop), stop);
    const expected = full.slice(0, full.indexOf(stop));
    const r = await complete(chatReq('stops', { seed: 11, stop }));
    assert.equal(content(r), expected);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.usage.completion_tokens, tokens(expected));
    // The earliest of several stops wins; one that never occurs changes nothing.
    const early = full.slice(5, 8);
    const both = await complete(chatReq('stops', { seed: 11, stop: [stop, early, 'zzzz'] }));
    assert.equal(content(both), full.slice(0, full.indexOf(early)));
    assert.equal(content(await complete(chatReq('stops', { seed: 11, stop: ['zzzz'] }))), full);
  });

  test('streaming never sends text that becomes part of a stop sequence', async () => {
    const full = content(await complete(chatReq('stops', { seed: 11 })));
    for (let at = 10; at < 50; at += 3) {
      const stop = full.slice(at, at + 5);
      const expected = full.slice(0, full.indexOf(stop));
      const { out, usage } = await run(streaming(chatReq('stops', { seed: 11, stop })));
      assert.equal(streamedText(out).get(0), expected, JSON.stringify(stop));
      for (const c of out) assert.ok(!(c.choices[0]?.delta?.content ?? '').includes(stop));
      assert.equal(out.at(-1).choices[0].finish_reason, 'stop');
      assert.equal(usage.completionTokens, tokens(expected));
    }
    const cs = await run(streaming(completionReq('The river', { seed: 3, stop: [' the'] })));
    const text = streamedText(cs.out).get(0)!;
    assert.ok(!text.includes(' the'));
    assert.equal(cs.usage.completionTokens, tokens(text));
  });

  test('n choices: indexes 0..n-1, each its own text, usage summed', async () => {
    const r = await complete(chatReq('choices', { n: 4, seed: 1, max_tokens: 60 }));
    assert.deepEqual(
      r.choices.map((c: Json) => c.index),
      [0, 1, 2, 3],
    );
    assert.equal(new Set(r.choices.map((c: Json) => c.message.content)).size, 4);
    assert.equal(
      r.usage.completion_tokens,
      r.choices.reduce((n: number, c: Json) => n + tokens(c.message.content), 0),
    );
  });

  test("array prompts: n choices per prompt, only when the call's n counts the whole batch", async () => {
    const batch = ['first prompt', 'second'];
    // An honest call of 2 prompts × 2 choices is bounded (and paid) for 4 choices.
    const r = await complete(completionReq(batch, { n: 2, max_tokens: 10 }, { n: 4 }));
    assert.deepEqual(
      r.choices.map((c: Json) => c.index),
      [0, 1, 2, 3],
    );
    assert.equal(r.usage.prompt_tokens, tokens('first prompt') + tokens('second'));
    const single = await complete(completionReq('second', { n: 2, max_tokens: 10 }));
    assert.equal(r.choices[2].text, single.choices[0].text);
    const ids = await complete(completionReq(encode('first prompt'), { max_tokens: 10 }));
    assert.equal(ids.usage.prompt_tokens, tokens('first prompt'));
    assert.equal(ids.choices[0].text, r.choices[0].text);
    // A batch the call's n does not cover would produce more choices than were paid for: refused.
    await assert.rejects(run(completionReq(batch, { max_tokens: 10 })), (e: BadRequestError) => {
      assert.equal(e.status, 400);
      assert.match(e.message, /batch of 2 prompts.*bounded \(and paid\) for 1/);
      return true;
    });
  });

  test('chat stream: role chunk, one chunk per piece, finish chunk; same text as non-stream', async () => {
    const req = chatReq('Stream please.', { n: 2, seed: 9, max_tokens: 40 });
    const whole = await complete(req);
    const { out, usage } = await run(streaming(req));
    const base = {
      id: out[0].id,
      object: 'chat.completion.chunk',
      created: whole.created,
      model: 'cocoon-tiny',
    };
    for (const index of [0, 1]) {
      const mine = out.filter((c) => c.choices[0]?.index === index);
      assert.deepEqual(mine[0], {
        ...base,
        choices: [{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
      });
      const last = mine.at(-1);
      assert.deepEqual(last, {
        ...base,
        choices: [{ index, delta: {}, logprobs: null, finish_reason: whole.choices[index].finish_reason }],
      });
      const middle = mine.slice(1, -1);
      assert.ok(middle.length >= 5);
      for (const c of middle) {
        assert.deepEqual(Object.keys(c), ['id', 'object', 'created', 'model', 'choices']);
        assert.deepEqual(Object.keys(c.choices[0]), ['index', 'delta', 'logprobs', 'finish_reason']);
        assert.deepEqual(Object.keys(c.choices[0].delta), ['content']);
        assert.equal(c.choices[0].finish_reason, null);
        assert.ok(c.choices[0].delta.content.length > 0);
      }
      assert.equal(streamedText(out).get(index), content(whole, index));
    }
    assert.ok(!out.some((c) => 'usage' in c), 'usage sent without include_usage');
    assert.equal(usage.completionTokens, whole.usage.completion_tokens);
  });

  test('include_usage: usage null on every chunk, then one usage chunk with no choices', async () => {
    const req = chatReq('usage please', { max_tokens: 25 });
    const whole = await complete(req);
    const { out } = await run(streaming(req, true));
    const last = out.at(-1);
    assert.deepEqual(last, {
      id: out[0].id,
      object: 'chat.completion.chunk',
      created: whole.created,
      model: 'cocoon-tiny',
      choices: [],
      usage: whole.usage,
    });
    for (const c of out.slice(0, -1)) {
      assert.equal(c.usage, null);
      assert.equal(c.choices.length, 1);
    }
  });

  test('completion stream: text chunks, finish_reason only on the last, echo first', async () => {
    const req = completionReq('Once', { max_tokens: 8, echo: true });
    const { out } = await run(streaming(req, true));
    const chunks = out.slice(0, -1);
    assert.deepEqual(chunks[0].choices, [{ text: 'Once', index: 0, logprobs: null, finish_reason: null }]);
    for (const c of chunks) {
      assert.equal(c.object, 'text_completion');
      assert.deepEqual(Object.keys(c.choices[0]), ['text', 'index', 'logprobs', 'finish_reason']);
    }
    assert.ok(chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null));
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
    assert.deepEqual(out.at(-1).choices, []);
    assert.equal(out.at(-1).usage.completion_tokens, 8);
    const whole = await complete(req);
    assert.equal(streamedText(chunks).get(0), whole.choices[0].text);
  });

  test('chat prompt tokens: ChatML with one token per marker, caller text as plain text', () => {
    const body = {
      messages: [
        { role: 'system', content: 'Be brief.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Look: ' },
            { type: 'image_url' },
            { type: 'text', text: '<|im_end|>' },
          ],
        },
      ],
    };
    const p = chatPrompt(body);
    assert.equal(
      p.text,
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nLook: <|im_end|><|im_end|>\n<|im_start|>assistant\n',
    );
    const expected =
      5 +
      tokens('system\nBe brief.') +
      tokens('\n') +
      tokens('user\nLook: <|im_end|>') +
      tokens('\n') +
      tokens('assistant\n');
    assert.equal(p.tokens, expected);
  });

  test('with tokenDelayMs 0 no timer is awaited: a whole answer completes without a macrotask turn', async () => {
    let turned = false;
    const immediate = setImmediate(() => {
      turned = true;
    });
    await run(streaming(chatReq('fast', { n: 3 }), true));
    await complete(chatReq('fast too', { n: 3 }));
    assert.equal(turned, false);
    clearImmediate(immediate);
  });

  test('tokenDelayMs paces the stream', async () => {
    const slow = new BuiltinBackend({ tokenDelayMs: 5 });
    const started = performance.now();
    const { usage } = await run(streaming(chatReq('pace', { max_tokens: 10 })), slow);
    assert.equal(usage.completionTokens, 10);
    assert.ok(performance.now() - started >= 45);
  });

  test('cancellation mid-stream ends promptly and leaves no timer behind', async () => {
    const slow = new BuiltinBackend({ tokenDelayMs: 300 });
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const ac = new AbortController();
    const gen = slow.infer(streaming(chatReq('cancel me')), ac.signal);
    const first = await gen.next(); // role chunk, no delay
    assert.equal(first.done, false);
    const pending = gen.next(); // now sleeping for the first token
    setTimeout(() => ac.abort(), 20);
    const t0 = performance.now();
    await assert.rejects(pending, CancelledError);
    assert.ok(performance.now() - t0 < 150, 'abort did not interrupt the token delay');
    assert.equal(timers(), before);
    const after = await gen.next();
    assert.equal(after.done, true, 'yielded after cancellation');
  });

  test('abort between chunks: no further chunk; aborted before start: nothing at all', async () => {
    const ac = new AbortController();
    const gen = backend.infer(streaming(chatReq('abort', { max_tokens: 50 })), ac.signal);
    await gen.next();
    await gen.next();
    ac.abort();
    await assert.rejects(gen.next(), CancelledError);
    const pre = new AbortController();
    pre.abort();
    await assert.rejects(run(chatReq('never'), backend, pre.signal), CancelledError);
  });

  test('a time-budget abort is a GatewayTimeoutError', async () => {
    const slow = new BuiltinBackend({ tokenDelayMs: 200 });
    await assert.rejects(run(chatReq('budget'), slow, AbortSignal.timeout(30)), GatewayTimeoutError);
  });
  test('every response has an id of its own: prefix per endpoint, one id across a stream', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const chat = await complete(chatReq('same prompt', { seed: 1, max_tokens: 5 }));
      assert.match(chat.id, /^chatcmpl-[0-9a-f]{32}$/);
      const cmpl = await complete(completionReq('same prompt', { max_tokens: 5 }));
      assert.match(cmpl.id, /^cmpl-[0-9a-f]{32}$/);
      ids.add(chat.id).add(cmpl.id);
    }
    assert.equal(ids.size, 6, 'an id was repeated');
    for (const req of [
      streaming(chatReq('same prompt', { n: 2, max_tokens: 6 }), true),
      streaming(completionReq('same prompt', { max_tokens: 6, echo: true }), true),
    ]) {
      const prefix = req.kind === 'chat' ? /^chatcmpl-[0-9a-f]{32}$/ : /^cmpl-[0-9a-f]{32}$/;
      const a = await run(req);
      const b = await run(req);
      assert.ok(a.out.length > 3);
      assert.match(a.out[0].id, prefix);
      assert.ok(
        a.out.every((c) => c.id === a.out[0].id),
        'one id for every chunk, the usage chunk too',
      );
      assert.ok(b.out.every((c) => c.id === b.out[0].id));
      assert.notEqual(a.out[0].id, b.out[0].id);
      assert.ok(!ids.has(a.out[0].id) && !ids.has(b.out[0].id));
      assert.deepEqual(streamedText(a.out), streamedText(b.out), 'the text stays deterministic');
    }
  });

  test('what the model cannot do is a 400 naming the field, before anything is yielded', async () => {
    const tool = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } };
    const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } };
    const cases: [InferenceRequest, string, string][] = [
      [chatReq('x', { tools: [tool] }), 'tools', 'unsupported_parameter'],
      [chatReq('x', { tool_choice: 'auto' }), 'tool_choice', 'unsupported_value'],
      [chatReq('x', { tool_choice: 'required' }), 'tool_choice', 'unsupported_value'],
      [
        chatReq('x', { tool_choice: { type: 'function', function: { name: 'get_weather' } } }),
        'tool_choice',
        'unsupported_value',
      ],
      [chatReq('x', { parallel_tool_calls: false }), 'parallel_tool_calls', 'unsupported_parameter'],
      [chatReq('x', { functions: [tool.function] }), 'functions', 'unsupported_parameter'],
      [chatReq('x', { function_call: 'auto' }), 'function_call', 'unsupported_value'],
      [chatReq('x', { response_format: { type: 'json_object' } }), 'response_format', 'unsupported_value'],
      [
        chatReq('x', { response_format: { type: 'json_schema', json_schema: { name: 's', schema: {} } } }),
        'response_format',
        'unsupported_value',
      ],
      [
        completionReq('x', { response_format: { type: 'json_object' } }),
        'response_format',
        'unsupported_value',
      ],
      [chatReq('x', { guided_json: { type: 'object' } }), 'guided_json', 'unsupported_parameter'],
      [chatReq('x', { logprobs: true }), 'logprobs', 'unsupported_value'],
      [chatReq('x', { logprobs: true, top_logprobs: 3 }), 'logprobs', 'unsupported_value'],
      [chatReq('x', { top_logprobs: 3 }), 'top_logprobs', 'unsupported_parameter'],
      [chatReq('x', { modalities: ['text', 'audio'] }), 'modalities', 'unsupported_value'],
      [chatReq('x', { audio: { voice: 'alloy', format: 'wav' } }), 'audio', 'unsupported_parameter'],
      [completionReq('x', { logprobs: 2 }), 'logprobs', 'unsupported_parameter'],
      [completionReq('x', { logprobs: 0 }), 'logprobs', 'unsupported_parameter'],
      [completionReq('x', { suffix: ' the end.' }), 'suffix', 'unsupported_parameter'],
      [completionReq('x', { best_of: 3 }), 'best_of', 'unsupported_value'],
      [
        chatReq('', { messages: [{ role: 'user', content: [{ type: 'text', text: 'see' }, image] }] }),
        'messages[0].content[1].type',
        'unsupported_value',
      ],
      [
        chatReq('', {
          messages: [
            { role: 'system', content: 'hi' },
            {
              role: 'user',
              content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }],
            },
          ],
        }),
        'messages[1].content[0].type',
        'unsupported_value',
      ],
      [
        chatReq('', { messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: 'f-1' } }] }] }),
        'messages[0].content[0].type',
        'unsupported_value',
      ],
    ];
    for (const [req, param, code] of cases) {
      for (const r of [req, streaming(req, true)]) {
        const gen = backend.infer(r, new AbortController().signal);
        await assert.rejects(gen.next(), (e: unknown) => {
          assert.ok(e instanceof BadRequestError, String(e));
          assert.equal(e.status, 400);
          assert.equal(e.param, param, JSON.stringify(r.body));
          assert.equal(e.code, code, JSON.stringify(r.body));
          assert.ok(e.message.includes(`'${param}'`), e.message);
          return true;
        });
      }
    }
  });

  test('what it can honour, or what asks for nothing, is served', async () => {
    const history = [
      { role: 'user', content: [{ type: 'text', text: 'Weather?' }] },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }],
      },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
      { role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot.' }] },
      { role: 'user', content: 'Then tell me about TON.' },
    ];
    for (const body of [
      { tools: [], tool_choice: 'none' },
      { tools: null, tool_choice: null, parallel_tool_calls: null },
      { response_format: { type: 'text' } },
      { logprobs: false, top_logprobs: 0 },
      { logprobs: null, top_logprobs: null },
      { modalities: ['text'] },
      { messages: history },
      { best_of: 1, user: 'u-1', metadata: { a: 'b' } },
    ]) {
      const r = await complete(chatReq('hello', { max_tokens: 4, ...body }));
      assert.ok(content(r).length > 0, JSON.stringify(body));
    }
    for (const body of [{ suffix: '' }, { suffix: null, logprobs: null, best_of: 1 }, { echo: true }]) {
      const r = await complete(completionReq('Once', { max_tokens: 4, ...body }));
      assert.ok(r.choices[0].text.length > 0, JSON.stringify(body));
    }
  });
});
