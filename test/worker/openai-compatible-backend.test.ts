import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CocoonError } from '../../src/errors.ts';
import type { InferenceRequest } from '../../src/protocol/inference.ts';
import { OpenAICompatibleBackend, SseDecoder } from '../../src/worker/backends/openai-compatible/index.ts';
import { FakeVllmEngine } from '../fakes/fake-vllm.ts';
import { drainReply } from './drain-reply.ts';

// biome-ignore lint/suspicious/noExplicitAny: parsed OpenAI JSON, inspected field by field
type Json = any;

function request(over: Partial<InferenceRequest> = {}): InferenceRequest {
  const stream = over.stream ?? false;
  return {
    kind: 'chat',
    model: 'ours',
    body: {
      model: 'ours',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 100,
      ...(stream ? { stream: true } : {}),
    },
    stream,
    includeUsage: false,
    maxTokens: 100,
    n: 1,
    timeoutMs: 10_000,
    maxCoefficient: 4000,
    minTier: 'dev',
    ...over,
  };
}

describe('openai-compatible backend against a fake vLLM engine', () => {
  const engine = new FakeVllmEngine({
    tokens: 5,
    promptTokens: 21,
    cachedTokens: 4,
    servedModel: 'vllm-name',
  });
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

  test('chat, non-streaming: usage read, model name mapped both ways', async () => {
    const { out, usage } = await drainReply(backend.infer(request(), new AbortController().signal));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.model, 'ours');
    assert.equal(engine.lastBody?.model, 'vllm-name');
    assert.deepEqual(usage, { promptTokens: 21, cachedTokens: 4, completionTokens: 5, reasoningTokens: 0 });
  });

  test('chat, streaming: asks the engine for usage, forwards chunks in order, usage chunk only if asked', async () => {
    const quiet = await drainReply(backend.infer(request({ stream: true }), new AbortController().signal));
    assert.deepEqual(engine.lastBody?.stream_options, { include_usage: true });
    assert.ok(quiet.out.every((c) => (c.choices as unknown[]).length > 0 && !('usage' in c)));
    const text = quiet.out
      .map((c) => (c.choices as { delta: { content?: string } }[])[0]!.delta.content ?? '')
      .join('');
    assert.equal(text, ' w0 w1 w2 w3 w4');
    assert.equal(quiet.usage.completionTokens, 5);

    const loud = await drainReply(
      backend.infer(request({ stream: true, includeUsage: true }), new AbortController().signal),
    );
    const last = loud.out.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.equal((last.usage as { completion_tokens: number }).completion_tokens, 5);
    assert.equal(last.model, 'ours');
    assert.deepEqual(loud.usage, quiet.usage);
  });

  test('completions, streaming and not', async () => {
    const body = { model: 'ours', prompt: 'Once', max_tokens: 3 };
    const plain = await drainReply(
      backend.infer(request({ kind: 'completion', body, maxTokens: 3 }), new AbortController().signal),
    );
    assert.equal(plain.out[0]!.object, 'text_completion');
    assert.equal(plain.usage.completionTokens, 3);
    const s = await drainReply(
      backend.infer(
        request({ kind: 'completion', body: { ...body, stream: true }, stream: true, maxTokens: 3 }),
        new AbortController().signal,
      ),
    );
    assert.equal(s.out.map((c) => (c.choices as { text: string }[])[0]!.text).join(''), ' w0 w1 w2');
    assert.equal(s.usage.completionTokens, 3);
  });

  test('engine status errors map to OpenAI statuses', async () => {
    for (const [status, expected] of [
      [400, 400],
      [429, 429],
      [500, 502],
      [503, 502],
    ] as const) {
      engine.options.failWithStatus = { status, message: `boom ${status}` };
      await assert.rejects(
        drainReply(backend.infer(request(), new AbortController().signal)),
        (e: CocoonError) => {
          assert.equal(e.status, expected);
          assert.match(e.message, new RegExp(`boom ${status}`));
          return true;
        },
      );
    }
    engine.options.failWithStatus = undefined;
  });

  test("an engine's 400 keeps its message and names the field when the engine does", async () => {
    engine.options.failWithStatus = {
      status: 400,
      message: 'tool_choice names an unknown tool',
      param: 'tool_choice',
    };
    await assert.rejects(
      drainReply(backend.infer(request(), new AbortController().signal)),
      (e: CocoonError) => {
        assert.equal(e.status, 400);
        assert.equal(e.param, 'tool_choice');
        assert.equal(e.code, 'engine_rejected');
        assert.match(e.message, /unknown tool/);
        return true;
      },
    );
    engine.options.failWithStatus = undefined;
  });

  test('an engine error mid-stream comes after the chunks already sent', async () => {
    engine.options.failAfterTokens = 2;
    const seen: string[] = [];
    const gen = backend.infer(request({ stream: true }), new AbortController().signal);
    await assert.rejects(
      (async () => {
        for await (const c of gen) if (c.json !== null) seen.push(c.json);
      })(),
      (e: CocoonError) =>
        e.status === 502 && e.code === 'engine_error' && /CUDA out of memory/.test(e.message),
    );
    engine.options.failAfterTokens = undefined;
    assert.equal(seen.length, 3); // role chunk + 2 tokens
  });

  test('cancelling mid-stream closes the engine connection', async () => {
    engine.options.tokenDelayMs = 20;
    engine.options.tokens = 100;
    const abortedBefore = engine.aborted;
    const ac = new AbortController();
    const gen = backend.infer(request({ stream: true }), ac.signal);
    let n = 0;
    await assert.rejects(
      (async () => {
        for await (const _ of gen) if (++n === 3) ac.abort();
      })(),
    );
    const deadline = Date.now() + 2000;
    while (engine.aborted === abortedBefore && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    engine.options.tokenDelayMs = 0;
    engine.options.tokens = 5;
    assert.equal(engine.aborted, abortedBefore + 1);
  });

  test('an unreachable engine is a 502 naming the upstream', async () => {
    const dead = new OpenAICompatibleBackend({ baseUrl: 'http://127.0.0.1:1/v1', models: ['ours'] });
    await assert.rejects(
      drainReply(dead.infer(request(), new AbortController().signal)),
      (e: CocoonError) => {
        assert.equal(e.status, 502);
        assert.match(e.message, /127\.0\.0\.1:1/);
        return true;
      },
    );
  });

  const tools = [
    {
      type: 'function',
      function: {
        name: 'get_weather',
        description: 'Weather in a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
    },
  ];

  test('fields the engine honours are forwarded unchanged: tools, JSON mode, logprobs, parts, tool history', async () => {
    const messages = [
      { role: 'system', content: 'Use tools.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is on this picture, and the weather there?' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'low' } },
          { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } },
        ],
      },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'chatcmpl-tool-1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city": "Paris"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'chatcmpl-tool-1', content: '{"temp": 21}' },
    ];
    const fields = {
      messages,
      tools,
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      parallel_tool_calls: false,
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'w',
          schema: { type: 'object', properties: { temp: { type: 'number' } } },
          strict: true,
        },
      },
      logprobs: true,
      top_logprobs: 2,
      guided_json: { type: 'object' },
      user: 'u-1',
    };
    const body = { model: 'ours', max_tokens: 100, ...fields };
    for (const stream of [false, true]) {
      await drainReply(
        backend.infer(
          request({ stream, body: stream ? { ...body, stream: true } : body }),
          new AbortController().signal,
        ),
      );
      const sent = engine.lastBody!;
      for (const [k, v] of Object.entries(fields)) assert.deepEqual(sent[k], v, k);
      assert.equal(sent.model, 'vllm-name');
    }
    // Completions: logprobs (an integer), echo, suffix travel too.
    const cmpl = { model: 'ours', prompt: 'Once', max_tokens: 3, logprobs: 2, echo: true, suffix: ' end.' };
    await drainReply(
      backend.infer(request({ kind: 'completion', body: cmpl, maxTokens: 3 }), new AbortController().signal),
    );
    for (const k of ['logprobs', 'echo', 'suffix'] as const)
      assert.deepEqual(engine.lastBody![k], cmpl[k], k);
  });

  test("a tool call, whole and streamed, reaches the caller in the engine's shape; usage as reported", async () => {
    const body = {
      model: 'ours',
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
      max_tokens: 100,
      tools,
    };
    const whole = await drainReply(backend.infer(request({ body }), new AbortController().signal));
    const choice = (whole.out[0]!.choices as Json[])[0]!;
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.content, null);
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.match(call.id, /^chatcmpl-tool-[0-9a-f]{32}$/);
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'w0' });
    // '{"city": "w0"}' is 6 pieces, the name one more token.
    assert.equal(whole.usage.completionTokens, 7);
    assert.equal((whole.out[0]!.usage as { completion_tokens: number }).completion_tokens, 7);

    const streamed = await drainReply(
      backend.infer(
        request({ stream: true, includeUsage: true, body: { ...body, stream: true } }),
        new AbortController().signal,
      ),
    );
    const deltas = streamed.out.flatMap((c) => (c.choices as { delta: Json }[]).map((ch) => ch.delta));
    const calls = deltas.filter((d) => d.tool_calls).map((d) => d.tool_calls[0]);
    assert.equal(calls.length, 7, 'the name and 6 argument pieces, one part each');
    assert.match(calls[0].id, /^chatcmpl-tool-[0-9a-f]{32}$/);
    assert.deepEqual(calls[0].function, { name: 'get_weather', arguments: '' });
    assert.ok(
      calls.slice(1).every((c) => c.index === 0 && c.id === undefined && c.function.name === undefined),
    );
    assert.equal(calls.map((c) => c.function.arguments).join(''), call.function.arguments);
    const finish = streamed.out.flatMap((c) =>
      (c.choices as { finish_reason: string | null }[]).map((ch) => ch.finish_reason),
    );
    assert.equal(finish.filter(Boolean).join(), 'tool_calls');
    assert.equal(streamed.usage.completionTokens, 7);
    assert.equal((streamed.out.at(-1)!.usage as { completion_tokens: number }).completion_tokens, 7);
    assert.ok(streamed.out.every((c) => c.model === 'ours'));
  });

  test("JSON mode: the content is the engine's JSON, whole and streamed", async () => {
    const body = {
      model: 'ours',
      messages: [{ role: 'user', content: 'JSON please' }],
      max_tokens: 100,
      response_format: { type: 'json_object' },
    };
    const whole = await drainReply(backend.infer(request({ body }), new AbortController().signal));
    const text = (whole.out[0]!.choices as { message: { content: string } }[])[0]!.message.content;
    assert.deepEqual(JSON.parse(text), { answer: 'w0 w1 w2' });
    const streamed = await drainReply(
      backend.infer(request({ stream: true, body: { ...body, stream: true } }), new AbortController().signal),
    );
    const joined = streamed.out
      .map((c) => (c.choices as { delta: { content?: string } }[])[0]!.delta.content ?? '')
      .join('');
    assert.equal(joined, text);
    assert.equal(streamed.usage.completionTokens, whole.usage.completionTokens);
  });

  test('probe lists the engine models', async () => {
    assert.deepEqual(await backend.probe(), ['vllm-name']);
  });
});

describe('SSE decoder', () => {
  const wire =
    ': keep-alive\r\n\r\ndata: {"a":1}\r\n\r\ndata: line1\ndata: line2\n\nevent: x\ndata: ü€\n\ndata: [DONE]\n\n';
  const expected = ['{"a":1}', 'line1\nline2', 'ü€', '[DONE]'];

  test('decodes the same events however the bytes are split', () => {
    const bytes = Buffer.from(wire);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const d = new SseDecoder();
      const got = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut)), ...d.end()];
      assert.deepEqual(got, expected, `cut at ${cut}`);
    }
  });

  test('byte by byte', () => {
    const d = new SseDecoder();
    const got: string[] = [];
    for (const b of Buffer.from(wire)) got.push(...d.push(Buffer.from([b])));
    assert.deepEqual([...got, ...d.end()], expected);
  });

  test('an unterminated last event is delivered at the end', () => {
    const d = new SseDecoder();
    assert.deepEqual(d.push(Buffer.from('data: [DONE]')), []);
    assert.deepEqual(d.end(), ['[DONE]']);
  });
});
