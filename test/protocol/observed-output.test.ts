import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  OutputObserver,
  partCarriesOutput,
  responseOutputBytes,
  SILENT_TOKENS_PER_CHOICE,
} from '../../src/protocol/observed-output.ts';

const chunk = (delta: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'm"odel',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: null, ...extra }],
  });

test('a stream part carries output exactly when a choice has text, whichever way it is read', () => {
  const cases: [string, boolean][] = [
    [chunk({ content: 'hi' }), true],
    [chunk({ content: '' }), false],
    [chunk({ content: 'é 中 \u0000 \\ "' }), true],
    [chunk({ role: 'assistant', content: '' }), false],
    [chunk({ reasoning_content: 'think' }), true],
    [chunk({ tool_calls: [{ function: { name: 'f', arguments: '{}' } }] }), true],
    [chunk({ content: 'x' }, { finish_reason: 'stop' }), true],
    [chunk({}), false],
    [JSON.stringify({ object: 'text_completion', choices: [{ index: 0, text: 'a' }] }), true],
    [JSON.stringify({ choices: [], usage: { completion_tokens: 5 } }), false],
    // Text elsewhere than a choice's output counts for nothing, however it is spelt.
    [JSON.stringify({ choices: [{ index: 0, delta: {}, logprobs: { content: 'x' } }] }), false],
    ['not json', false],
  ];
  for (const [part, carries] of cases) {
    assert.equal(partCarriesOutput(part), carries, part);
    assert.equal(partCarriesOutput(Buffer.from(part)), carries, `${part} (bytes)`);
  }
});

test('a whole reply accounts for the bytes of its generated text; the observer adds the silent tokens', () => {
  const reply = JSON.stringify({
    choices: [
      { index: 0, message: { content: 'héllo' } },
      {
        index: 1,
        message: { content: null, tool_calls: [{ function: { name: 'fn', arguments: '{"a":1}' } }] },
      },
    ],
  });
  assert.equal(responseOutputBytes(reply), 6 + 2 + 7);
  const o = new OutputObserver();
  o.collect(Buffer.from(reply.slice(0, 10)));
  o.collect(Buffer.from(reply.slice(10)));
  assert.equal(o.completionTokens(2), 15 + 2 * SILENT_TOKENS_PER_CHOICE);
  const s = new OutputObserver();
  for (const c of ['a', '', 'b']) s.observePart(chunk({ content: c }));
  assert.equal(s.completionTokens(1), 2 + SILENT_TOKENS_PER_CHOICE);
});
