import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { toNano } from '@ton/core';
import OpenAI from 'openai';
import type { ClientNode } from '../../src/client/client-node.ts';
import type { LocalNetwork } from '../../src/local/local-network.ts';
import { LOCAL_PARAMS } from '../../src/local/local-ton.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import type { WorkerNode } from '../../src/worker/worker-node.ts';
import { paidNetwork, workerAccrued } from '../attacks/paid-network.ts';
import { FakeVllmEngine } from '../fakes/fake-vllm.ts';
import { Harness, post } from './harness.ts';

/**
 * Tool calls and JSON mode through the whole chain (OpenAI SDK → client daemon → proxy → worker → an
 * engine speaking vLLM's wire format), streaming and not, without and with payments; and the built-in
 * model, which can do neither, refusing them with a 400 that names the field, costing nothing.
 */

const tools: OpenAI.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string' }, days: { type: 'integer' } },
        required: ['city'],
      },
    },
  },
  {
    type: 'function',
    function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } },
  },
];
/** What the fake engine answers for get_weather: its parameters filled in, in Python's JSON spacing. */
const WEATHER_ARGS = '{"city": "w0", "days": 1}';
/** Its tokens: the name, then the pieces of the arguments (see the fake's `jsonPieces`). */
const WEATHER_TOKENS = 1 + 11;

const schema = {
  type: 'json_schema' as const,
  json_schema: {
    name: 'forecast',
    strict: true,
    schema: {
      type: 'object',
      properties: { city: { type: 'string' }, high: { type: 'number' }, rain: { type: 'boolean' } },
      required: ['city', 'high', 'rain'],
      additionalProperties: false,
    },
  },
};

const ask = (content: string): OpenAI.ChatCompletionMessageParam[] => [{ role: 'user', content }];

/** A streamed chat, accumulated by the SDK's own stream helper; its chunks too. */
async function streamed(openai: OpenAI, body: OpenAI.ChatCompletionCreateParamsStreaming) {
  const s = openai.chat.completions.stream(body);
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const c of s) chunks.push(c);
  return { final: await s.finalChatCompletion(), chunks };
}

/** The usage with Cocoon's costs, as replies carry it when payments are on. */
type PaidUsage = OpenAI.CompletionUsage & { total_cost?: number; completion_cost?: number };

/** Asserts a tool call to get_weather in the engine's shape, and returns it. */
function assertWeatherCall(choice: OpenAI.ChatCompletion.Choice) {
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.role, 'assistant');
  assert.ok(!choice.message.content, `no text beside the call: ${JSON.stringify(choice.message.content)}`);
  const calls = choice.message.tool_calls ?? [];
  assert.equal(calls.length, 1);
  const call = calls[0]!;
  assert.equal(call.type, 'function');
  assert.match(call.id, /^chatcmpl-tool-[0-9a-f]{32}$/);
  if (call.type !== 'function') throw new Error('not a function call');
  assert.equal(call.function.name, 'get_weather');
  assert.equal(call.function.arguments, WEATHER_ARGS);
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'w0', days: 1 });
  return call;
}

/** The unsupported fields, each as a valid OpenAI request the built-in model must refuse naming it. */
const image = { type: 'image_url' as const, image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } };
const refusals: {
  name: string;
  kind: 'chat' | 'completion';
  body: Record<string, unknown>;
  param: string;
  /** Streamed too (best_of > 1 cannot be: the client's edge refuses that itself, as OpenAI does). */
  stream?: false;
}[] = [
  { name: 'tools', kind: 'chat', body: { tools, tool_choice: 'auto' }, param: 'tools' },
  {
    name: 'JSON mode',
    kind: 'chat',
    body: { response_format: { type: 'json_object' } },
    param: 'response_format',
  },
  { name: 'JSON schema', kind: 'chat', body: { response_format: schema }, param: 'response_format' },
  { name: 'logprobs', kind: 'chat', body: { logprobs: true, top_logprobs: 2 }, param: 'logprobs' },
  {
    name: 'an image',
    kind: 'chat',
    body: { messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, image] }] },
    param: 'messages[0].content[1].type',
  },
  {
    name: 'audio input',
    kind: 'chat',
    body: {
      messages: [
        { role: 'system', content: 'Transcribe.' },
        {
          role: 'user',
          content: [{ type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } }],
        },
      ],
    },
    param: 'messages[1].content[0].type',
  },
  {
    name: 'a file',
    kind: 'chat',
    body: { messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: 'file-1' } }] }] },
    param: 'messages[0].content[0].type',
  },
  { name: 'completion logprobs', kind: 'completion', body: { logprobs: 2 }, param: 'logprobs' },
  { name: 'suffix', kind: 'completion', body: { suffix: ' and that was all.' }, param: 'suffix' },
  { name: 'best_of', kind: 'completion', body: { best_of: 3 }, param: 'best_of', stream: false },
];

