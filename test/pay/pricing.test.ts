import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  adjustTokens,
  capCost,
  type PriceList,
  type RequestCost,
  requestCost,
  worstCaseCost,
} from '../../src/pay/pricing.ts';
import type { TokenUsage } from '../../src/protocol/inference.ts';
import { PRICES, seededRandom } from './fixtures.ts';

function usage(
  promptTokens: number,
  cachedTokens: number,
  completionTokens: number,
  reasoningTokens: number,
) {
  return { promptTokens, cachedTokens, completionTokens, reasoningTokens } satisfies TokenUsage;
}

function assertAllBigint(c: RequestCost): void {
  for (const [k, v] of Object.entries(c)) assert.equal(typeof v, 'bigint', `${k} is a bigint`);
}

function assertPartsSum(c: RequestCost): void {
  assert.equal(c.workerPart + c.proxyPart, c.totalCost, 'worker + proxy = total');
  assert.equal(c.promptCost + c.completionCost, c.totalCost, 'prompt + completion = total');
}

describe('adjustTokens', () => {
  test('is floor(n × coefficient/1000 × multiplier/10000), exactly', () => {
    assert.equal(adjustTokens(12_345, 1500, 3333), 6171n); // 6171.87825
    assert.equal(adjustTokens(99_991, 1500, 3333), 49_990n); // 49990.50...
    assert.equal(adjustTokens(7, 1500, 3333), 3n); // 3.49965
  });

  test('rounds down even just below a whole token', () => {
    assert.equal(adjustTokens(3, 1000, 3333), 0n); // 0.9999
    assert.equal(adjustTokens(1, 999, 10_000), 0n);
    assert.equal(adjustTokens(1, 1000, 10_000), 1n);
  });

  test('rounds once, not after each factor', () => {
    // 1 × 1.5 × 2 = 3; rounding after the coefficient would give floor(1.5) × 2 = 2.
    assert.equal(adjustTokens(1, 1500, 20_000), 3n);
  });

  test('stays exact beyond 2^53', () => {
    assert.equal(adjustTokens(Number.MAX_SAFE_INTEGER, 1001, 10_001), 9_017_108_074_641_131n);
  });

  test('zero tokens, zero coefficient or zero multiplier give zero', () => {
    assert.equal(adjustTokens(0, 1500, 3333), 0n);
    assert.equal(adjustTokens(100, 0, 3333), 0n);
    assert.equal(adjustTokens(100, 1500, 0), 0n);
  });
});

describe('requestCost', () => {
  test('prices every token class with its own multiplier and splits by the worker fee', () => {
    const c = requestCost(usage(1000, 400, 500, 200), 1500, PRICES);
    // prompt: 600 × 1.5 × 1 = 900, cached: 400 × 1.5 × 0.25 = 150
    // completion: 300 × 1.5 × 3 = 1350, reasoning: 200 × 1.5 × 4 = 1200
    assert.deepEqual(c, {
      adjustedTokens: 3600n,
      promptCost: 1_050_000n,
      completionCost: 2_550_000n,
      totalCost: 3_600_000n,
      workerPart: 2_520_000n,
      proxyPart: 1_080_000n,
    });
  });

  test('cached prompt tokens are priced by cachedMult, not promptMult', () => {
    assert.equal(requestCost(usage(100, 100, 0, 0), 1000, PRICES).adjustedTokens, 25n);
    assert.equal(requestCost(usage(100, 0, 0, 0), 1000, PRICES).adjustedTokens, 100n);
  });

  test('reasoning tokens are priced by reasoningMult, not completionMult', () => {
    assert.equal(requestCost(usage(0, 0, 100, 100), 1000, PRICES).adjustedTokens, 400n);
    assert.equal(requestCost(usage(0, 0, 100, 0), 1000, PRICES).adjustedTokens, 300n);
  });

  test('cached and reasoning counts above their totals are clamped to them', () => {
    assert.deepEqual(
      requestCost(usage(10, 50, 20, 90), 1000, PRICES),
      requestCost(usage(10, 10, 20, 20), 1000, PRICES),
    );
  });

  test('each class is floored on its own', () => {
    // 3 prompt tokens at 0.3333 → 0 and 3 cached at 0.3333 → 0: not floor(6 × 0.3333) = 1.
    const p: PriceList = { ...PRICES, promptMult: 3333, cachedMult: 3333 };
    assert.equal(requestCost(usage(6, 3, 0, 0), 1000, p).adjustedTokens, 0n);
  });

  test('all amounts are bigint, worker + proxy and prompt + completion sum to the total (randomized)', () => {
    const rnd = seededRandom(0xc0c0);
    for (let i = 0; i < 500; i++) {
      const prices: PriceList = {
        pricePerToken: BigInt(rnd(10_000)),
        workerFeePerToken: 0n,
        promptMult: rnd(1_000_001),
        cachedMult: rnd(1_000_001),
        completionMult: rnd(1_000_001),
        reasoningMult: rnd(1_000_001),
      };
      prices.workerFeePerToken = BigInt(rnd(Number(prices.pricePerToken) + 1));
      const c = requestCost(usage(rnd(100_000), rnd(100_000), rnd(100_000), rnd(100_000)), rnd(5000), prices);
      assertAllBigint(c);
      assertPartsSum(c);
      assert.ok(c.proxyPart >= 0n);
    }
  });
});

