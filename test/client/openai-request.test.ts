import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseInferenceRequest, type RequestDefaults } from '../../src/client/openai-request.ts';
import { BadRequestError } from '../../src/errors.ts';
import { MAX_MODEL_NAME_CHARS } from '../../src/protocol/limits.ts';

const defaults: RequestDefaults = { maxTokens: 1024, timeoutMs: 120_000, maxCoefficient: 4000 };
const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'm',
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
});
const completion = (extra: Record<string, unknown> = {}) => ({ model: 'm', prompt: 'Once upon', ...extra });
const withMessage = (m: Record<string, unknown>) => chat({ messages: [{ role: 'user', content: 'x' }, m] });

function rejects(
  kind: 'chat' | 'completion',
  body: unknown,
  param: string | null,
  message: RegExp,
  opts: RequestDefaults = defaults,
) {
  assert.throws(
    () => parseInferenceRequest(kind, body, opts),
    (e: unknown) => {
      assert.ok(e instanceof BadRequestError, `expected a BadRequestError, got ${String(e)}`);
      assert.equal(e.status, 400);
      assert.equal(e.type, 'invalid_request_error');
      assert.equal(e.param, param);
      assert.match(e.message, message);
      return true;
    },
    `${JSON.stringify(body)} should be refused`,
  );
}

describe('OpenAI request parsing: accepted bodies', () => {
  test('chat: defaults applied, extras removed, unknown fields kept, input untouched', () => {
    const raw = chat({
      tools: [{ type: 'function', function: { name: 'f', parameters: {} } }],
      tool_choice: 'auto',
      response_format: { type: 'json_object' },
      logprobs: true,
      user: 'u',
      metadata: { a: '1' },
      max_coefficient: 2000,
      timeout: 30,
      request_guid: 'g',
      enable_debug: true,
    });
    const copy = structuredClone(raw);
    const r = parseInferenceRequest('chat', raw, defaults);
    assert.deepEqual(raw, copy, 'raw must not be mutated');
    assert.notEqual(r.body, raw);
    assert.deepEqual(r, {
      kind: 'chat',
      model: 'm',
      stream: false,
      includeUsage: false,
      maxTokens: 1024,
      n: 1,
      timeoutMs: 30_000,
      maxCoefficient: 2000,
      minTier: 'dev',
      body: {
        model: 'm',
        messages: [{ role: 'user', content: 'hi' }],
        tools: [{ type: 'function', function: { name: 'f', parameters: {} } }],
        tool_choice: 'auto',
        response_format: { type: 'json_object' },
        logprobs: true,
        user: 'u',
        metadata: { a: '1' },
        max_tokens: 1024,
      },
    });
  });

  test('a batch of prompts is bounded for all its choices: n × prompts, at most MAX_CHOICES', () => {
    const batch = (prompt: unknown, n?: number) =>
      parseInferenceRequest('completion', { model: 'm', prompt, ...(n ? { n } : {}) }, defaults);
    assert.equal(batch(['a', 'b', 'c'], 2).n, 6);
    assert.equal(batch([[1, 2], [3]]).n, 2);
    assert.equal(batch([1, 2, 3], 2).n, 2, 'token ids are one prompt');
    assert.equal(batch('one', 3).n, 3);
    assert.throws(
      () => batch(['a', 'b', 'c', 'd', 'e'], 2),
      (e: BadRequestError) => e.status === 400 && e.param === 'prompt' && /10 choices/.test(e.message),
    );
  });

  test('defaults for the Cocoon extras; null extras count as absent', () => {
    const r = parseInferenceRequest('chat', chat(), defaults);
    assert.equal(r.timeoutMs, 120_000);
    assert.equal(r.maxCoefficient, 4000);
    const n = parseInferenceRequest(
      'chat',
      chat({ timeout: null, max_coefficient: null, request_guid: null, enable_debug: null }),
      defaults,
    );
    assert.equal(n.timeoutMs, 120_000);
    assert.equal(n.maxCoefficient, 4000);
    for (const k of ['timeout', 'max_coefficient', 'request_guid', 'enable_debug'])
      assert.ok(!(k in n.body), k);
    assert.equal(parseInferenceRequest('chat', chat({ max_coefficient: 0 }), defaults).maxCoefficient, 0);
  });

  test('timeout: seconds to whole ms, capped by maxTimeoutMs and by what a timer can hold', () => {
    assert.equal(parseInferenceRequest('chat', chat({ timeout: 1.2345 }), defaults).timeoutMs, 1235);
    assert.equal(parseInferenceRequest('chat', chat({ timeout: 0.0001 }), defaults).timeoutMs, 1);
    const capped = { ...defaults, maxTimeoutMs: 60_000 };
    assert.equal(parseInferenceRequest('chat', chat({ timeout: 600 }), capped).timeoutMs, 60_000);
    assert.equal(parseInferenceRequest('chat', chat({ timeout: 10 }), capped).timeoutMs, 10_000);
    assert.equal(parseInferenceRequest('chat', chat(), capped).timeoutMs, 60_000);
    assert.equal(parseInferenceRequest('chat', chat({ timeout: 1e12 }), defaults).timeoutMs, 2 ** 31 - 1);
  });

  test('max_completion_tokens wins and travels as max_tokens', () => {
    const r = parseInferenceRequest('chat', chat({ max_tokens: 50, max_completion_tokens: 20 }), defaults);
    assert.equal(r.maxTokens, 20);
    assert.equal(r.body.max_tokens, 20);
    assert.ok(!('max_completion_tokens' in r.body));
    const only = parseInferenceRequest('chat', chat({ max_completion_tokens: 7 }), defaults);
    assert.equal(only.maxTokens, 7);
    assert.equal(only.body.max_tokens, 7);
    assert.ok(!('max_completion_tokens' in only.body));
    const one = parseInferenceRequest('chat', chat({ max_tokens: 1 }), defaults);
    assert.equal(one.maxTokens, 1);
    const nulls = parseInferenceRequest(
      'chat',
      chat({ max_tokens: null, max_completion_tokens: null }),
      defaults,
    );
    assert.equal(nulls.maxTokens, 1024);
    assert.equal(nulls.body.max_tokens, 1024);
  });

  test('streaming: includeUsage only when streaming and asked for', () => {
    const usage = parseInferenceRequest(
      'chat',
      chat({ stream: true, stream_options: { include_usage: true, include_obfuscation: false } }),
      defaults,
    );
    assert.equal(usage.stream, true);
    assert.equal(usage.includeUsage, true);
    assert.deepEqual(usage.body.stream_options, { include_usage: true, include_obfuscation: false });
    const plain = parseInferenceRequest('chat', chat({ stream: true }), defaults);
    assert.equal(plain.stream, true);
    assert.equal(plain.includeUsage, false);
    const off = parseInferenceRequest(
      'chat',
      chat({ stream: true, stream_options: { include_usage: false } }),
      defaults,
    );
    assert.equal(off.includeUsage, false);
    const notStreaming = parseInferenceRequest(
      'chat',
      chat({ stream: false, stream_options: null }),
      defaults,
    );
    assert.equal(notStreaming.stream, false);
    assert.equal(notStreaming.includeUsage, false);
  });

  test('sampling fields within range are accepted and forwarded as given', () => {
    const fields = {
      temperature: 0,
      top_p: 1,
      n: 8,
      seed: -42,
      stop: ['a', 'b', 'c', 'd'],
      presence_penalty: -2,
      frequency_penalty: 2,
      logit_bias: { '50256': -100 },
    };
    const r = parseInferenceRequest('chat', chat(fields), defaults);
    for (const [k, v] of Object.entries(fields)) assert.deepEqual(r.body[k], v, k);
    for (const stop of ['\n', null]) parseInferenceRequest('chat', chat({ stop }), defaults);
  });

  test('message shapes: every role, content parts, tool calls, tool results', () => {
    const raw = chat({
      messages: [
        { role: 'system', content: 's' },
        { role: 'developer', content: 'd' },
        {
          role: 'user',
          name: 'ann',
          content: [
            { type: 'text', text: 'what is this?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
          ],
        },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }],
        },
        { role: 'assistant', function_call: { name: 'f', arguments: '{}' } },
        { role: 'tool', tool_call_id: 'c1', content: '42' },
        { role: 'function', name: 'f', content: '42' },
      ],
    });
    const r = parseInferenceRequest('chat', raw, defaults);
    assert.deepEqual(r.body.messages, raw.messages);
  });

  test('completion: string, string[], token ids and token-id arrays', () => {
    for (const prompt of ['hi', ['a', 'b'], [1, 2, 3], [[1], [2, 0]]]) {
      const raw = completion({ prompt, max_tokens: 5, echo: true });
      const r = parseInferenceRequest('completion', raw, defaults);
      assert.equal(r.kind, 'completion');
      assert.equal(r.model, 'm');
      assert.equal(r.maxTokens, 5);
      assert.deepEqual(r.body, { model: 'm', prompt, max_tokens: 5, echo: true });
    }
    const d = parseInferenceRequest('completion', completion(), defaults);
    assert.equal(d.maxTokens, 1024);
    assert.equal(d.body.max_tokens, 1024);
    const mct = parseInferenceRequest('completion', completion({ max_completion_tokens: 9 }), defaults);
    assert.equal(mct.maxTokens, 9);
    assert.ok(!('max_completion_tokens' in mct.body));
  });
});

