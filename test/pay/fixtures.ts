import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Address } from '@ton/core';
import { Ledger } from '../../src/pay/ledger.ts';
import type { PaymentParams } from '../../src/pay/payments-chain.ts';
import { GLOBAL_ID } from '../../src/pay/signed-messages.ts';

/** Shared fixtures of the payment tests: fixed addresses, fresh keys, a price list, temporary ledgers. */

export const NETWORK = GLOBAL_ID.mainnet;
export const CONTRACT = new Address(0, Buffer.alloc(32, 1));
export const OTHER_CONTRACT = new Address(0, Buffer.alloc(32, 2));
export const OWNER = new Address(0, Buffer.alloc(32, 3));

export const TON = 1_000_000_000n;

/** Every multiplier different, so a token class priced with the wrong one shows. */
export const PRICES: PaymentParams = {
  paramsVersion: 1,
  clientCloseDelay: 3600,
  minClientStake: 1_000_000_000n,
  pricePerToken: 1000n,
  workerFeePerToken: 700n,
  promptMult: 10_000,
  cachedMult: 2_500,
  completionMult: 30_000,
  reasoningMult: 40_000,
};

export interface KeyPair {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

export function keyPair(): KeyPair {
  return generateKeyPairSync('ed25519');
}

/** A fresh directory in the OS temp dir, removed when the test ends. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-pay-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A small deterministic PRNG (mulberry32), so randomized checks are reproducible. */
export function seededRandom(seed: number): (maxExclusive: number) => number {
  let s = seed >>> 0;
  return (maxExclusive: number) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let r = s;
    r = Math.imul(r ^ (r >>> 15), r | 1);
    r ^= r + Math.imul(r ^ (r >>> 7), r | 61);
    const u = ((r ^ (r >>> 14)) >>> 0) / 4294967296;
    return Math.floor(u * maxExclusive);
  };
}

/** Opens a ledger in `dir`, closed when the test ends (closing twice is harmless). */
export function openLedger(t: TestContext, dir: string): Ledger {
  const ledger = Ledger.open(dir);
  t.after(() => ledger.close());
  return ledger;
}