describe('worstCaseCost', () => {
  test('counts every body byte plus template slack as a prompt token at the dearest multipliers', () => {
    const c = worstCaseCost(100, 50, 2000, PRICES);
    // prompt: (100 + 64) × 2 × max(1, 0.25) = 328; completion: 50 × 2 × max(3, 4) = 400
    assert.equal(c.adjustedTokens, 728n);
    assert.equal(c.promptCost, 328_000n);
    assert.equal(c.completionCost, 400_000n);
    assert.equal(c.totalCost, 728_000n);
    assert.equal(c.workerPart, 728n * 700n);
    assertAllBigint(c);
    assertPartsSum(c);
  });

  test('is never below requestCost for any usage within its bounds (randomized, fixed seed)', () => {
    const rnd = seededRandom(20_240_601);
    for (let i = 0; i < 2000; i++) {
      const prices: PriceList = {
        pricePerToken: BigInt(1 + rnd(5000)),
        workerFeePerToken: 1n,
        promptMult: rnd(1_000_001),
        cachedMult: rnd(1_000_001),
        completionMult: rnd(1_000_001),
        reasoningMult: rnd(1_000_001),
      };
      const bodyBytes = rnd(20_000);
      const maxCompletion = rnd(8192);
      const maxCoefficient = rnd(5000);
      const promptTokens = rnd(bodyBytes + 64 + 1);
      const completionTokens = rnd(maxCompletion + 1);
      const u = usage(promptTokens, rnd(promptTokens + 1), completionTokens, rnd(completionTokens + 1));
      const coefficient = rnd(maxCoefficient + 1);
      const worst = worstCaseCost(bodyBytes, maxCompletion, maxCoefficient, prices);
      const actual = requestCost(u, coefficient, prices);
      assert.ok(
        worst.totalCost >= actual.totalCost,
        `case ${i}: worst ${worst.totalCost} < actual ${actual.totalCost} (${JSON.stringify(u)} at ${coefficient})`,
      );
      assert.ok(worst.workerPart >= actual.workerPart);
    }
  });
});

describe('capCost', () => {
  const cost = requestCost(usage(1000, 400, 500, 200), 1500, PRICES); // total 3_600_000

  test('returns a cost at or below the cap unchanged', () => {
    assert.equal(capCost(cost, cost.totalCost), cost);
    assert.equal(capCost(cost, cost.totalCost + 1n), cost);
  });

  test('caps the total at the cap and keeps the split proportional, rounding down', () => {
    const c = capCost(cost, 1_000_001n);
    assert.equal(c.totalCost, 1_000_001n);
    assert.equal(c.adjustedTokens, cost.adjustedTokens);
    assert.equal(c.workerPart, (2_520_000n * 1_000_001n) / 3_600_000n); // 700000
    assert.equal(c.promptCost, (1_050_000n * 1_000_001n) / 3_600_000n); // 291666
    assertPartsSum(c);
  });

  test('a zero cap bills nothing', () => {
    const c = capCost(cost, 0n);
    assert.equal(c.totalCost, 0n);
    assert.equal(c.workerPart, 0n);
    assert.equal(c.proxyPart, 0n);
    assert.equal(c.promptCost, 0n);
    assert.equal(c.completionCost, 0n);
  });

  test('never exceeds the cap, never raises a part and keeps parts summing to the total (randomized)', () => {
    const rnd = seededRandom(7);
    for (let i = 0; i < 1000; i++) {
      const prices: PriceList = { ...PRICES, pricePerToken: BigInt(1 + rnd(10_000)) };
      prices.workerFeePerToken = BigInt(rnd(Number(prices.pricePerToken) + 1));
      const c = requestCost(usage(rnd(50_000), rnd(50_000), rnd(50_000), rnd(50_000)), 1 + rnd(3000), prices);
      const cap = BigInt(rnd(Number(c.totalCost) * 2 + 1));
      const capped = capCost(c, cap);
      assert.ok(capped.totalCost <= cap, `case ${i}: ${capped.totalCost} > cap ${cap}`);
      assert.equal(capped.totalCost, c.totalCost < cap ? c.totalCost : cap);
      assertPartsSum(capped);
      assertAllBigint(capped);
      for (const k of ['workerPart', 'proxyPart', 'promptCost', 'completionCost'] as const) {
        assert.ok(capped[k] >= 0n && capped[k] <= c[k], `case ${i}: ${k} ${capped[k]} outside 0..${c[k]}`);
      }
    }
  });
});