describe('OpenAI request parsing: refusals name the field and what was expected', () => {
  test('the body and the model', () => {
    rejects('chat', [1, 2], null, /must be a JSON object, but got an array/);
    rejects('chat', null, null, /must be a JSON object, but got null/);
    rejects('completion', 'hi', null, /must be a JSON object, but got a string/);
    rejects(
      'chat',
      { messages: [{ role: 'user', content: 'x' }] },
      'model',
      /^Missing required parameter: 'model'\.$/,
    );
    rejects('chat', chat({ model: '' }), 'model', /'model'.*must not be empty/);
    rejects(
      'chat',
      chat({ model: 7 }),
      'model',
      /Invalid type for 'model': expected a string, but got an integer/,
    );
  });

  test('messages', () => {
    rejects('chat', { model: 'm' }, 'messages', /^Missing required parameter: 'messages'\.$/);
    rejects('chat', chat({ messages: [] }), 'messages', /^'messages' must contain at least one message\.$/);
    rejects('chat', chat({ messages: 'hi' }), 'messages', /expected an array, but got a string instead/);
    rejects('chat', chat({ messages: ['hi'] }), 'messages[0]', /expected an object, but got a string/);
    rejects('chat', withMessage({ content: 'x' }), 'messages[1].role', /Missing required parameter/);
    rejects(
      'chat',
      withMessage({ role: 'bot', content: 'x' }),
      'messages[1].role',
      /Invalid value for 'messages\[1\]\.role': "bot"\. Supported values are: 'system', 'developer', 'user', 'assistant', 'tool', 'function'/,
    );
    rejects('chat', withMessage({ role: 'user' }), 'messages[1].content', /Missing required parameter/);
    rejects('chat', withMessage({ role: 'assistant' }), 'messages[1].content', /Missing required parameter/);
    rejects(
      'chat',
      withMessage({ role: 'user', content: null }),
      'messages[1].content',
      /null is only allowed/,
    );
    rejects('chat', withMessage({ role: 'assistant', content: null }), 'messages[1].content', /tool_calls/);
    rejects(
      'chat',
      withMessage({
        role: 'user',
        content: null,
        tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }],
      }),
      'messages[1].content',
      /only allowed in an assistant message/,
    );
    rejects(
      'chat',
      withMessage({ role: 'user', content: 5 }),
      'messages[1].content',
      /expected a string, an array of content parts, or null, but got an integer/,
    );
    rejects(
      'chat',
      withMessage({ role: 'user', content: [{ text: 'x' }] }),
      'messages[1].content[0].type',
      /Missing required parameter/,
    );
    rejects(
      'chat',
      withMessage({
        role: 'user',
        content: [
          { type: 'text', text: 'a' },
          { type: 'text', text: 1 },
        ],
      }),
      'messages[1].content[1].text',
      /expected a string, but got an integer/,
    );
    rejects(
      'chat',
      withMessage({ role: 'user', content: 'x', name: 3 }),
      'messages[1].name',
      /expected a string/,
    );
    rejects(
      'chat',
      withMessage({ role: 'tool', content: 'x' }),
      'messages[1].tool_call_id',
      /^Missing required parameter: 'messages\[1\]\.tool_call_id'\.$/,
    );
  });

  test('token limits', () => {
    rejects('chat', chat({ max_tokens: -1 }), 'max_tokens', /'max_tokens'.*at least 1, but got -1/);
    rejects('chat', chat({ max_completion_tokens: -1 }), 'max_completion_tokens', /at least 1/);
    rejects(
      'chat',
      chat({ max_tokens: '9' }),
      'max_tokens',
      /^Invalid type for 'max_tokens': expected an integer, but got a string instead\.$/,
    );
    rejects('chat', chat({ max_tokens: 1.5 }), 'max_tokens', /expected an integer, but got a number/);
    rejects('chat', chat({ max_completion_tokens: 1_000_001 }), 'max_completion_tokens', /at most 1000000/);
    rejects('completion', completion({ max_tokens: -5 }), 'max_tokens', /at least 1/);
  });

  test('sampling fields', () => {
    rejects('chat', chat({ temperature: 2.5 }), 'temperature', /'temperature'.*at most 2/);
    rejects('chat', chat({ temperature: 'hot' }), 'temperature', /expected a number, but got a string/);
    rejects('chat', chat({ top_p: -0.1 }), 'top_p', /at least 0/);
    rejects('chat', chat({ top_p: 1.5 }), 'top_p', /at most 1/);
    rejects('chat', chat({ n: 9 }), 'n', /Cocoon supports at most 8 choices/);
    rejects('chat', chat({ n: 0 }), 'n', /at least 1/);
    rejects('chat', chat({ n: 2.5 }), 'n', /expected an integer/);
    rejects('chat', chat({ seed: 0.5 }), 'seed', /expected an integer/);
    rejects('chat', chat({ seed: 2 ** 60 }), 'seed', /at most 9007199254740991/);
    rejects('chat', chat({ stop: ['a', 'b', 'c', 'd', 'e'] }), 'stop', /'stop'.*at most 4 items, but got 5/);
    rejects('chat', chat({ stop: ['a', ''] }), 'stop[1]', /must not be empty/);
    rejects('chat', chat({ stop: ['a', 5] }), 'stop[1]', /expected a string, but got an integer/);
    rejects(
      'chat',
      chat({ stop: 5 }),
      'stop',
      /expected a string or an array of at most 4 non-empty strings/,
    );
    rejects('chat', chat({ presence_penalty: -3 }), 'presence_penalty', /at least -2/);
    rejects('chat', chat({ frequency_penalty: 2.1 }), 'frequency_penalty', /at most 2/);
    rejects('chat', chat({ logit_bias: [1] }), 'logit_bias', /expected an object, but got an array/);
    rejects('chat', chat({ logit_bias: { '1': 'x' } }), 'logit_bias.1', /expected a number/);
  });

  test('streaming fields', () => {
    rejects('chat', chat({ stream: 'yes' }), 'stream', /expected a boolean, but got a string/);
    rejects(
      'chat',
      chat({ stream_options: { include_usage: true } }),
      'stream_options',
      /^The 'stream_options' parameter is only allowed when 'stream' is enabled\.$/,
    );
    rejects(
      'completion',
      completion({ stream: false, stream_options: { include_usage: true } }),
      'stream_options',
      /only allowed when 'stream'/,
    );
    rejects('chat', chat({ stream: true, stream_options: 'usage' }), 'stream_options', /expected an object/);
    rejects(
      'chat',
      chat({ stream: true, stream_options: { include_usage: 'yes' } }),
      'stream_options.include_usage',
      /expected a boolean/,
    );
  });

  test('Cocoon extras', () => {
    rejects(
      'chat',
      chat({ max_coefficient: 'cheap' }),
      'max_coefficient',
      /expected an integer, but got a string/,
    );
    rejects('chat', chat({ max_coefficient: -1 }), 'max_coefficient', /at least 0/);
    rejects('chat', chat({ max_coefficient: 1.5 }), 'max_coefficient', /expected an integer/);
    rejects('chat', chat({ timeout: -5 }), 'timeout', /'timeout'.*greater than 0, but got -5/);
    rejects('chat', chat({ timeout: 0 }), 'timeout', /greater than 0/);
    rejects('chat', chat({ timeout: '30' }), 'timeout', /expected a number, but got a string/);
    rejects('chat', chat({ request_guid: 5 }), 'request_guid', /expected a string/);
    rejects('chat', chat({ enable_debug: 'yes' }), 'enable_debug', /expected a boolean/);
  });

  test('completion prompts', () => {
    rejects('completion', { model: 'm' }, 'prompt', /^Missing required parameter: 'prompt'\.$/);
    rejects(
      'completion',
      completion({ prompt: 7 }),
      'prompt',
      /expected a string, an array of strings.*integer/,
    );
    rejects('completion', completion({ prompt: null }), 'prompt', /but got null/);
    rejects('completion', completion({ prompt: '' }), 'prompt', /must not be empty/);
    rejects('completion', completion({ prompt: [] }), 'prompt', /must not be empty/);
    rejects('completion', completion({ prompt: ['a', 1] }), 'prompt[1]', /expected a string/);
    rejects('completion', completion({ prompt: [1, -2] }), 'prompt[1]', /non-negative integer.*-2/);
    rejects('completion', completion({ prompt: [1, 2.5] }), 'prompt[1]', /token id/);
    rejects('completion', completion({ prompt: [[1], []] }), 'prompt[1]', /must not be empty/);
    rejects('completion', completion({ prompt: [[1], [1, 'x']] }), 'prompt[1][1]', /token id/);
    rejects('completion', completion({ prompt: [[1], 2] }), 'prompt[1]', /array of token ids/);
    rejects('completion', completion({ prompt: [{}] }), 'prompt[0]', /but got an object/);
  });

  test('the first problem wins, in schema order', () => {
    rejects('chat', { model: 1, messages: [] }, 'model', /model/);
    rejects('chat', chat({ messages: [{ role: 'bot' }], max_tokens: -1 }), 'messages[0].role', /bot/);
  });
});

