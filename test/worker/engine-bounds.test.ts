import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CocoonError } from '../../src/errors.ts';
import { usageBeyondBound } from '../../src/pay/pricing.ts';
import { type InferenceRequest, maxCompletionTokens, type TokenUsage } from '../../src/protocol/inference.ts';
import { OpenAICompatibleBackend, SseDecoder } from '../../src/worker/backends/openai-compatible/index.ts';
import { utf8Prefix } from '../../src/worker/backends/output-guard.ts';
import {
  boundUsage,
  engineBody,
  PROMPT_SLACK_TOKENS,
  promptTokenBound,
} from '../../src/worker/backends/request-bounds.ts';
import { FakeVllmEngine } from '../fakes/fake-vllm.ts';
import { drainReply } from './drain-reply.ts';

// biome-ignore lint/suspicious/noExplicitAny: parsed OpenAI JSON, inspected field by field
type Json = any;

/** A call whose normalized fields are the bounds; its body may say anything else. */
function call(over: Partial<InferenceRequest> = {}, body: Record<string, unknown> = {}): InferenceRequest {
  return {
    kind: 'chat',
    model: 'ours',
    body: { model: 'ours', messages: [{ role: 'user', content: 'hi' }], ...body },
    stream: false,
    includeUsage: false,
    maxTokens: 4,
    n: 1,
    timeoutMs: 10_000,
    maxCoefficient: 4000,
    minTier: 'dev',
    ...over,
  };
}

/** The call's OPEN header size, what the proxy bounds prompt tokens by. */
const headerBytes = (r: InferenceRequest) =>
  Buffer.byteLength(JSON.stringify({ method: 'inference', requestId: 'r-1', request: r }));

/** The worker's report passes the proxy's check for this call. */
function assertWithinBound(usage: TokenUsage, r: InferenceRequest): void {
  assert.equal(usageBeyondBound(usage, headerBytes(r), maxCompletionTokens(r)), null, JSON.stringify(usage));
}

/** Per choice index: content parts streamed, text, finish reason. */
function perChoice(chunks: Json[]) {
  const m = new Map<number, { parts: number; text: string; finish: string | null }>();
  for (const c of chunks) {
    assert.ok(c.choices.length <= 1, 'one choice per part');
    for (const ch of c.choices) {
      const e = m.get(ch.index) ?? { parts: 0, text: '', finish: null };
      const piece = ch.delta ? (ch.delta.content ?? '') : ch.text;
      if (piece) e.parts++;
      e.text += piece;
      if (ch.finish_reason) e.finish = ch.finish_reason;
      m.set(ch.index, e);
    }
  }
  return m;
}

const dishonest = {
  max_tokens: 200,
  max_completion_tokens: 300,
  n: 8,
  use_beam_search: true,
  n_predict: 5000,
  max_new_tokens: 5000,
  num_predict: 5000,
  prompt_logprobs: 20,
  n_probs: 50,
  stream: true,
  stream_options: { include_usage: false, continuous_usage_stats: true },
  echo: true,
  logprobs: 'lots',
  top_logprobs: 500,
  temperature: 0.3,
  tools: [{ type: 'function', function: { name: 'f' } }],
  // The fake engine would call the tool otherwise; these tests are about the text.
  tool_choice: 'none',
};

