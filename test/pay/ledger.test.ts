import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Ledger } from '../../src/pay/ledger.ts';
import { openLedger, tempDir } from './fixtures.ts';

describe('Ledger', () => {
  test('a missing key reads as undefined', (t) => {
    const ledger = openLedger(t, tempDir(t));
    assert.equal(ledger.get('nothing/here'), undefined);
  });

  test('one commit writes several records together', async (t) => {
    const ledger = openLedger(t, tempDir(t));
    await ledger.commit([
      ['client/a', { seqno: '1', total: '100' }],
      ['worker/b', { accruedWorker: '70' }],
      ['auth/c', 'text'],
    ]);
    assert.deepEqual(ledger.get('client/a'), { seqno: '1', total: '100' });
    assert.deepEqual(ledger.get('worker/b'), { accruedWorker: '70' });
    assert.equal(ledger.get('auth/c'), 'text');
  });

  test('the records of one commit become visible together, not one by one', async (t) => {
    const dir = tempDir(t);
    const ledger = openLedger(t, dir);
    const reader = openLedger(t, dir);
    const observed: [unknown, unknown][] = [];
    const pending = ledger.commit([
      ['k/1', 1],
      ['k/2', 2],
    ]);
    const poll = setInterval(() => observed.push([reader.get('k/1'), reader.get('k/2')]), 0);
    await pending;
    clearInterval(poll);
    observed.push([reader.get('k/1'), reader.get('k/2')]);
    for (const [a, b] of observed) assert.equal(a === undefined, b === undefined, `torn read ${a}/${b}`);
    // Once the commit resolved, the ledger reads both (a second environment's read snapshot may lag a turn).
    assert.deepEqual([ledger.get('k/1'), ledger.get('k/2')], [1, 2]);
  });

  test('data survives close and reopen', async (t) => {
    const dir = tempDir(t);
    const first = Ledger.open(dir);
    await first.commit([
      ['auth/x', { seqno: '3', total: '12345678901234567890', signature: 'ab'.repeat(64) }],
      ['payout/y', { seqno: '1' }],
    ]);
    await first.close();
    const second = openLedger(t, dir);
    assert.deepEqual(second.get('auth/x'), {
      seqno: '3',
      total: '12345678901234567890',
      signature: 'ab'.repeat(64),
    });
    assert.deepEqual(second.get('payout/y'), { seqno: '1' });
  });

  test('process durability survives close and reopen too', async (t) => {
    const dir = tempDir(t);
    const first = Ledger.open(dir, 'process');
    await first.commit([['k', 1]]);
    await first.close();
    assert.equal(openLedger(t, dir).get('k'), 1);
  });

  test('a later commit overwrites an earlier one, in issue order even when not awaited', async (t) => {
    const ledger = openLedger(t, tempDir(t));
    const writes: Promise<void>[] = [];
    for (let i = 1; i <= 20; i++) writes.push(ledger.commit([['auth/x', { seqno: String(i) }]]));
    await Promise.all(writes);
    assert.deepEqual(ledger.get('auth/x'), { seqno: '20' });
  });

  test('entries(prefix) returns only keys with that prefix, in key order', async (t) => {
    const ledger = openLedger(t, tempDir(t));
    await ledger.commit([
      ['worker/b', 'wb'],
      ['client/c', 'c'],
      ['worker/a', 'wa'],
      ['worker', 'bare'],
      ['workers/z', 'other'],
      ['worker/aa', 'waa'],
      ['auth/q', 'q'],
    ]);
    assert.deepEqual(
      [...ledger.entries<string>('worker/')],
      [
        ['worker/a', 'wa'],
        ['worker/aa', 'waa'],
        ['worker/b', 'wb'],
      ],
    );
    assert.deepEqual([...ledger.entries('client/')], [['client/c', 'c']]);
    assert.deepEqual([...ledger.entries('nope/')], []);
  });

  test('a commit that fails part-way writes none of its records', {}, async (t) => {
    const ledger = openLedger(t, tempDir(t));
    await assert.rejects(
      ledger.commit([
        ['k/1', 1],
        ['k/2', 2n], // JSON cannot encode a bigint
      ]),
    );
    assert.equal(ledger.get('k/1'), undefined);
  });
});