const fn = (name: string, extra: Record<string, unknown> = {}) => ({
  type: 'function',
  function: { name, ...extra },
});
const weather = fn('get_weather', {
  description: 'The weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  strict: true,
});
const withTools = (extra: Record<string, unknown>) => chat({ tools: [weather], ...extra });
const withPart = (part: unknown, role = 'user') => withMessage({ role, content: [part] });
const call = (over: Record<string, unknown> = {}) => ({
  id: 'call_1',
  type: 'function',
  function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
  ...over,
});
const withCall = (c: unknown) => withMessage({ role: 'assistant', content: null, tool_calls: [c] });
const biases = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i), 1]));

describe('OpenAI-defined fields: valid shapes are accepted and forwarded as written', () => {
  const forwarded = (kind: 'chat' | 'completion', raw: Record<string, unknown>) => {
    const copy = structuredClone(raw);
    const r = parseInferenceRequest(kind, raw, defaults);
    assert.deepEqual(raw, copy, 'raw must not be mutated');
    const { max_tokens: _, ...rest } = r.body;
    assert.deepEqual(rest, raw);
    return r;
  };

  test('tools, tool_choice and parallel_tool_calls', () => {
    const custom = {
      type: 'custom',
      custom: {
        name: 'sql',
        description: 'Run SQL',
        format: { type: 'grammar', grammar: { definition: 'start: "SELECT"', syntax: 'lark' } },
      },
    };
    const tools = [
      weather,
      fn('noop'),
      fn('x-Y_9', { description: null, parameters: null, strict: null }),
      custom,
    ];
    for (const tool_choice of [
      'auto',
      'required',
      'none',
      null,
      { type: 'function', function: { name: 'get_weather' } },
      { type: 'custom', custom: { name: 'sql' } },
      {
        type: 'allowed_tools',
        allowed_tools: {
          mode: 'required',
          tools: [
            { type: 'function', function: { name: 'noop' } },
            { type: 'custom', custom: { name: 'sql' } },
          ],
        },
      },
    ]) {
      forwarded('chat', chat({ tools, tool_choice, parallel_tool_calls: false }));
    }
    forwarded('chat', chat({ tools: Array.from({ length: 128 }, (_, i) => fn(`f${i}`)) }));
    forwarded('chat', chat({ tools: [fn('a'.repeat(64))] }));
    forwarded('chat', chat({ tool_choice: 'none' }));
    forwarded('chat', chat({ tools: null, tool_choice: null, parallel_tool_calls: null }));
  });

  test('response_format: text, json_object and json_schema', () => {
    forwarded('chat', chat({ response_format: { type: 'text' } }));
    forwarded('chat', chat({ response_format: { type: 'json_object' } }));
    forwarded(
      'chat',
      chat({
        response_format: {
          type: 'json_schema',
          json_schema: {
            name: 'answer',
            description: 'The answer',
            schema: { type: 'object', properties: { a: { type: 'number' } }, additionalProperties: false },
            strict: true,
          },
        },
      }),
    );
    forwarded('chat', chat({ response_format: { type: 'json_schema', json_schema: { name: 'a' } } }));
  });

  test('an assistant message with tool_calls followed by the tool results', () => {
    forwarded(
      'chat',
      chat({
        tools: [weather],
        messages: [
          { role: 'user', content: 'Weather in Paris and Rome?' },
          {
            role: 'assistant',
            content: null,
            tool_calls: [
              call(),
              call({ id: 'call_2', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }),
              { id: 'call_3', type: 'custom', custom: { name: 'sql', input: 'SELECT 1' } },
            ],
          },
          { role: 'tool', tool_call_id: 'call_1', content: '18°C' },
          { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: '25°C' }] },
          { role: 'assistant', content: 'Paris 18°C, Rome 25°C.', tool_calls: null },
        ],
      }),
    );
  });

  test('content parts: text, image_url, input_audio, file, and an assistant refusal', () => {
    forwarded(
      'chat',
      chat({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is in these?' },
              { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'high' } },
              { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } },
              { type: 'file', file: { file_data: 'data:application/pdf;base64,JVBE', filename: 'a.pdf' } },
              { type: 'file', file: { file_id: 'file-abc' } },
            ],
          },
          {
            role: 'assistant',
            content: [
              { type: 'text', text: 'Partly: ' },
              { type: 'refusal', refusal: 'I cannot describe the second image.' },
            ],
          },
        ],
      }),
    );
  });

  test('logprobs, top_logprobs, logit_bias and user', () => {
    forwarded('chat', chat({ logprobs: true, top_logprobs: 20 }));
    forwarded('chat', chat({ logprobs: true, top_logprobs: 0 }));
    forwarded('chat', chat({ logprobs: false, top_logprobs: null }));
    forwarded('chat', chat({ logit_bias: { '0': -100, '50256': 100, '7': 0.5 } }));
    forwarded('chat', chat({ logit_bias: biases(300) }));
    forwarded('chat', chat({ logit_bias: {} }));
    forwarded('chat', chat({ user: 'user-1234' }));
    forwarded('completion', completion({ logit_bias: { '42': -1 }, user: 'u' }));
  });

  test('a model name of exactly MAX_MODEL_NAME_CHARS', () => {
    const r = forwarded('chat', chat({ model: 'm'.repeat(MAX_MODEL_NAME_CHARS) }));
    assert.equal(r.model.length, MAX_MODEL_NAME_CHARS);
  });

  test('completions: echo, best_of, suffix and integer logprobs', () => {
    forwarded('completion', completion({ echo: true, best_of: 3, n: 2, suffix: null, logprobs: 5 }));
    forwarded('completion', completion({ echo: false, best_of: 20, n: 8, suffix: 'end', logprobs: 0 }));
    forwarded('completion', completion({ best_of: 1, stream: true }));
    forwarded('completion', completion({ best_of: 0 }));
    forwarded('completion', completion({ best_of: 4 }));
  });

  test("each endpoint checks its own fields: the other endpoint's pass through unchanged", () => {
    // Chat's logprobs is a boolean, completions' an integer; neither is checked against the other's rule.
    forwarded('completion', completion({ response_format: { type: 'json_object' }, top_logprobs: 3 }));
    forwarded('chat', chat({ echo: 'yes', best_of: 99, suffix: 1 }));
  });
});