describe('the body an engine receives: bounds from the call, never from the body', () => {
  test('best_of beyond the choices returned is refused (unpaid candidates), never dropped silently', () => {
    assert.throws(
      () => engineBody(call({ maxTokens: 1, n: 2 }, { best_of: 3 }), 'e'),
      (e: CocoonError) => e.status === 400 && e.param === 'best_of' && e.code === 'unsupported_value',
    );
    // As many candidates as choices is no extra work: served, the field dropped.
    const b = engineBody(call({ maxTokens: 1, n: 2 }, { best_of: 2 }), 'e');
    assert.equal(b.n, 2);
    assert.ok(!('best_of' in b));
  });

  test('chat: max_tokens, n and stream overwritten; work multipliers dropped; other fields kept', () => {
    const b = engineBody(call({ maxTokens: 1, n: 2 }, dishonest), 'engine-name');
    assert.equal(b.model, 'engine-name');
    assert.equal(b.max_tokens, 1);
    assert.equal(b.n, 2);
    assert.equal(b.stream, false);
    for (const k of [
      'max_completion_tokens',
      'best_of',
      'use_beam_search',
      'n_predict',
      'max_new_tokens',
      'num_predict',
      'prompt_logprobs',
      'n_probs',
      'stream_options',
      'echo',
      'logprobs',
      'top_logprobs',
    ]) {
      assert.ok(!(k in b), `${k} is not forwarded`);
    }
    assert.equal(b.temperature, 0.3);
    assert.deepEqual(b.tools, dishonest.tools);
    assert.equal(b.tool_choice, 'none');
  });

  test('stream: usage always asked for; stream_options only that', () => {
    const b = engineBody(call({ stream: true, includeUsage: false }, { ...dishonest, stream: false }), 'm');
    assert.equal(b.stream, true);
    assert.deepEqual(b.stream_options, { include_usage: true });
  });

  test('log-probabilities within OpenAI limits, echo only for completions', () => {
    const chat = engineBody(call({}, { logprobs: true, top_logprobs: 500 }), 'm');
    assert.equal(chat.logprobs, true);
    assert.equal(chat.top_logprobs, 20);
    const chatOff = engineBody(call({}, { logprobs: false, top_logprobs: 3 }), 'm');
    assert.ok(!('logprobs' in chatOff) && !('top_logprobs' in chatOff));
    const cmpl = (body: Record<string, unknown>) =>
      engineBody(call({ kind: 'completion' }, { prompt: 'Once', ...body }), 'm');
    assert.equal(cmpl({ logprobs: 99 }).logprobs, 5);
    assert.ok(!('logprobs' in cmpl({ logprobs: true })));
    assert.equal(cmpl({ echo: true }).echo, true);
    assert.ok(!('echo' in cmpl({ echo: 'yes' })));
  });

  test('a batch of prompts is sent only when the call counts all its choices', () => {
    const batch = (n: number, body: Record<string, unknown>) =>
      engineBody(call({ kind: 'completion', n }, { prompt: ['a', 'b'], ...body }), 'm');
    assert.equal(batch(4, { n: 2 }).n, 2, '2 prompts × 2 = the call’s 4 choices');
    assert.throws(
      () => batch(1, {}),
      (e: CocoonError) => e.status === 400 && e.param === 'prompt',
    );
    assert.throws(
      () => batch(2, { n: 2 }),
      (e: CocoonError) => e.status === 400,
    );
    // Token ids are one prompt.
    assert.equal(engineBody(call({ kind: 'completion', n: 3 }, { prompt: [1, 2, 3] }), 'm').n, 3);
  });

  test("the worker's prompt bound is never above the proxy's", () => {
    const r = call({}, { messages: [{ role: 'user', content: 'ü'.repeat(100) }] });
    const bound = promptTokenBound(r);
    assert.ok(bound <= headerBytes(r) + PROMPT_SLACK_TOKENS);
    // The proxy's slack is the worker's: its bound is exactly header bytes + PROMPT_SLACK_TOKENS.
    const u = (promptTokens: number) => ({
      promptTokens,
      cachedTokens: 0,
      completionTokens: 0,
      reasoningTokens: 0,
    });
    assert.equal(usageBeyondBound(u(1000 + PROMPT_SLACK_TOKENS), 1000, 0), null);
    assert.notEqual(usageBeyondBound(u(1001 + PROMPT_SLACK_TOKENS), 1000, 0), null);
    const clamped = boundUsage({ ...u(1_000_000), cachedTokens: 2_000_000 }, r, 0);
    assert.equal(clamped.usage.promptTokens, bound);
    assert.equal(clamped.usage.cachedTokens, bound);
    assert.equal(clamped.clamped.length, 2);
    assertWithinBound(clamped.usage, r);
  });

  test('utf8Prefix cuts between code points', () => {
    assert.equal(utf8Prefix('aü€😀', 1), 'a');
    assert.equal(utf8Prefix('aü€😀', 2), 'a');
    assert.equal(utf8Prefix('aü€😀', 3), 'aü');
    assert.equal(utf8Prefix('aü€😀', 9), 'aü€');
    assert.equal(utf8Prefix('aü€😀', 10), 'aü€😀');
  });
});

