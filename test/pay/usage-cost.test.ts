import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addCostToUsage, type UsageCost } from '../../src/pay/usage-cost.ts';

const COST: UsageCost = { prompt: 1_050_000n, completion: 2_550_000n, total: 3_600_000n };
const COST_FIELDS = '"prompt_cost":1050000,"completion_cost":2550000,"total_cost":3600000';

describe('addCostToUsage', () => {
  test('adds the three costs at the start of the usage object of a response', () => {
    const response =
      '{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],' +
      '"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}';
    const out = addCostToUsage(response, COST);
    assert.equal(
      out,
      response.replace('"usage":{', `"usage":{${COST_FIELDS},`),
      'the rest of the text is kept byte for byte',
    );
    const parsed = JSON.parse(out);
    assert.deepEqual(parsed.usage, {
      prompt_cost: 1_050_000,
      completion_cost: 2_550_000,
      total_cost: 3_600_000,
      prompt_tokens: 3,
      completion_tokens: 5,
      total_tokens: 8,
    });
    assert.equal(parsed.choices[0].message.content, 'hi');
  });

  test('adds the costs to the usage of a usage-only stream chunk', () => {
    const chunk =
      '{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}';
    const parsed = JSON.parse(addCostToUsage(chunk, COST));
    assert.deepEqual(parsed.choices, []);
    assert.equal(parsed.usage.total_cost, 3_600_000);
    assert.equal(parsed.usage.prompt_cost, 1_050_000);
    assert.equal(parsed.usage.completion_cost, 2_550_000);
    assert.equal(parsed.usage.total_tokens, 8);
  });

  test('fills an empty usage object without a trailing comma', () => {
    const out = addCostToUsage('{"usage":{}}', COST);
    assert.equal(out, `{"usage":{${COST_FIELDS}}}`);
    assert.deepEqual(JSON.parse(out), {
      usage: { prompt_cost: 1_050_000, completion_cost: 2_550_000, total_cost: 3_600_000 },
    });
  });

  test('leaves text without a usage object unchanged', () => {
    for (const text of ['{"id":"x","choices":[]}', '{"usage":null}', '', 'data: [DONE]']) {
      assert.equal(addCostToUsage(text, COST), text);
    }
  });

  test('writes amounts as exact JSON integers, also beyond 2^53', () => {
    const big: UsageCost = {
      prompt: 123_456_789_012_345_678_900n,
      completion: 1n,
      total: 123_456_789_012_345_678_901n,
    };
    const out = addCostToUsage('{"usage":{"prompt_tokens":1}}', big);
    assert.equal(
      out,
      '{"usage":{"prompt_cost":123456789012345678900,"completion_cost":1,"total_cost":123456789012345678901,"prompt_tokens":1}}',
    );
    assert.doesNotThrow(() => JSON.parse(out));
  });

  test('a "usage":{ quoted inside message content is not mistaken for the usage object', () => {
    const text = JSON.stringify({
      usage: { prompt_tokens: 1 },
      choices: [{ message: { content: 'say "usage":{ now' } }],
    });
    const parsed = JSON.parse(addCostToUsage(text, COST));
    assert.equal(parsed.usage.total_cost, 3_600_000);
    assert.equal(parsed.choices[0].message.content, 'say "usage":{ now');
  });

  test('adds the costs when the engine writes whitespace after the colon ("usage": {)', {}, () => {
    const text = '{"id": "x", "usage": {"prompt_tokens": 3, "completion_tokens": 5}}';
    const parsed = JSON.parse(addCostToUsage(text, COST));
    assert.equal(parsed.usage.total_cost, 3_600_000);
  });
});
