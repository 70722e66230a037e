import assert from 'node:assert/strict';
import { it } from 'node:test';
import { beginCell, toNano } from '@ton/core';
import { ExitCode, Op, STORAGE_RESERVE } from '../../src/chain/contracts/opcodes.ts';
import { workerPayoutRequestBody } from '../../src/chain/contracts/proxy-contract.ts';
import {
  assertAllSucceeded,
  assertRefused,
  balanceOf,
  flatten,
  GAS,
  receivedBy,
  startNet,
} from '../contracts/helpers.ts';

/**
 * Attack: a worker owner (or anyone) forges the proxy contract's `payout_refused` to its worker contract,
 * so the counters roll back and the same signed payout pays twice; or asks the proxy contract for pay
 * directly, as if it were the worker contract. Only the proxy contract's own refusal rolls back, only the
 * worker contract's own request is paid, and whatever value the forgeries carried goes back to the sender.
 */

it('forged payout_refused and payout requests from strangers pay nothing and keep nothing', async () => {
  const net = await startNet();
  const { client, worker, workerOwner, proxy, submitter, blockchain } = net;
  assertAllSucceeded(await client.sendCharge(submitter.getSender(), GAS, net.auth(1n, toNano('5'))));
  const signed = net.payout(worker.address, 1n, toNano('2'), toNano('0.2'));
  const first = await worker.sendPayout(workerOwner.getSender(), GAS, signed);
  assertAllSucceeded(first);
  assert.equal(receivedBy(first, workerOwner.address, Op.workerPaid), toNano('2'));
  const proxyBefore = await proxy.getProxyData();

  const forgedRefusal = beginCell()
    .storeUint(Op.workerPayoutRefused, 32)
    .storeUint(0, 64)
    .storeCoins(toNano('2'))
    .storeCoins(toNano('0.2'))
    .storeAddress(workerOwner.address)
    .endCell();
  for (const bounce of [true, false]) {
    const r = await workerOwner.send({ to: worker.address, value: GAS, bounce, body: forgedRefusal });
    const tx = r.transactions.map(flatten).find((t) => t.to?.equals(worker.address))!;
    if (bounce) assert.equal(tx.exitCode, ExitCode.notAllowed);
    else assert.ok(receivedBy(r, workerOwner.address, Op.returned) > 0n, 'the value came back');
    const w = await worker.getWorkerData();
    assert.deepEqual([w.paidWorker, w.paidProxy], [toNano('2'), toNano('0.2')], 'no rollback');
    assert.ok((await balanceOf(blockchain, worker.address)) <= STORAGE_RESERVE);
  }
  // the same payout again pays nothing
  assertRefused(
    await worker.sendPayout(workerOwner.getSender(), GAS, signed),
    worker.address,
    ExitCode.totalNotAbovePaid,
  );

  // a payout request straight to the proxy contract, naming the worker owner
  const request = workerPayoutRequestBody(workerOwner.address, toNano('2'), 0n, workerOwner.address);
  for (const bounce of [true, false]) {
    const r = await workerOwner.send({ to: proxy.address, value: GAS, bounce, body: request });
    assert.equal(receivedBy(r, workerOwner.address, Op.workerPaid), 0n);
    if (bounce) assertRefused(r, proxy.address, ExitCode.notAllowed);
    else assert.ok(receivedBy(r, workerOwner.address, Op.returned) > 0n);
  }
  const p = await proxy.getProxyData();
  assert.deepEqual(
    [p.pool, p.stake, p.maturingNew],
    [proxyBefore.pool, proxyBefore.stake, proxyBefore.maturingNew],
  );
});
