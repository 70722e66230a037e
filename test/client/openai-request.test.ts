import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseInferenceRequest, type RequestDefaults } from '../../src/client/openai-request.ts';
import { BadRequestError } from '../../src/errors.ts';

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
    const mt = parseInferenceRequest('chat', chat({ max_tokens: 0 }), defaults);
    assert.equal(mt.maxTokens, 0);
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
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function' }] },
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
      withMessage({ role: 'user', content: null, tool_calls: [{ id: 'c1' }] }),
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
    rejects('chat', chat({ max_tokens: -1 }), 'max_tokens', /'max_tokens'.*at least 0, but got -1/);
    rejects('chat', chat({ max_completion_tokens: -1 }), 'max_completion_tokens', /at least 0/);
    rejects(
      'chat',
      chat({ max_tokens: '9' }),
      'max_tokens',
      /^Invalid type for 'max_tokens': expected an integer, but got a string instead\.$/,
    );
    rejects('chat', chat({ max_tokens: 1.5 }), 'max_tokens', /expected an integer, but got a number/);
    rejects('chat', chat({ max_completion_tokens: 1_000_001 }), 'max_completion_tokens', /at most 1000000/);
    rejects('completion', completion({ max_tokens: -5 }), 'max_tokens', /at least 0/);
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

describe('OpenAI request parsing: cost', () => {
  test('a long token prompt and a long conversation parse in well under a millisecond each', () => {
    const tokens = completion({ prompt: Array.from({ length: 50_000 }, (_, i) => i % 50_000) });
    const conversation = chat({
      messages: Array.from({ length: 100 }, (_, i) => ({
        role: i % 2 ? 'assistant' : 'user',
        content: 'x'.repeat(1000),
      })),
    });
    for (let i = 0; i < 20; i++) {
      parseInferenceRequest('completion', tokens, defaults);
      parseInferenceRequest('chat', conversation, defaults);
    }
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) {
      parseInferenceRequest('completion', tokens, defaults);
      parseInferenceRequest('chat', conversation, defaults);
    }
    const perPair = (performance.now() - t0) / 100;
    // Today ~0.06 ms; validating the prompt with z.array() alone would cost ~2 ms.
    assert.ok(perPair < 1, `parsing took ${perPair.toFixed(3)} ms per pair`);
  });
});
