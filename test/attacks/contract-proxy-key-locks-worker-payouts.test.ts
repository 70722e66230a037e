import assert from 'node:assert/strict';
import { it } from 'node:test';
import { toNano } from '@ton/core';
import { ExitCode, Op } from '../../src/chain/contracts/opcodes.ts';
import { assertAllSucceeded, assertRefused, GAS, receivedBy, startNet } from '../contracts/helpers.ts';

/**
 * Attack (found with finding 9): the proxy key signs, for an honest worker's own contract, a payout with
 * seqno 2^64 − 1, or one whose proxy total is far above what the worker's payouts carry, and submits it,
 * hoping the worker's own signed payout (lower seqno, lower proxy total) is then refused as stale or as a
 * total going back. Each total now counts on its own and the seqno gates nothing: the worker still
 * redeems its payout for exactly its worker total.
 */

it('no payout the proxy key signs makes a worker’s own signed payout unredeemable', async () => {
  const net = await startNet({ proxyStake: toNano('10') });
  const { worker, workerOwner, proxyOwner, submitter, client } = net;
  // Fill the pool with 5 TON the real way.
  assertAllSucceeded(await client.sendCharge(submitter.getSender(), GAS, net.auth(1n, toNano('5'))));

  // The worker holds payout seqno 3: 2 TON to it, 0.5 commission. It has not redeemed it yet.
  const held = net.payout(worker.address, 3n, toNano('2'), toNano('0.5'));

  // The proxy key's attack, submitted by the proxy owner: a huge seqno and a big proxy total, no worker part.
  const attack = net.payout(worker.address, 2n ** 64n - 1n, 0n, toNano('1'));
  const a = await worker.sendPayout(proxyOwner.getSender(), GAS, attack);
  assertAllSucceeded(a);
  assert.equal(receivedBy(a, workerOwner.address, Op.workerPaid), 0n);

  // The worker redeems its payout all the same, for exactly its worker total.
  const r = await worker.sendPayout(submitter.getSender(), GAS, held);
  assertAllSucceeded(r);
  assert.equal(receivedBy(r, workerOwner.address, Op.workerPaid), toNano('2'));
  const w = await worker.getWorkerData();
  assert.deepEqual([w.paidWorker, w.paidProxy], [toNano('2'), toNano('1')]);

  // Replays pay nothing more.
  for (const again of [held, attack]) {
    assertRefused(
      await worker.sendPayout(submitter.getSender(), GAS, again),
      worker.address,
      ExitCode.totalNotAbovePaid,
    );
  }
  // And the next honest payout (seqno 4) pays exactly its difference.
  const next = await worker.sendPayout(
    submitter.getSender(),
    GAS,
    net.payout(worker.address, 4n, toNano('2.5'), toNano('0.6')),
  );
  assertAllSucceeded(next);
  assert.equal(receivedBy(next, workerOwner.address, Op.workerPaid), toNano('0.5'));
  // The commission the attack credited is maturing, like all commission (see contract-proxy-key-drains-commission).
  const p = await net.proxy.getProxyData();
  assert.equal(p.commission, 0n);
  assert.equal(p.maturingNew, toNano('1'));
});