/** [what, kind, body, param, code, message?]: each refused with a 400 naming `param`. */
type Refusal = [string, 'chat' | 'completion', unknown, string, string, RegExp?];

function refusesAll(cases: Refusal[]) {
  for (const [what, kind, body, param, code, message] of cases) {
    test(what, () => {
      assert.throws(
        () => parseInferenceRequest(kind, body, defaults),
        (e: unknown) => {
          assert.ok(e instanceof BadRequestError, `expected a BadRequestError, got ${String(e)}`);
          assert.equal(e.status, 400);
          assert.equal(e.type, 'invalid_request_error');
          assert.equal(e.param, param, e.message);
          assert.equal(e.code, code, e.message);
          if (message) assert.match(e.message, message);
          return true;
        },
        `${JSON.stringify(body)?.slice(0, 200)} should be refused`,
      );
    });
  }
}

const MISSING = 'missing_required_parameter';
const TYPE = 'invalid_type';
const VALUE = 'invalid_value';

describe('OpenAI-defined fields: a caller mistake is a 400 naming the field', () => {
  describe('token limits and the model', () => {
    refusesAll([
      ['max_tokens: 0', 'chat', chat({ max_tokens: 0 }), 'max_tokens', VALUE, /at least 1, but got 0/],
      [
        'max_completion_tokens: 0',
        'chat',
        chat({ max_completion_tokens: 0 }),
        'max_completion_tokens',
        VALUE,
      ],
      ['completion max_tokens: 0', 'completion', completion({ max_tokens: 0 }), 'max_tokens', VALUE],
      [
        'a model name longer than MAX_MODEL_NAME_CHARS',
        'chat',
        chat({ model: 'm'.repeat(MAX_MODEL_NAME_CHARS + 1) }),
        'model',
        VALUE,
        /^Invalid 'model': must have at most 300 characters, but got 301\.$/,
      ],
      [
        'a completion model name too long',
        'completion',
        completion({ model: 'm'.repeat(1000) }),
        'model',
        VALUE,
      ],
    ]);
  });

  describe('tools', () => {
    refusesAll([
      [
        'tools not an array',
        'chat',
        chat({ tools: weather }),
        'tools',
        TYPE,
        /expected an array, but got an object/,
      ],
      [
        'more than 128 tools',
        'chat',
        chat({ tools: Array.from({ length: 129 }, (_, i) => fn(`f${i}`)) }),
        'tools',
        VALUE,
        /at most 128 items, but got 129/,
      ],
      [
        'a tool that is a string',
        'chat',
        chat({ tools: ['get_weather'] }),
        'tools[0]',
        TYPE,
        /expected an object/,
      ],
      [
        'a tool without type',
        'chat',
        chat({ tools: [{ function: { name: 'f' } }] }),
        'tools[0].type',
        MISSING,
        /^Missing required parameter: 'tools\[0\]\.type'\.$/,
      ],
      [
        'an unknown tool type',
        'chat',
        chat({ tools: [weather, { type: 'retrieval' }] }),
        'tools[1].type',
        VALUE,
        /^Invalid value for 'tools\[1\]\.type': "retrieval"\. Supported values are: 'function', 'custom'\.$/,
      ],
      [
        'a function tool without function',
        'chat',
        chat({ tools: [{ type: 'function' }] }),
        'tools[0].function',
        MISSING,
        /^Missing required parameter: 'tools\[0\]\.function'\.$/,
      ],
      [
        'a function that is a string',
        'chat',
        chat({ tools: [{ type: 'function', function: 'f' }] }),
        'tools[0].function',
        TYPE,
      ],
      [
        'a function without name',
        'chat',
        chat({ tools: [{ type: 'function', function: { description: 'd' } }] }),
        'tools[0].function.name',
        MISSING,
      ],
      [
        'a function name that is an integer',
        'chat',
        chat({ tools: [fn(5 as unknown as string)] }),
        'tools[0].function.name',
        TYPE,
        /^Invalid type for 'tools\[0\]\.function\.name': expected a string, but got an integer instead\.$/,
      ],
      [
        'a function name with a space',
        'chat',
        chat({ tools: [fn('get weather')] }),
        'tools[0].function.name',
        VALUE,
        /string does not match pattern\. Expected a string that matches the pattern '\^\[a-zA-Z0-9_-\]\{1,64\}\$'/,
      ],
      ['an empty function name', 'chat', chat({ tools: [fn('')] }), 'tools[0].function.name', VALUE],
      [
        'a function name of 65 characters',
        'chat',
        chat({ tools: [fn('a'.repeat(65))] }),
        'tools[0].function.name',
        VALUE,
      ],
      [
        'a description that is a number',
        'chat',
        chat({ tools: [fn('f', { description: 1 })] }),
        'tools[0].function.description',
        TYPE,
      ],
      [
        'parameters that are an array',
        'chat',
        chat({ tools: [fn('f', { parameters: [] })] }),
        'tools[0].function.parameters',
        TYPE,
        /expected an object, but got an array/,
      ],
      [
        'parameters that are a string',
        'chat',
        chat({ tools: [fn('f', { parameters: '{}' })] }),
        'tools[0].function.parameters',
        TYPE,
      ],
      [
        'strict that is a string',
        'chat',
        chat({ tools: [fn('f', { strict: 'yes' })] }),
        'tools[0].function.strict',
        TYPE,
        /expected a boolean, but got a string/,
      ],
      [
        'a custom tool without custom',
        'chat',
        chat({ tools: [{ type: 'custom' }] }),
        'tools[0].custom',
        MISSING,
      ],
      [
        'a custom tool with a bad name',
        'chat',
        chat({ tools: [{ type: 'custom', custom: { name: 'a.b' } }] }),
        'tools[0].custom.name',
        VALUE,
      ],
      [
        'a custom tool with an unknown format',
        'chat',
        chat({ tools: [{ type: 'custom', custom: { name: 'c', format: { type: 'xml' } } }] }),
        'tools[0].custom.format.type',
        VALUE,
        /Supported values are: 'text', 'grammar'/,
      ],
    ]);
  });

  describe('tool_choice and parallel_tool_calls', () => {
    refusesAll([
      [
        'an unknown tool_choice mode',
        'chat',
        withTools({ tool_choice: 'sometimes' }),
        'tool_choice',
        VALUE,
        /^Invalid value for 'tool_choice': "sometimes"\. Supported values are: 'none', 'auto', 'required'\.$/,
      ],
      [
        'a tool_choice that is a number',
        'chat',
        withTools({ tool_choice: 1 }),
        'tool_choice',
        TYPE,
        /expected one of 'none', 'auto', 'required' or an object naming a tool, but got an integer/,
      ],
      [
        'a tool_choice of an unknown type',
        'chat',
        withTools({ tool_choice: { type: 'tool', name: 'get_weather' } }),
        'tool_choice.type',
        VALUE,
        /Supported values are: 'function', 'custom', 'allowed_tools'/,
      ],
      ['a tool_choice without type', 'chat', withTools({ tool_choice: {} }), 'tool_choice.type', MISSING],
      [
        'a function tool_choice without function',
        'chat',
        withTools({ tool_choice: { type: 'function' } }),
        'tool_choice.function',
        MISSING,
      ],
      [
        'a function tool_choice without name',
        'chat',
        withTools({ tool_choice: { type: 'function', function: {} } }),
        'tool_choice.function.name',
        MISSING,
      ],
      [
        "tool_choice 'auto' without tools",
        'chat',
        chat({ tool_choice: 'auto' }),
        'tool_choice',
        VALUE,
        /^Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified\.$/,
      ],
      [
        "tool_choice 'required' with empty tools",
        'chat',
        chat({ tools: [], tool_choice: 'required' }),
        'tool_choice',
        VALUE,
      ],
      [
        'a named tool_choice without tools',
        'chat',
        chat({ tool_choice: { type: 'function', function: { name: 'get_weather' } } }),
        'tool_choice',
        VALUE,
        /only allowed when 'tools' are specified/,
      ],
      [
        'a named function not among tools',
        'chat',
        withTools({ tool_choice: { type: 'function', function: { name: 'get_time' } } }),
        'tool_choice.function.name',
        VALUE,
        /no function named "get_time" is among 'tools'/,
      ],
      [
        'a custom tool named where only a function of that name exists',
        'chat',
        withTools({ tool_choice: { type: 'custom', custom: { name: 'get_weather' } } }),
        'tool_choice.custom.name',
        VALUE,
        /no custom tool named "get_weather"/,
      ],
      [
        'allowed_tools with an unknown mode',
        'chat',
        withTools({ tool_choice: { type: 'allowed_tools', allowed_tools: { mode: 'any', tools: [] } } }),
        'tool_choice.allowed_tools.mode',
        VALUE,
        /Supported values are: 'auto', 'required'/,
      ],
      [
        'allowed_tools naming a function not among tools',
        'chat',
        withTools({
          tool_choice: {
            type: 'allowed_tools',
            allowed_tools: { mode: 'auto', tools: [fn('get_weather'), fn('get_time')] },
          },
        }),
        'tool_choice.allowed_tools.tools[1].function.name',
        VALUE,
      ],
      [
        'parallel_tool_calls that is a string',
        'chat',
        withTools({ parallel_tool_calls: 'yes' }),
        'parallel_tool_calls',
        TYPE,
        /expected a boolean, but got a string/,
      ],
      [
        'parallel_tool_calls without tools',
        'chat',
        chat({ parallel_tool_calls: true }),
        'parallel_tool_calls',
        VALUE,
        /^Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified\.$/,
      ],
      [
        'parallel_tool_calls: false without tools',
        'chat',
        chat({ parallel_tool_calls: false }),
        'parallel_tool_calls',
        VALUE,
      ],
    ]);
  });

  describe('response_format', () => {
    refusesAll([
      ['a string', 'chat', chat({ response_format: 'json' }), 'response_format', TYPE, /expected an object/],
      ['without type', 'chat', chat({ response_format: {} }), 'response_format.type', MISSING],
      [
        'an unknown type',
        'chat',
        chat({ response_format: { type: 'xml' } }),
        'response_format.type',
        VALUE,
        /^Invalid value for 'response_format\.type': "xml"\. Supported values are: 'text', 'json_object', 'json_schema'\.$/,
      ],
      [
        'json_schema without json_schema',
        'chat',
        chat({ response_format: { type: 'json_schema', schema: {} } }),
        'response_format.json_schema',
        MISSING,
      ],
      [
        'json_schema without a name',
        'chat',
        chat({ response_format: { type: 'json_schema', json_schema: { schema: {} } } }),
        'response_format.json_schema.name',
        MISSING,
      ],
      [
        'json_schema with a bad name',
        'chat',
        chat({ response_format: { type: 'json_schema', json_schema: { name: 'my schema' } } }),
        'response_format.json_schema.name',
        VALUE,
        /does not match pattern/,
      ],
      [
        'json_schema whose schema is a string',
        'chat',
        chat({ response_format: { type: 'json_schema', json_schema: { name: 'a', schema: '{}' } } }),
        'response_format.json_schema.schema',
        TYPE,
      ],
      [
        'json_schema whose strict is a number',
        'chat',
        chat({ response_format: { type: 'json_schema', json_schema: { name: 'a', strict: 1 } } }),
        'response_format.json_schema.strict',
        TYPE,
      ],
      [
        'json_schema whose description is a number',
        'chat',
        chat({ response_format: { type: 'json_schema', json_schema: { name: 'a', description: 1 } } }),
        'response_format.json_schema.description',
        TYPE,
      ],
    ]);
  });

  describe('logprobs, logit_bias and user', () => {
    refusesAll([
      [
        'chat logprobs that is a string',
        'chat',
        chat({ logprobs: 'yes' }),
        'logprobs',
        TYPE,
        /expected a boolean/,
      ],
      [
        'chat logprobs that is an integer',
        'chat',
        chat({ logprobs: 3 }),
        'logprobs',
        TYPE,
        /expected a boolean, but got an integer/,
      ],
      [
        'top_logprobs above 20',
        'chat',
        chat({ logprobs: true, top_logprobs: 21 }),
        'top_logprobs',
        VALUE,
        /at most 20/,
      ],
      ['top_logprobs below 0', 'chat', chat({ logprobs: true, top_logprobs: -1 }), 'top_logprobs', VALUE],
      [
        'top_logprobs not an integer',
        'chat',
        chat({ logprobs: true, top_logprobs: 1.5 }),
        'top_logprobs',
        TYPE,
        /expected an integer/,
      ],
      [
        'top_logprobs without logprobs',
        'chat',
        chat({ top_logprobs: 5 }),
        'top_logprobs',
        VALUE,
        /^Invalid value for 'top_logprobs': 'top_logprobs' is only allowed when 'logprobs' is true\.$/,
      ],
      [
        'top_logprobs with logprobs false',
        'chat',
        chat({ logprobs: false, top_logprobs: 0 }),
        'top_logprobs',
        VALUE,
      ],
      [
        'logit_bias that is an array',
        'chat',
        chat({ logit_bias: [1] }),
        'logit_bias',
        TYPE,
        /expected an object, but got an array/,
      ],
      ['logit_bias that is a string', 'chat', chat({ logit_bias: '1:2' }), 'logit_bias', TYPE],
      [
        'a logit_bias key that is not a token id',
        'chat',
        chat({ logit_bias: { '1': 1, hello: 5 } }),
        'logit_bias',
        VALUE,
        /keys must be token ids.*"hello"/,
      ],
      ['a negative logit_bias key', 'chat', chat({ logit_bias: { '-1': 5 } }), 'logit_bias', VALUE],
      [
        'a fractional logit_bias key',
        'completion',
        completion({ logit_bias: { '1.5': 5 } }),
        'logit_bias',
        VALUE,
      ],
      [
        'more than 300 logit biases',
        'chat',
        chat({ logit_bias: biases(301) }),
        'logit_bias',
        VALUE,
        /at most 300 token biases are allowed, but got 301/,
      ],
      [
        'a bias above 100',
        'chat',
        chat({ logit_bias: { '50256': 101 } }),
        'logit_bias.50256',
        VALUE,
        /^Invalid 'logit_bias\.50256': must be at most 100, but got 101\.$/,
      ],
      [
        'a bias below -100',
        'completion',
        completion({ logit_bias: { '7': -100.5 } }),
        'logit_bias.7',
        VALUE,
        /at least -100/,
      ],
      [
        'a bias that is a string',
        'chat',
        chat({ logit_bias: { '1': 'x' } }),
        'logit_bias.1',
        TYPE,
        /expected a number/,
      ],
      [
        'user that is a number',
        'chat',
        chat({ user: 42 }),
        'user',
        TYPE,
        /expected a string, but got an integer/,
      ],
      ['completion user that is an object', 'completion', completion({ user: {} }), 'user', TYPE],
    ]);
  });

  describe("an assistant message's tool_calls", () => {
    refusesAll([
      [
        'tool_calls not an array',
        'chat',
        withMessage({ role: 'assistant', content: null, tool_calls: call() }),
        'messages[1].tool_calls',
        TYPE,
        /expected an array, but got an object/,
      ],
      [
        'a call without id',
        'chat',
        withCall(call({ id: undefined })),
        'messages[1].tool_calls[0].id',
        MISSING,
      ],
      [
        'a call whose id is a number',
        'chat',
        withCall(call({ id: 1 })),
        'messages[1].tool_calls[0].id',
        TYPE,
      ],
      [
        'a call without type',
        'chat',
        withCall(call({ type: undefined })),
        'messages[1].tool_calls[0].type',
        MISSING,
      ],
      [
        'a call of an unknown type',
        'chat',
        withCall(call({ type: 'tool' })),
        'messages[1].tool_calls[0].type',
        VALUE,
        /Supported values are: 'function', 'custom'/,
      ],
      [
        'a call without function',
        'chat',
        withCall(call({ function: undefined })),
        'messages[1].tool_calls[0].function',
        MISSING,
      ],
      [
        'a call without a function name',
        'chat',
        withCall(call({ function: { arguments: '{}' } })),
        'messages[1].tool_calls[0].function.name',
        MISSING,
      ],
      [
        'arguments that are an object, not JSON text',
        'chat',
        withCall(call({ function: { name: 'f', arguments: { city: 'Paris' } } })),
        'messages[1].tool_calls[0].function.arguments',
        TYPE,
        /^Invalid type for 'messages\[1\]\.tool_calls\[0\]\.function\.arguments': expected a string, but got an object instead\.$/,
      ],
      [
        'a custom call without input',
        'chat',
        withCall({ id: 'c', type: 'custom', custom: { name: 'sql' } }),
        'messages[1].tool_calls[0].custom.input',
        MISSING,
      ],
      [
        'a tool message without tool_call_id',
        'chat',
        withMessage({ role: 'tool', content: 'r' }),
        'messages[1].tool_call_id',
        MISSING,
      ],
    ]);
  });

  describe('content parts', () => {
    refusesAll([
      [
        'an unknown part type',
        'chat',
        withPart({ type: 'video_url', video_url: { url: 'x' } }),
        'messages[1].content[0].type',
        VALUE,
        /^Invalid value for 'messages\[1\]\.content\[0\]\.type': "video_url"\. Supported values are: 'text', 'image_url', 'input_audio', 'file', 'refusal'\.$/,
      ],
      ['a part that is a string', 'chat', withPart('hi'), 'messages[1].content[0]', TYPE],
      ['text that is missing', 'chat', withPart({ type: 'text' }), 'messages[1].content[0].text', MISSING],
      [
        'image_url missing',
        'chat',
        withPart({ type: 'image_url', url: 'https://example.com/a.png' }),
        'messages[1].content[0].image_url',
        MISSING,
        /^Missing required parameter: 'messages\[1\]\.content\[0\]\.image_url'\.$/,
      ],
      [
        'image_url that is a string',
        'chat',
        withPart({ type: 'image_url', image_url: 'https://example.com/a.png' }),
        'messages[1].content[0].image_url',
        TYPE,
        /expected an object, but got a string/,
      ],
      [
        'image_url without url',
        'chat',
        withPart({ type: 'image_url', image_url: {} }),
        'messages[1].content[0].image_url.url',
        MISSING,
      ],
      [
        'an unknown image detail',
        'chat',
        withPart({ type: 'image_url', image_url: { url: 'u', detail: 'ultra' } }),
        'messages[1].content[0].image_url.detail',
        VALUE,
        /Supported values are: 'auto', 'low', 'high'/,
      ],
      [
        'an unknown audio format',
        'chat',
        withPart({ type: 'input_audio', input_audio: { data: 'AAAA', format: 'ogg' } }),
        'messages[1].content[0].input_audio.format',
        VALUE,
        /Supported values are: 'wav', 'mp3'/,
      ],
      [
        'audio without data',
        'chat',
        withPart({ type: 'input_audio', input_audio: { format: 'wav' } }),
        'messages[1].content[0].input_audio.data',
        MISSING,
      ],
      [
        'file missing',
        'chat',
        withPart({ type: 'file', file_id: 'f' }),
        'messages[1].content[0].file',
        MISSING,
      ],
      [
        'a file_id that is a number',
        'chat',
        withPart({ type: 'file', file: { file_id: 1 } }),
        'messages[1].content[0].file.file_id',
        TYPE,
      ],
      [
        'a refusal in a user message',
        'chat',
        withPart({ type: 'refusal', refusal: 'no' }),
        'messages[1].content[0].type',
        VALUE,
        /^Invalid value for 'messages\[1\]\.content\[0\]\.type': "refusal"\. Supported values are: 'text', 'image_url', 'input_audio', 'file'\.$/,
      ],
      [
        'a refusal that is not a string',
        'chat',
        withPart({ type: 'refusal', refusal: true }, 'assistant'),
        'messages[1].content[0].refusal',
        TYPE,
      ],
      [
        'a bad second part',
        'chat',
        withMessage({ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'image' }] }),
        'messages[1].content[1].type',
        VALUE,
      ],
    ]);
  });

  describe('completions: echo, best_of, suffix and logprobs', () => {
    refusesAll([
      [
        'echo that is a string',
        'completion',
        completion({ echo: 'yes' }),
        'echo',
        TYPE,
        /expected a boolean/,
      ],
      ['best_of above 20', 'completion', completion({ best_of: 21 }), 'best_of', VALUE, /at most 20/],
      ['best_of below 0', 'completion', completion({ best_of: -1 }), 'best_of', VALUE],
      [
        'best_of not an integer',
        'completion',
        completion({ best_of: 2.5 }),
        'best_of',
        TYPE,
        /expected an integer/,
      ],
      [
        'best_of smaller than n',
        'completion',
        completion({ best_of: 1, n: 2 }),
        'best_of',
        VALUE,
        /best_of must be greater than or equal to n/,
      ],
      [
        'best_of > 1 streamed',
        'completion',
        completion({ best_of: 2, stream: true }),
        'best_of',
        VALUE,
        /cannot be streamed when best_of is greater than 1/,
      ],
      [
        'suffix that is a number',
        'completion',
        completion({ suffix: 1 }),
        'suffix',
        TYPE,
        /expected a string/,
      ],
      ['logprobs above 5', 'completion', completion({ logprobs: 6 }), 'logprobs', VALUE, /at most 5/],
      ['logprobs below 0', 'completion', completion({ logprobs: -1 }), 'logprobs', VALUE],
      [
        'logprobs that is a boolean (chat style)',
        'completion',
        completion({ logprobs: true }),
        'logprobs',
        TYPE,
        /^Invalid type for 'logprobs': expected an integer, but got a boolean instead\.$/,
      ],
    ]);
  });
});

describe('OpenAI request parsing: long inputs', () => {
  // Their cost is measured in `npm run bench` (bench/payments.ts), not here.
  test('a 50,000-token prompt and a 100-message conversation parse, unchanged', () => {
    const prompt = Array.from({ length: 50_000 }, (_, i) => i % 50_000);
    const tokens = parseInferenceRequest('completion', completion({ prompt }), defaults);
    assert.deepEqual(tokens.body.prompt, prompt);
    const messages = Array.from({ length: 100 }, (_, i) => ({
      role: i % 2 ? 'assistant' : 'user',
      content: 'x'.repeat(1000),
    }));
    const conversation = parseInferenceRequest('chat', chat({ messages }), defaults);
    assert.deepEqual(conversation.body.messages, messages);
  });
});
