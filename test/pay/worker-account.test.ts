import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Earnings } from '../../src/pay/earnings.ts';
import { verifyCell, workerPayoutCell } from '../../src/pay/signed-messages.ts';
import { WorkerAccount, type WorkerAccountRecord } from '../../src/pay/worker-account.ts';
import { CONTRACT, keyPair, NETWORK, OWNER, openLedger, tempDir } from './fixtures.ts';

const proxy = keyPair();

function account(): WorkerAccount {
  return new WorkerAccount(CONTRACT, OWNER, NETWORK);
}

describe('WorkerAccount', () => {
  test('starts with nothing accrued, nothing signed', () => {
    const a = account();
    assert.equal(a.accruedWorker, 0n);
    assert.equal(a.accruedProxy, 0n);
    assert.equal(a.unsigned, 0n);
    assert.equal(a.signed, null);
  });

  test('accrues the worker and proxy parts separately and cumulatively', () => {
    const a = account();
    a.accrue(700n, 300n);
    a.accrue(70n, 30n);
    assert.equal(a.accruedWorker, 770n);
    assert.equal(a.accruedProxy, 330n);
  });

  test('unsigned is everything accrued (both parts) not yet covered by a signed payout', () => {
    const a = account();
    a.accrue(700n, 300n);
    assert.equal(a.unsigned, 1000n);
    a.signPayout(proxy.privateKey);
    assert.equal(a.unsigned, 0n);
    a.accrue(5n, 2n);
    assert.equal(a.unsigned, 7n);
  });

  test('signPayout covers everything accrued for this contract and network, verifiable with the proxy key', () => {
    const a = account();
    a.accrue(700n, 300n);
    const s = a.signPayout(proxy.privateKey);
    assert.equal(s.payload.seqno, 1n);
    assert.equal(s.payload.workerTotal, 700n);
    assert.equal(s.payload.proxyTotal, 300n);
    assert.ok(s.payload.contract.equals(CONTRACT));
    assert.equal(s.payload.globalId, NETWORK);
    assert.equal(a.signed, s);
    assert.ok(verifyCell(workerPayoutCell(s.payload), s.signature, proxy.publicKey));
  });

  test('each signPayout increments the seqno and stays cumulative', () => {
    const a = account();
    a.accrue(700n, 300n);
    a.signPayout(proxy.privateKey);
    a.accrue(100n, 50n);
    const s2 = a.signPayout(proxy.privateKey);
    assert.equal(s2.payload.seqno, 2n);
    assert.equal(s2.payload.workerTotal, 800n);
    assert.equal(s2.payload.proxyTotal, 350n);
    assert.equal(a.signPayout(proxy.privateKey).payload.seqno, 3n);
  });

  test('toRecord/fromRecord round trip (through JSON) keeps the amounts and a verifiable signature', () => {
    const a = account();
    a.accrue(700n, 300n);
    const s = a.signPayout(proxy.privateKey);
    a.accrue(11n, 4n); // accrued beyond the signed payout
    const r: WorkerAccountRecord = JSON.parse(JSON.stringify(a.toRecord()));
    assert.equal(r.owner, OWNER.toString());
    const b = WorkerAccount.fromRecord(CONTRACT, OWNER, NETWORK, r);
    assert.equal(b.accruedWorker, 711n);
    assert.equal(b.accruedProxy, 304n);
    assert.equal(b.unsigned, 15n);
    assert.equal(b.signed?.payload.seqno, 1n);
    assert.equal(b.signed?.payload.workerTotal, 700n);
    assert.equal(b.signed?.payload.proxyTotal, 300n);
    assert.deepEqual(b.signed?.signature, s.signature);
    assert.ok(b.signed!.cell.hash().equals(s.cell.hash()));
    assert.ok(verifyCell(b.signed!.cell, b.signed!.signature, proxy.publicKey));
    assert.equal(b.signPayout(proxy.privateKey).payload.seqno, 2n, 'the seqno continues after a restart');
  });

  test('a record with nothing signed round trips to no signed payout', () => {
    const a = account();
    a.accrue(1n, 2n);
    const r = a.toRecord();
    assert.equal(r.signed, null);
    const b = WorkerAccount.fromRecord(CONTRACT, OWNER, NETWORK, r);
    assert.equal(b.signed, null);
    assert.equal(b.unsigned, 3n);
  });

  test('the worker’s Earnings accepts the payouts it signs, in order', async (t) => {
    const ledger = openLedger(t, tempDir(t));
    const earnings = new Earnings(ledger, proxy.publicKey, CONTRACT, NETWORK);
    const a = account();
    for (const [w, p] of [
      [700n, 300n],
      [10n, 0n],
      [0n, 5n],
    ] as const) {
      a.accrue(w, p);
      const s = a.signPayout(proxy.privateKey);
      assert.equal(await earnings.accept({ ...s.payload, signature: s.signature }), true);
    }
    assert.equal(earnings.workerTotal, 710n);
    assert.equal(earnings.latest?.payload.proxyTotal, 305n);
  });
});