describe('an engine held to the call: stopped, cut at the bound, usage within it', () => {
  const engine = new FakeVllmEngine({ tokens: 6, servedModel: 'vllm-name' });
  let backend: OpenAICompatibleBackend;
  before(async () => {
    const url = await engine.start();
    backend = new OpenAICompatibleBackend({
      baseUrl: url,
      models: ['ours'],
      upstreamModel: { ours: 'vllm-name' },
    });
  });
  after(() => engine.close());
  const reset = () => {
    Object.assign(engine.options, {
      tokens: 6,
      ignoreMaxTokens: false,
      extraChoices: 0,
      choicesInOneChunk: false,
      emptyChunks: 0,
      reportUsage: undefined,
      tokenDelayMs: 0,
      toolArguments: undefined,
    });
  };
  const run = (r: InferenceRequest) => drainReply<Json>(backend.infer(r, new AbortController().signal));

  test('honest engine, dishonest body: the engine gets the call, the caller gets what it pays for', async () => {
    reset();
    const r = call({ maxTokens: 1, n: 1 }, dishonest);
    const { out, usage } = await run(r);
    assert.equal(engine.lastBody?.max_tokens, 1);
    assert.equal(engine.lastBody?.n, 1);
    assert.equal(engine.lastBody?.stream, false);
    assert.equal(out.length, 1);
    assert.equal(out[0].choices.length, 1);
    assert.equal(out[0].choices[0].message.content, 'w0');
    assert.equal(usage.completionTokens, 1);
    assert.equal(out[0].usage.completion_tokens, 1);
    assertWithinBound(usage, r);
  });

  test('stream: an engine ignoring max_tokens is stopped at the bound and its stream closed', async () => {
    reset();
    engine.options.ignoreMaxTokens = true;
    engine.options.tokens = 100_000;
    const before = { aborted: engine.aborted, overruns: backend.guardStats().engineOverruns };
    const r = call({ maxTokens: 3, stream: true, includeUsage: true }, dishonest);
    const { out, usage } = await run(r);
    const c = perChoice(out.filter((x) => x.choices.length > 0));
    assert.deepEqual([...c.keys()], [0]);
    assert.equal(c.get(0)!.parts, 3);
    assert.equal(c.get(0)!.text, ' w0 w1 w2');
    assert.equal(c.get(0)!.finish, 'length');
    assert.deepEqual(usage, { promptTokens: 0, cachedTokens: 0, completionTokens: 3, reasoningTokens: 0 });
    const last = out.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 3, 'the usage chunk says what is reported');
    assert.equal(last.model, 'ours');
    assertWithinBound(usage, r);
    assert.equal(backend.guardStats().engineOverruns, before.overruns + 1);
    const deadline = Date.now() + 2000;
    while (engine.aborted === before.aborted && Date.now() < deadline)
      await new Promise((t) => setTimeout(t, 5));
    assert.equal(engine.aborted, before.aborted + 1, 'the engine request was aborted');
  });

  test('stream: choices beyond n (index ≥ n) are dropped and the engine stopped', async () => {
    reset();
    engine.options.extraChoices = 2;
    const r = call({ maxTokens: 10, n: 2, stream: true });
    const { out, usage } = await run(r);
    const c = perChoice(out);
    assert.deepEqual([...c.keys()].sort(), [0, 1]);
    for (const e of c.values()) assert.equal(e.finish, 'length');
    assert.ok(usage.completionTokens <= 20);
    assertWithinBound(usage, r);
  });

  test('stream: several choices in one chunk go out one choice per part, all counted', async () => {
    reset();
    engine.options.choicesInOneChunk = true;
    const r = call({ maxTokens: 10, n: 3, stream: true });
    const { out, usage } = await run(r);
    const c = perChoice(out);
    assert.deepEqual([...c.keys()].sort(), [0, 1, 2]);
    for (const [j, e] of c) {
      assert.equal(e.parts, 6);
      assert.equal(e.finish, 'stop');
      if (j === 1) assert.equal(e.text, ' 1.w0 1.w1 1.w2 1.w3 1.w4 1.w5');
    }
    assert.equal(usage.completionTokens, 18);
  });

  test('stream: a flood of output-less parts is a stream longer than the bound', async () => {
    reset();
    engine.options.emptyChunks = 10_000;
    const r = call({ maxTokens: 5, stream: true });
    const before = backend.guardStats().engineOverruns;
    const { usage } = await run(r);
    assert.equal(usage.completionTokens, 0);
    assert.equal(backend.guardStats().engineOverruns, before + 1);
  });

  test('stream: inflated usage is reported as what was delivered, within the bound', async () => {
    reset();
    engine.options.reportUsage = { prompt_tokens: 10_000_000, completion_tokens: 100_000 };
    const r = call({ maxTokens: 100, stream: true, includeUsage: true });
    const before = backend.guardStats().usageClamped;
    const { out, usage } = await run(r);
    // 6 parts delivered: at most 6 + 8 silent tokens; the prompt within the call's bytes.
    assert.equal(usage.completionTokens, 6 + 8);
    assert.equal(usage.promptTokens, promptTokenBound(r));
    assert.equal(out.at(-1).usage.prompt_tokens, usage.promptTokens);
    assert.equal(out.at(-1).usage.total_tokens, usage.promptTokens + usage.completionTokens);
    assertWithinBound(usage, r);
    assert.equal(backend.guardStats().usageClamped, before + 1);
  });

  test('non-stream: an overrun reply is cut to max_tokens bytes per choice, extra choices dropped', async () => {
    reset();
    engine.options.ignoreMaxTokens = true;
    engine.options.tokens = 50;
    engine.options.extraChoices = 1;
    const r = call({ maxTokens: 4, n: 2 }, dishonest);
    const { out, usage } = await run(r);
    const reply = out[0];
    assert.deepEqual(
      reply.choices.map((c: Json) => c.index),
      [0, 1],
    );
    for (const ch of reply.choices) {
      assert.ok(Buffer.byteLength(ch.message.content) <= 4, ch.message.content);
      assert.equal(ch.finish_reason, 'length');
    }
    assert.equal(reply.choices[0].message.content, 'w0 w');
    assert.ok(usage.completionTokens <= 8);
    assert.equal(reply.usage.completion_tokens, usage.completionTokens);
    assertWithinBound(usage, r);
  });

  test('non-stream: a reply too large for one frame is refused, not sent', async () => {
    reset();
    engine.options.ignoreMaxTokens = true;
    engine.options.tokens = 2_500_000; // ~10 MB of text
    await assert.rejects(run(call({ maxTokens: 1_000_000 })), (e: CocoonError) => {
      assert.equal(e.status, 502);
      assert.equal(e.code, 'engine_reply_too_large');
      return true;
    });
  });

  test('non-stream: a large reply that fits in one frame is served whole', async () => {
    reset();
    engine.options.tokens = 1_000_000; // ~3.8 MB of text, escaped in the trailer ~4 MB
    const { out, usage } = await run(call({ maxTokens: 1_000_000 }));
    assert.equal(usage.completionTokens, 1_000_000);
    assert.ok(out[0].choices[0].message.content.length > 3_500_000);
  });

  const weather = {
    tools: [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      },
    ],
  };
  /** Tool-call deltas per part: [name or null, arguments piece]. */
  const toolDeltas = (out: Json[]) =>
    out
      .filter((c) => c.choices[0]?.delta?.tool_calls)
      .map((c) => c.choices[0].delta.tool_calls[0].function)
      .map((f: Json) => [f.name ?? null, f.arguments]);

  test('tool calls are output: a streamed call is stopped at max_tokens counting its argument pieces', async () => {
    reset();
    engine.options.ignoreMaxTokens = true;
    engine.options.toolArguments = JSON.stringify({
      text: Array.from({ length: 50_000 }, (_, i) => `w${i}`).join(' '),
    });
    const before = { aborted: engine.aborted, overruns: backend.guardStats().engineOverruns };
    const r = call({ maxTokens: 5, stream: true, includeUsage: true }, weather);
    const { out, usage } = await run(r);
    // The name part and 4 argument pieces: 5 output parts, then the worker's own 'length' finish.
    assert.deepEqual(toolDeltas(out), [
      ['get_weather', ''],
      [null, '{"'],
      [null, 'text'],
      [null, '":'],
      [null, '"'],
    ]);
    const finishes = out.flatMap((c) => c.choices.map((ch: Json) => ch.finish_reason)).filter(Boolean);
    assert.deepEqual(finishes, ['length']);
    assert.deepEqual(usage, { promptTokens: 0, cachedTokens: 0, completionTokens: 5, reasoningTokens: 0 });
    assert.equal(out.at(-1).usage.completion_tokens, 5);
    assertWithinBound(usage, r);
    assert.equal(backend.guardStats().engineOverruns, before.overruns + 1);
    const deadline = Date.now() + 2000;
    while (engine.aborted === before.aborted && Date.now() < deadline)
      await new Promise((t) => setTimeout(t, 5));
    assert.equal(engine.aborted, before.aborted + 1, 'the engine request was aborted');
  });

  test('tool calls are output: an honest streamed call is billed for its pieces, nothing clamped', async () => {
    reset();
    // 33 argument pieces: far more than a choice's silent allowance, so only counting them pays for them.
    engine.options.toolArguments = JSON.stringify({
      text: Array.from({ length: 28 }, (_, i) => `w${i}`).join(' '),
    });
    const before = backend.guardStats();
    const r = call({ maxTokens: 50, n: 2, stream: true, includeUsage: true }, weather);
    const { out, usage } = await run(r);
    assert.equal(toolDeltas(out).length, 2 * 34, 'name + 33 argument pieces per choice');
    assert.equal(usage.completionTokens, 68);
    assert.equal(out.at(-1).usage.completion_tokens, 68);
    assert.deepEqual(backend.guardStats(), before);
  });

  test('tool calls are output: a whole reply overrunning max_tokens loses a call it cannot carry whole', async () => {
    reset();
    engine.options.ignoreMaxTokens = true;
    engine.options.toolArguments = JSON.stringify({ text: 'w '.repeat(100) });
    const r = call({ maxTokens: 8 }, weather);
    const { out, usage } = await run(r);
    const choice = out[0].choices[0];
    assert.equal(choice.finish_reason, 'length');
    assert.ok(!('tool_calls' in choice.message), 'a call cut in its arguments is no call');
    assert.ok(usage.completionTokens <= 8);
    assertWithinBound(usage, r);
    // Within the bound, the whole call is kept and billed as the engine reported it.
    reset();
    const args = JSON.stringify({ text: Array.from({ length: 28 }, (_, i) => `w${i}`).join(' ') });
    engine.options.toolArguments = args;
    const before = backend.guardStats();
    const fine = await run(call({ maxTokens: 50 }, weather));
    assert.equal(fine.out[0].choices[0].finish_reason, 'tool_calls');
    assert.equal(fine.out[0].choices[0].message.tool_calls[0].function.arguments, args);
    assert.equal(fine.usage.completionTokens, 34);
    assert.deepEqual(backend.guardStats(), before, 'nothing clamped');
  });

  test('an honest engine is untouched: same text, same usage, nothing counted', async () => {
    reset();
    const before = backend.guardStats();
    const r = call({ maxTokens: 6, n: 2, stream: true, includeUsage: true });
    const { out, usage } = await run(r);
    assert.equal(usage.completionTokens, 12);
    assert.equal(out.at(-1).usage.completion_tokens, 12);
    assert.equal(out.at(-1).usage.prompt_tokens, 12);
    for (const e of perChoice(out).values()) assert.equal(e.finish, 'stop');
    assert.deepEqual(backend.guardStats(), before);
  });
});

test('SSE decoder refuses an event longer than its limit instead of buffering on', () => {
  const d = new SseDecoder(100);
  assert.deepEqual(d.push(Buffer.from(`data: ${'x'.repeat(50)}\n\n`)), ['x'.repeat(50)]);
  assert.throws(() => d.push(Buffer.from(`data: ${'y'.repeat(200)}`)), /longer than 100/);
  const multi = new SseDecoder(100);
  assert.throws(() => {
    for (let i = 0; i < 10; i++) multi.push(Buffer.from(`data: ${'z'.repeat(20)}\n`));
  }, /longer than 100/);
});
