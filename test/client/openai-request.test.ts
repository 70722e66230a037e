import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseInferenceRequest } from '../../src/client/openai-request.ts';
import type { CocoonError } from '../../src/errors.ts';

const defaults = { maxTokens: 1024, timeoutMs: 120_000, maxCoefficient: 4000 };
const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'm',
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
});

function rejects(kind: 'chat' | 'completion', body: unknown, param: string | null, message: RegExp) {
  assert.throws(
    () => parseInferenceRequest(kind, body, defaults),
    (e: CocoonError) => {
      assert.equal(e.status, 400);
      assert.equal(e.type, 'invalid_request_error');
      assert.equal(e.param, param);
      assert.match(e.message, message);
      return true;
    },
  );
}

describe('OpenAI request parsing', () => {
  test('a chat body: defaults applied, extras removed, unknown fields kept, input untouched', () => {
    const raw = chat({
      tools: [{ type: 'function' }],
      max_coefficient: 2000,
      timeout: 30,
      request_guid: 'g',
      user: 'u',
    });
    const copy = structuredClone(raw);
    const r = parseInferenceRequest('chat', raw, defaults);
    assert.deepEqual(raw, copy);
    assert.equal(r.kind, 'chat');
    assert.equal(r.model, 'm');
    assert.equal(r.stream, false);
    assert.equal(r.includeUsage, false);
    assert.equal(r.maxTokens, 1024);
    assert.equal(r.timeoutMs, 30_000);
    assert.equal(r.maxCoefficient, 2000);
    assert.equal(r.body.max_tokens, 1024);
    assert.deepEqual(r.body.tools, [{ type: 'function' }]);
    assert.equal(r.body.user, 'u');
    for (const k of ['max_coefficient', 'timeout', 'request_guid']) assert.ok(!(k in r.body), k);
  });

  test('max_completion_tokens wins and travels as max_tokens', () => {
    const r = parseInferenceRequest('chat', chat({ max_tokens: 50, max_completion_tokens: 20 }), defaults);
    assert.equal(r.maxTokens, 20);
    assert.equal(r.body.max_tokens, 20);
    assert.ok(!('max_completion_tokens' in r.body));
  });

  test('streaming with usage', () => {
    const r = parseInferenceRequest(
      'chat',
      chat({ stream: true, stream_options: { include_usage: true } }),
      defaults,
    );
    assert.equal(r.stream, true);
    assert.equal(r.includeUsage, true);
  });

  test('a completion body with string, string[] and token prompts', () => {
    for (const prompt of ['hi', ['a', 'b'], [1, 2, 3], [[1], [2]]]) {
      const r = parseInferenceRequest('completion', { model: 'm', prompt, max_tokens: 5 }, defaults);
      assert.equal(r.kind, 'completion');
      assert.equal(r.maxTokens, 5);
    }
  });

  test('refusals name the field and what was expected', () => {
    rejects('chat', [1, 2], null, /JSON object/);
    rejects('chat', { messages: [] }, 'model', /Missing required parameter: 'model'/);
    rejects('chat', { model: 'm' }, 'messages', /Missing required parameter: 'messages'/);
    rejects('chat', chat({ messages: [] }), 'messages', /at least one message/);
    rejects('chat', chat({ messages: 'hi' }), 'messages', /expected an array, but got a string/);
    rejects('chat', chat({ messages: [{ role: 'bot', content: 'x' }] }), 'messages[0].role', /'user'/);
    rejects('chat', chat({ messages: [{ role: 'user' }] }), 'messages[0].content', /needs 'content'/);
    rejects(
      'chat',
      chat({ messages: [{ role: 'tool', content: 'x' }] }),
      'messages[0].tool_call_id',
      /tool_call_id/,
    );
    rejects('chat', chat({ max_tokens: -1 }), 'max_tokens', /at least 0/);
    rejects('chat', chat({ max_tokens: 1.5 }), 'max_tokens', /integer/);
    rejects(
      'chat',
      chat({ max_completion_tokens: '9' }),
      'max_completion_tokens',
      /expected a number, but got a string/,
    );
    rejects('chat', chat({ temperature: 3 }), 'temperature', /at most 2/);
    rejects('chat', chat({ top_p: -0.1 }), 'top_p', /at least 0/);
    rejects('chat', chat({ n: 9 }), 'n', /at most 8 choices/);
    rejects('chat', chat({ stop: ['a', 'b', 'c', 'd', 'e'] }), 'stop', /at most 4/);
    rejects(
      'chat',
      chat({ stream_options: { include_usage: true } }),
      'stream_options',
      /only allowed when 'stream'/,
    );
    rejects('chat', chat({ stream: 'yes' }), 'stream', /expected a boolean/);
    rejects('chat', chat({ max_coefficient: 'cheap' }), 'max_coefficient', /expected a number/);
    rejects('chat', chat({ timeout: -5 }), 'timeout', /timeout/);
    rejects('completion', { model: 'm' }, 'prompt', /Missing required parameter: 'prompt'/);
    rejects('completion', { model: 'm', prompt: 7 }, 'prompt', /string/);
  });

  test('an assistant message with tool calls may have null content', () => {
    const r = parseInferenceRequest(
      'chat',
      chat({
        messages: [
          { role: 'user', content: 'x' },
          { role: 'assistant', content: null, tool_calls: [{ id: '1' }] },
        ],
      }),
      defaults,
    );
    assert.equal((r.body.messages as unknown[]).length, 2);
  });
});
