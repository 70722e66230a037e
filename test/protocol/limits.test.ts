import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jsonNestsDeeperThan, MAX_JSON_DEPTH } from '../../src/protocol/limits.ts';

/** The nesting depth of a parsed value, walked without recursion. */
function depthOf(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    max = Math.max(max, d + 1);
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

/** Random JSON with strings full of brackets, quotes and backslashes. */
function randomJson(rand: () => number, depth: number): unknown {
  const r = rand();
  if (depth <= 0 || r < 0.3) {
    const chars = '[]{}"\\\\ab\n';
    let s = '';
    for (let i = Math.floor(rand() * 8); i > 0; i--) s += chars[Math.floor(rand() * chars.length)];
    return rand() < 0.5 ? s : Math.floor(rand() * 100);
  }
  const n = Math.floor(rand() * 4);
  if (r < 0.65) return Array.from({ length: n }, () => randomJson(rand, depth - 1));
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}[{"`, randomJson(rand, depth - 1)]));
}

describe('jsonNestsDeeperThan', () => {
  test('counts arrays and objects, not brackets inside strings or after escaped quotes', () => {
    const cases: [string, boolean][] = [
      ['[[[]]]', false],
      ['[[[[]]]]', true],
      ['{"a":{"b":{"c":{}}}}', true],
      ['["[[[[[["]', false],
      ['["\\\\",[[[]]]]', true],
      ['["\\"[[[[",[[]]]', false],
      ['{"a":"\\\\\\"[[[["}', false],
      ['"\\\\"[[[[', true],
    ];
    for (const [text, deeper] of cases) assert.equal(jsonNestsDeeperThan(Buffer.from(text), 3), deeper, text);
  });

  test('agrees with the parsed depth on random JSON', () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 2000; i++) {
      const text = JSON.stringify(randomJson(rand, 8));
      const depth = depthOf(JSON.parse(text));
      for (const limit of depth > 0 ? [depth - 1, depth] : [0]) {
        assert.equal(jsonNestsDeeperThan(Buffer.from(text), limit), depth > limit, text);
      }
    }
  });

  test('the default limit refuses a few thousand levels without recursing', () => {
    const deep = `{"x":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    assert.equal(jsonNestsDeeperThan(Buffer.from(deep)), true);
    const ok = `${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}`;
    assert.equal(jsonNestsDeeperThan(Buffer.from(ok)), false);
  });
});
