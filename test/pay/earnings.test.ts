import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import type { CocoonError } from '../../src/errors.ts';
import { Earnings } from '../../src/pay/earnings.ts';
import { GLOBAL_ID, signWorkerPayout, verifyCell } from '../../src/pay/signed-messages.ts';
import { CONTRACT, type KeyPair, keyPair, NETWORK, OTHER_CONTRACT, openLedger, tempDir } from './fixtures.ts';

const proxy = keyPair();

function payout(
  seqno: bigint,
  workerTotal: bigint,
  proxyTotal: bigint,
  opts: { key?: KeyPair; contract?: typeof CONTRACT; globalId?: number } = {},
) {
  const s = signWorkerPayout(
    {
      globalId: opts.globalId ?? NETWORK,
      contract: opts.contract ?? CONTRACT,
      seqno,
      workerTotal,
      proxyTotal,
    },
    (opts.key ?? proxy).privateKey,
  );
  return { seqno, workerTotal, proxyTotal, signature: s.signature };
}

function setup(t: TestContext) {
  const dir = tempDir(t);
  const ledger = openLedger(t, dir);
  return { dir, ledger, earnings: new Earnings(ledger, proxy.publicKey, CONTRACT, NETWORK) };
}

/** What a worker restarted on the same ledger directory sees. */
async function reopened(
  t: TestContext,
  dir: string,
  closeFirst: { close(): Promise<void> },
): Promise<Earnings> {
  await closeFirst.close();
  return new Earnings(openLedger(t, dir), proxy.publicKey, CONTRACT, NETWORK);
}

function refusedWith(code: string) {
  return (e: CocoonError) => {
    assert.equal(e.status, 402);
    assert.equal(e.code, code);
    return true;
  };
}

describe('Earnings', () => {
  test('starts with nothing when the ledger holds no payout', (t) => {
    const { earnings } = setup(t);
    assert.equal(earnings.latest, null);
    assert.equal(earnings.workerTotal, 0n);
  });

  test('accepts a valid payout and makes it the newest', async (t) => {
    const { earnings } = setup(t);
    const p = payout(1n, 700n, 300n);
    assert.equal(await earnings.accept(p), true);
    assert.equal(earnings.workerTotal, 700n);
    assert.equal(earnings.latest?.payload.proxyTotal, 300n);
    assert.ok(verifyCell(earnings.latest!.cell, earnings.latest!.signature, proxy.publicKey));
  });

  test('an accepted payout is durable: a new Earnings on the same ledger directory sees it, still verifiable', async (t) => {
    const { dir, ledger, earnings } = setup(t);
    await earnings.accept(payout(1n, 700n, 300n));
    await earnings.accept(payout(2n, 1400n, 600n));
    const after = await reopened(t, dir, ledger);
    const l = after.latest!;
    assert.equal(l.payload.seqno, 2n);
    assert.equal(l.payload.workerTotal, 1400n);
    assert.equal(l.payload.proxyTotal, 600n);
    assert.ok(l.payload.contract.equals(CONTRACT));
    assert.equal(l.payload.globalId, NETWORK);
    assert.ok(verifyCell(l.cell, l.signature, proxy.publicKey));
  });

  test('refuses a payout signed by another key with bad_signature and records nothing', async (t) => {
    const { dir, ledger, earnings } = setup(t);
    await assert.rejects(
      earnings.accept(payout(1n, 700n, 300n, { key: keyPair() })),
      refusedWith('bad_signature'),
    );
    assert.equal(earnings.latest, null);
    assert.equal((await reopened(t, dir, ledger)).latest, null);
  });

  test('refuses a payout signed for another worker contract with bad_signature', async (t) => {
    const { earnings } = setup(t);
    await assert.rejects(
      earnings.accept(payout(1n, 700n, 300n, { contract: OTHER_CONTRACT })),
      refusedWith('bad_signature'),
    );
  });

  test('refuses a payout signed for another network with bad_signature', async (t) => {
    const { earnings } = setup(t);
    await assert.rejects(
      earnings.accept(payout(1n, 700n, 300n, { globalId: GLOBAL_ID.testnet })),
      refusedWith('bad_signature'),
    );
  });

  test('refuses a newer payout whose worker total went down with payout_decreased', async (t) => {
    const { earnings } = setup(t);
    await earnings.accept(payout(1n, 700n, 300n));
    await assert.rejects(earnings.accept(payout(2n, 699n, 400n)), refusedWith('payout_decreased'));
    assert.equal(earnings.latest?.payload.seqno, 1n);
  });

  test('refuses a newer payout whose proxy total went down with payout_decreased', async (t) => {
    const { earnings } = setup(t);
    await earnings.accept(payout(1n, 700n, 300n));
    await assert.rejects(earnings.accept(payout(2n, 800n, 299n)), refusedWith('payout_decreased'));
    assert.equal(earnings.workerTotal, 700n);
  });

  test('accepts a newer payout with unchanged totals', async (t) => {
    const { earnings } = setup(t);
    await earnings.accept(payout(1n, 700n, 300n));
    assert.equal(await earnings.accept(payout(2n, 700n, 300n)), true);
    assert.equal(earnings.latest?.payload.seqno, 2n);
  });

  test('ignores an older or re-sent seqno (returns false, keeps the newest)', async (t) => {
    const { dir, ledger, earnings } = setup(t);
    await earnings.accept(payout(5n, 700n, 300n));
    assert.equal(await earnings.accept(payout(4n, 900n, 400n)), false);
    assert.equal(await earnings.accept(payout(5n, 700n, 300n)), false);
    assert.equal(earnings.latest?.payload.seqno, 5n);
    assert.equal(earnings.workerTotal, 700n);
    assert.equal((await reopened(t, dir, ledger)).latest?.payload.seqno, 5n);
  });

  test('the payout record is kept per worker contract', async (t) => {
    const { ledger, earnings } = setup(t);
    await earnings.accept(payout(1n, 700n, 300n));
    const other = new Earnings(ledger, proxy.publicKey, OTHER_CONTRACT, NETWORK);
    assert.equal(other.latest, null);
  });

  test('when an older payout is accepted while a newer one is being written, the ledger keeps the newer', {}, async (t) => {
    const { dir, ledger, earnings } = setup(t);
    await Promise.all([earnings.accept(payout(2n, 1400n, 600n)), earnings.accept(payout(1n, 700n, 300n))]);
    assert.equal(earnings.latest?.payload.seqno, 2n, 'in memory: the newer');
    assert.equal((await reopened(t, dir, ledger)).latest?.payload.seqno, 2n, 'on disk: the newer');
  });
});
