import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Address } from '@ton/core';
import {
  clientAuthCell,
  clientAuthHash,
  workerPayoutCell,
  workerPayoutHash,
} from '../../src/pay/signed-messages.ts';

test('the fast payload hashes equal the cell hashes the contracts check, for every coins length', () => {
  const contract = new Address(-1, Buffer.alloc(32, 0xab));
  for (const total of [0n, 1n, 255n, 256n, 10n ** 9n, 2n ** 64n, 2n ** 119n]) {
    const a = { globalId: -3, contract, seqno: total % 1000n, total };
    assert.deepEqual(clientAuthHash(a), clientAuthCell(a).hash());
    const p = { globalId: -239, contract, seqno: 7n, workerTotal: total, proxyTotal: total / 3n };
    assert.deepEqual(workerPayoutHash(p), workerPayoutCell(p).hash());
  }
});