function refusalBody(r: (typeof refusals)[number], stream: boolean): Record<string, unknown> {
  const base =
    r.kind === 'chat'
      ? { model: 'cocoon-tiny', messages: ask('Weather in Paris?') }
      : { model: 'cocoon-tiny', prompt: 'Once upon a time' };
  return { ...base, max_tokens: 10, ...r.body, ...(stream ? { stream: true } : {}) };
}

const path = (kind: 'chat' | 'completion') => (kind === 'chat' ? '/chat/completions' : '/completions');

describe('tool calls and JSON mode through client -> proxy -> worker -> engine', () => {
  const h = new Harness();
  const engine = new FakeVllmEngine({ tokens: 6, servedModel: 'engine-model' });
  let proxy: ProxyNode;
  let client: ClientNode;
  let builtins: WorkerNode[];
  let openai: OpenAI;

  before(async () => {
    const upstream = await engine.start();
    proxy = await h.proxy();
    await h.worker(proxy, {
      backend: { kind: 'openai-compatible', upstream, upstreamModel: 'engine-model' },
      models: ['m'],
    });
    // Two built-in workers: a refused request must not move on to the other one.
    builtins = [
      await h.worker(proxy, { models: ['cocoon-tiny'] }),
      await h.worker(proxy, { models: ['cocoon-tiny'] }),
    ];
    client = await h.client(proxy);
    openai = new OpenAI({ baseURL: client.baseUrl, apiKey: 'x', maxRetries: 0 });
  });
  after(async () => {
    await h.stop();
    await engine.close();
  });

  test('a tool call, non-streaming: id, name and arguments as the engine made them', async () => {
    const r = await openai.chat.completions.create({
      model: 'm',
      messages: ask('Weather in Paris?'),
      tools,
      tool_choice: 'auto',
      parallel_tool_calls: false,
      max_tokens: 50,
    });
    assert.equal(r.model, 'm');
    assertWeatherCall(r.choices[0]!);
    assert.equal(r.usage?.completion_tokens, WEATHER_TOKENS);
    const sent = engine.lastBody!;
    assert.deepEqual(sent.tools, tools);
    assert.equal(sent.tool_choice, 'auto');
    assert.equal(sent.parallel_tool_calls, false);
  });

  test('a tool call, streaming: the SDK accumulates the right id, name and arguments', async () => {
    const { final, chunks } = await streamed(openai, {
      model: 'm',
      messages: ask('Weather in Paris?'),
      tools,
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      max_tokens: 50,
      stream: true,
      stream_options: { include_usage: true },
    });
    const call = assertWeatherCall(final.choices[0]!);
    const pieces = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta.tool_calls ?? []));
    assert.equal(pieces.length, WEATHER_TOKENS, 'one part per token: the name, then each piece');
    assert.equal(pieces[0]!.id, call.id);
    assert.ok(pieces.slice(1).every((p) => p.index === 0 && p.id === undefined));
    assert.ok(
      chunks.every((c) => c.id === chunks[0]!.id),
      'one id across the stream',
    );
    assert.equal(final.usage?.completion_tokens, WEATHER_TOKENS);
    assert.deepEqual(engine.lastBody!.tool_choice, { type: 'function', function: { name: 'get_weather' } });
  });

  test("the follow-up with the assistant's tool call and the tool's result reaches the engine intact", async () => {
    const first = await openai.chat.completions.create({
      model: 'm',
      messages: ask('Weather in Paris?'),
      tools,
      max_tokens: 50,
    });
    const call = assertWeatherCall(first.choices[0]!);
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      { role: 'system', content: 'You are a weather bot.' },
      ...ask('Weather in Paris?'),
      { role: 'assistant', content: null, tool_calls: [call] },
      { role: 'tool', tool_call_id: call.id, content: '{"high": 21, "rain": false}' },
    ];
    for (const stream of [false, true]) {
      const body = { model: 'm', messages, tools, max_tokens: 6 };
      const text = stream
        ? (await streamed(openai, { ...body, stream: true })).final.choices[0]!.message.content
        : (await openai.chat.completions.create(body)).choices[0]!.message.content;
      // After a tool's result the engine answers in text (streamed, its words keep their leading space).
      assert.equal(text, stream ? ' w0 w1 w2 w3 w4 w5' : 'w0 w1 w2 w3 w4 w5');
      const sent = engine.lastBody!;
      assert.deepEqual(sent.messages, JSON.parse(JSON.stringify(messages)));
      assert.deepEqual(sent.tools, tools);
    }
  });

  test('JSON mode (json_object), non-streaming and streaming: the content parses', async () => {
    const body = {
      model: 'm',
      messages: ask('Answer in JSON.'),
      response_format: { type: 'json_object' as const },
      max_tokens: 50,
    };
    const whole = await openai.chat.completions.create(body);
    assert.deepEqual(JSON.parse(whole.choices[0]!.message.content!), { answer: 'w0 w1 w2' });
    assert.equal(whole.choices[0]!.finish_reason, 'stop');
    assert.deepEqual(engine.lastBody!.response_format, { type: 'json_object' });
    const { final } = await streamed(openai, { ...body, stream: true });
    assert.deepEqual(JSON.parse(final.choices[0]!.message.content!), { answer: 'w0 w1 w2' });
  });

  test('JSON schema, non-streaming and streaming: the content parses and fits the schema', async () => {
    const body = { model: 'm', messages: ask('Forecast?'), response_format: schema, max_tokens: 50 };
    const whole = await openai.chat.completions.create(body);
    assert.deepEqual(JSON.parse(whole.choices[0]!.message.content!), { city: 'w0', high: 1, rain: true });
    assert.deepEqual(engine.lastBody!.response_format, schema);
    const { final } = await streamed(openai, { ...body, stream: true });
    assert.deepEqual(JSON.parse(final.choices[0]!.message.content!), { city: 'w0', high: 1, rain: true });
  });

  test("an engine's 400 is the caller's 400 with the engine's message and field, not failed over", async () => {
    engine.options.failWithStatus = {
      status: 400,
      message: "'get_weather' has a parameter schema this engine cannot compile",
      param: 'tools',
    };
    const redispatched = proxy.counters.redispatched;
    try {
      for (const stream of [false, true]) {
        const r = await post(`${client.baseUrl}/chat/completions`, {
          model: 'm',
          messages: ask('x'),
          tools,
          ...(stream ? { stream: true } : {}),
        });
        assert.equal(r.status, 400, r.text);
        assert.equal(r.json.error?.code, 'engine_rejected');
        assert.equal(r.json.error?.param, 'tools');
        assert.match(r.json.error!.message, /cannot compile/);
      }
    } finally {
      engine.options.failWithStatus = undefined;
    }
    assert.equal(proxy.counters.redispatched, redispatched);
  });

  test('the built-in model refuses each unsupported field with a 400 naming it; no failover, no health cost', async () => {
    const redispatched = proxy.counters.redispatched;
    const served = () => builtins.reduce((n, w) => n + w.counters.total, 0);
    for (const r of refusals) {
      for (const stream of r.stream === false ? [false] : [false, true]) {
        const before = served();
        const res = await post(`${client.baseUrl}${path(r.kind)}`, refusalBody(r, stream));
        const what = `${r.name}${stream ? ' (stream)' : ''}`;
        assert.equal(res.status, 400, `${what}: ${res.text}`);
        assert.equal(res.json.error?.param, r.param, what);
        assert.equal(res.json.error?.type, 'invalid_request_error', what);
        assert.match(res.json.error!.code ?? '', /^unsupported_(parameter|value)$/, what);
        assert.match(res.json.error!.message, /built-in model/, what);
        assert.equal(served() - before, 1, `${what}: one worker saw it, exactly once`);
      }
    }
    assert.equal(proxy.counters.redispatched, redispatched, 'no 400 was failed over');
    for (const w of proxy.registry.all()) {
      assert.equal(w.health.state, 'ok', w.name);
      assert.equal(w.health.consecutiveFailures, 0, w.name);
      assert.equal(w.health.failureRate, 0, w.name);
    }
    // The SDK raises it as a BadRequestError with the field.
    await assert.rejects(
      openai.chat.completions.create({ model: 'cocoon-tiny', messages: ask('x'), tools }),
      (e: InstanceType<typeof OpenAI.BadRequestError>) =>
        e.status === 400 && e.param === 'tools' && e.code === 'unsupported_parameter',
    );
    // And the workers serve on.
    const ok = await openai.chat.completions.create({
      model: 'cocoon-tiny',
      messages: ask('hi'),
      max_tokens: 5,
    });
    assert.ok(ok.choices[0]!.message.content);
  });

  test('the built-in model gives every response an id of its own', async () => {
    const body = { model: 'cocoon-tiny', messages: ask('same question'), max_tokens: 8, seed: 3 };
    const [a, b] = [await openai.chat.completions.create(body), await openai.chat.completions.create(body)];
    assert.match(a.id, /^chatcmpl-[0-9a-f]{32}$/);
    assert.notEqual(a.id, b.id);
    assert.equal(a.choices[0]!.message.content, b.choices[0]!.message.content, 'the text stays the same');
    const c = await openai.completions.create({ model: 'cocoon-tiny', prompt: 'same', max_tokens: 4 });
    assert.match(c.id, /^cmpl-[0-9a-f]{32}$/);
    const { chunks } = await streamed(openai, {
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.ok(chunks.length > 3);
    assert.ok(chunks.every((ch) => ch.id === chunks[0]!.id));
    assert.ok(![a.id, b.id].includes(chunks[0]!.id));
  });
});

