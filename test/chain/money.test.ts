import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatTon, InvalidAmountError, MAX_COINS, parseNano, parseTon } from '../../src/chain/money.ts';

describe('TON amounts', () => {
  test('formatTon prints exactly 9 decimals', () => {
    assert.equal(formatTon(1_500_000_000n), '1.500000000');
    assert.equal(formatTon(0n), '0.000000000');
    assert.equal(formatTon(1n), '0.000000001');
    assert.equal(formatTon(123_456_789_012_345_678n), '123456789.012345678');
    assert.equal(formatTon(-2_000_000_001n), '-2.000000001');
  });

  test('parseTon reads decimal TON into nanoton', () => {
    assert.equal(parseTon('1.5'), 1_500_000_000n);
    assert.equal(parseTon('0.000000001'), 1n);
    assert.equal(parseTon('2'), 2_000_000_000n);
    assert.equal(parseTon(' 1.500000000 '), 1_500_000_000n);
    assert.equal(parseTon('0'), 0n);
    // big values stay exact (no floating point on the way)
    assert.equal(parseTon('9007199254.740993001'), 9_007_199_254_740_993_001n);
  });

  test('format and parse round-trip', () => {
    for (const n of [0n, 1n, 999_999_999n, 1_000_000_000n, 42_000_000_017n, MAX_COINS]) {
      assert.equal(parseTon(formatTon(n)), n);
    }
  });

  test('parseTon refuses what is not a plain non-negative amount with at most 9 decimals', () => {
    const cases: [string, RegExp][] = [
      ['0.0000000001', /Too many decimals/],
      ['-1', /Negative/],
      ['-0.5', /Negative/],
      ['', /required/],
      ['abc', /Not a TON amount/],
      ['1e9', /Not a TON amount/],
      ['1,5', /Not a TON amount/],
      ['.5', /Not a TON amount/],
      ['1.', /Not a TON amount/],
      ['+1', /Not a TON amount/],
      ['0x10', /Not a TON amount/],
      ['1 000', /Not a TON amount/],
      ['NaN', /Not a TON amount/],
      ['Infinity', /Not a TON amount/],
      [`${MAX_COINS}`, /too large/],
    ];
    for (const [text, message] of cases) {
      assert.throws(
        () => parseTon(text),
        (err: unknown) =>
          err instanceof InvalidAmountError && message.test(err.message) && err.status === 400,
        `parseTon(${JSON.stringify(text)})`,
      );
    }
  });

  test('parseNano takes digits only', () => {
    assert.equal(parseNano('1500000000'), 1_500_000_000n);
    assert.throws(() => parseNano('1.5'), InvalidAmountError);
    assert.throws(() => parseNano('-1'), InvalidAmountError);
    assert.throws(() => parseNano(15 as unknown as string), InvalidAmountError);
    assert.throws(() => parseNano(`${MAX_COINS + 1n}`), /too large/);
  });
});