describe('tool calls and JSON mode with payments on: billed for what was generated, nothing refused', () => {
  const h = new Harness();
  const engine = new FakeVllmEngine({ tokens: 6, servedModel: 'engine-model' });
  let net: LocalNetwork;
  let stopNet = async () => {};
  let openai: OpenAI;

  before(async () => {
    const started = await paidNetwork(0);
    net = started.net;
    stopNet = started.stop;
    const upstream = await engine.start();
    // A paid worker in front of the engine, beside the network's built-in one.
    const dataDir = join(h.dataDir, 'engine-worker');
    await net.ton!.fundNode(dataDir, toNano('2'));
    await h.worker(net.proxy, {
      dataDir,
      backend: { kind: 'openai-compatible', upstream, upstreamModel: 'engine-model' },
      models: ['m'],
      chainEndpoint: net.ton!.endpoint,
      root: net.ton!.root.toString(),
      payoutIntervalSeconds: 3600,
    });
    openai = new OpenAI({ baseURL: net.client.baseUrl, apiKey: 'x', maxRetries: 0 });
  });
  after(async () => {
    await h.stop();
    await stopNet();
    await engine.close();
  });

  const desk = () => net.proxy.billing!.desk;
  const billed = () => BigInt(desk().stats().billedNano);
  const authorised = () => net.client.payments!.payer.authorisedTotal;

  /** The cost a usage reports is the price of its tokens (coefficient 1000, multipliers 1×). */
  function assertPriced(u: PaidUsage | undefined | null, completionTokens: number): bigint {
    assert.ok(u, 'usage reported');
    assert.equal(u.completion_tokens, completionTokens, 'billed for every generated token');
    assert.ok(u.total_cost && u.total_cost > 0, 'a cost is reported');
    assert.ok(u.completion_cost && u.completion_cost > 0);
    assert.equal(BigInt(u.total_cost), BigInt(u.total_tokens) * LOCAL_PARAMS.pricePerToken);
    return BigInt(u.total_cost);
  }

  function assertNothingRefused(): void {
    assert.deepEqual(desk().stats().refusals, {}, 'no bill refused by the client');
    assert.equal(desk().stats().openBills, 0);
    assert.deepEqual(net.proxy.refusals, {}, 'nothing clamped or refused at the proxy');
  }

  test('a tool call, non-streaming and streaming: it succeeds, its arguments are billed', async () => {
    const before = { billed: billed(), authorised: authorised() };
    const body = { model: 'm', messages: ask('Weather in Paris?'), tools, max_tokens: 50 };
    const whole = await openai.chat.completions.create(body);
    assertWeatherCall(whole.choices[0]!);
    let total = assertPriced(whole.usage as PaidUsage, WEATHER_TOKENS);
    const { final } = await streamed(openai, {
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    assertWeatherCall(final.choices[0]!);
    total += assertPriced(final.usage as PaidUsage, WEATHER_TOKENS);
    assert.equal(billed() - before.billed, total, 'the proxy billed what was reported');
    assert.equal(authorised() - before.authorised, total, 'and the client signed for it');
    assertNothingRefused();
  });

  test('a long tool call streamed: every argument piece is paid for, not just the silent allowance', async () => {
    engine.options.toolArguments = JSON.stringify({
      note: Array.from({ length: 40 }, (_, i) => `w${i}`).join(' '),
    });
    try {
      const { final } = await streamed(openai, {
        model: 'm',
        messages: ask('Take a note.'),
        tools,
        max_tokens: 100,
        stream: true,
        stream_options: { include_usage: true },
      });
      const call = final.choices[0]!.message.tool_calls![0]!;
      assert.equal(call.type === 'function' && call.function.arguments, engine.options.toolArguments);
      // 45 argument pieces and the name: far more than the 8 tokens a choice may add unseen.
      assertPriced(final.usage as PaidUsage, 46);
      assertNothingRefused();
    } finally {
      engine.options.toolArguments = undefined;
    }
  });

  test('JSON mode, non-streaming and streaming: it succeeds and is billed', async () => {
    const body = { model: 'm', messages: ask('Forecast?'), response_format: schema, max_tokens: 50 };
    const whole = await openai.chat.completions.create(body);
    assert.deepEqual(JSON.parse(whole.choices[0]!.message.content!), { city: 'w0', high: 1, rain: true });
    const tokens = whole.usage!.completion_tokens;
    assert.ok(tokens > 8);
    assertPriced(whole.usage as PaidUsage, tokens);
    const { final } = await streamed(openai, {
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.deepEqual(JSON.parse(final.choices[0]!.message.content!), { city: 'w0', high: 1, rain: true });
    assertPriced(final.usage as PaidUsage, tokens);
    assertNothingRefused();
  });

  test('the built-in model refusing an unsupported field costs nothing', async () => {
    const before = { billed: billed(), authorised: authorised(), accrued: workerAccrued(net) };
    for (const r of refusals) {
      for (const stream of r.stream === false ? [false] : [false, true]) {
        const res = await post(`${net.client.baseUrl}${path(r.kind)}`, refusalBody(r, stream));
        assert.equal(res.status, 400, `${r.name}: ${res.text}`);
        assert.equal(res.json.error?.param, r.param, r.name);
      }
    }
    assert.equal(billed(), before.billed, 'nothing billed');
    assert.equal(authorised(), before.authorised, 'nothing signed');
    assert.deepEqual(workerAccrued(net), before.accrued, 'nothing owed to the worker');
    assertNothingRefused();
    // The credit was released: a normal request is served and billed.
    const ok = await openai.chat.completions.create({
      model: 'cocoon-tiny',
      messages: ask('hi'),
      max_tokens: 5,
    });
    assert.ok((ok.usage as PaidUsage).total_cost! > 0);
    assert.ok(billed() > before.billed);
  });
});
