import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toNano } from '@ton/core';
import { ContractState, Op, STORAGE_RESERVE } from '../../src/chain/contracts/opcodes.ts';
import { proxyCommissionAt, proxyTracked } from '../../src/chain/contracts/proxy-contract.ts';
import {
  assertAllSucceeded,
  balanceOf,
  GAS,
  type Net,
  receivedBy,
  startNet,
  txOf,
} from '../contracts/helpers.ts';

/**
 * Attack (finding 9): while the proxy contract is open, the proxy key signs a WorkerPayout whose proxy
 * total moves the whole pool into the commission, and the owner withdraws it at once; the honest workers'
 * signed payouts then find nothing to be paid from (the stake is small). Commission now matures one to two
 * close delays (D) after it was credited, and maturing commission backs worker payouts (pool, then
 * maturing commission, then stake): a worker that redeems within D of the diversion is paid in full, and
 * the proxy owner gets nothing before that.
 */

const D = 86_400;
const POOL = toNano('5');
const STAKE = toNano('1');

async function setUp(): Promise<Net> {
  const net = await startNet({ proxyStake: STAKE, proxyCloseDelay: D });
  // The pool: 5 TON a client owed, charged the real way.
  assertAllSucceeded(await net.client.sendCharge(net.submitter.getSender(), GAS, net.auth(1n, POOL)));
  assert.equal((await net.proxy.getProxyData()).pool, POOL);
  return net;
}

/** The proxy key signs, for a worker contract the proxy owner controls, a payout of the pool as commission;
 * submitted at the last second of a maturing period (the worst case for the honest worker). */
async function divert(net: Net): Promise<number> {
  const { epoch } = await net.proxy.getProxyData();
  net.blockchain.now = epoch + D - 1;
  const sybil = net.workerOf(net.proxyOwner.address);
  const r = await sybil.sendPayout(net.proxyOwner.getSender(), GAS, net.payout(sybil.address, 1n, 0n, POOL));
  assertAllSucceeded(r);
  const p = await net.proxy.getProxyData();
  assert.deepEqual([p.pool, p.commission, p.maturingNew, p.stake], [0n, 0n, POOL, STAKE]);
  return net.blockchain.now;
}

describe('the proxy key diverting the pool into its commission', () => {
  it('the owner cannot withdraw it for D; a worker redeeming within D is paid in full', async () => {
    const net = await setUp();
    const { proxy, proxyOwner, worker, workerOwner, submitter } = net;
    // The honest worker earned 4 TON (0.5 commission on top) and holds its signed payout.
    const held = net.payout(worker.address, 1n, toNano('4'), toNano('0.5'));
    const t = await divert(net);

    // The owner tries to take it at once: nothing has matured.
    const w0 = await proxy.sendWithdrawCommission(proxyOwner.getSender(), GAS);
    assertAllSucceeded(w0);
    assert.equal(receivedBy(w0, proxyOwner.address, Op.proxyPaid), 0n);

    // One second before D has passed, still nothing is withdrawable …
    net.blockchain.now = t + D - 1;
    assert.equal(proxyCommissionAt(await proxy.getProxyData(), net.blockchain.now).withdrawable, 0n);
    const w1 = await proxy.sendWithdrawCommission(proxyOwner.getSender(), GAS);
    assertAllSucceeded(w1);
    assert.equal(receivedBy(w1, proxyOwner.address, Op.proxyPaid), 0n);

    // … and the honest worker redeems: paid exactly 4 TON, out of the maturing commission (the stake is 1).
    const r = await worker.sendPayout(submitter.getSender(), GAS, held);
    assertAllSucceeded(r);
    assert.equal(receivedBy(r, workerOwner.address, Op.workerPaid), toNano('4'));
    let p = await proxy.getProxyData();
    assert.equal(p.stake, STAKE, 'the stake was not needed');
    assert.equal(p.maturingNew + p.maturingOld, POOL - toNano('4.5') + toNano('0.5'));

    // What is left matures for the proxy owner: 5 − 4.5 + 0.5 = 1 TON, after its time.
    net.blockchain.now = p.epoch + 2 * D;
    const w2 = await proxy.sendWithdrawCommission(proxyOwner.getSender(), GAS);
    assertAllSucceeded(w2);
    assert.equal(receivedBy(w2, proxyOwner.address, Op.proxyPaid), toNano('1'));
    p = await proxy.getProxyData();
    assert.deepEqual([p.pool, p.commission, p.maturingNew, p.maturingOld, p.stake], [0n, 0n, 0n, 0n, STAKE]);
    assert.equal(await balanceOf(net.blockchain, proxy.address), proxyTracked(p) + STORAGE_RESERVE);
  });

  it('closing does not shorten it: the diverted commission stays in the closed contract until it matured, paying workers', async () => {
    const net = await setUp();
    const { proxy, proxyOwner, worker, workerOwner, submitter } = net;
    const held = net.payout(worker.address, 1n, toNano('3'), toNano('0.3'));
    const t = await divert(net);
    assertAllSucceeded(await proxy.sendRequestClose(proxyOwner.getSender(), GAS));
    assert.equal((await proxy.getProxyData()).unlockAt, t + D);

    // The owner closes at the unlock: it gets the stake (1) and the pool (0), not the diverted 5 TON.
    net.blockchain.now = t + D;
    const c = await proxy.sendClose(proxyOwner.getSender(), GAS);
    assertAllSucceeded(c);
    assert.equal(receivedBy(c, proxyOwner.address, Op.proxyPaid), STAKE);
    let p = await proxy.getProxyData();
    assert.deepEqual([p.state, p.maturingNew + p.maturingOld], [ContractState.closed, POOL]);
    // The worker, redeeming after the close (still within D of the diversion), is paid in full.
    const r = await worker.sendPayout(submitter.getSender(), GAS, held);
    assertAllSucceeded(r);
    assert.equal(receivedBy(r, workerOwner.address, Op.workerPaid), toNano('3'));
    // The owner gets the rest only once it matured: 5 − 3.3 + 0.3 = 2 TON.
    const early = await proxy.sendWithdrawCommission(proxyOwner.getSender(), GAS);
    assertAllSucceeded(early);
    assert.equal(receivedBy(early, proxyOwner.address, Op.proxyPaid), 0n);
    p = await proxy.getProxyData();
    net.blockchain.now = p.epoch + 2 * D;
    const w = await proxy.sendWithdrawCommission(proxyOwner.getSender(), GAS);
    assertAllSucceeded(w);
    assert.equal(receivedBy(w, proxyOwner.address, Op.proxyPaid), toNano('2'));
    assert.equal(await balanceOf(net.blockchain, proxy.address), STORAGE_RESERVE);
  });

  it('the limit (docs): a payout to a worker contract the proxy key controls is paid like any; the honest payout stays redeemable', async () => {
    const net = await setUp();
    const { proxy, proxyOwner, worker, workerOwner, submitter, stranger } = net;
    const held = net.payout(worker.address, 1n, toNano('4'), 0n);
    // A sybil worker contract takes pool + stake as *worker* pay: the contract cannot tell it from an honest one.
    const sybil = net.workerOf(stranger.address);
    const s = await sybil.sendPayout(
      stranger.getSender(),
      GAS,
      net.payout(sybil.address, 1n, POOL + STAKE, 0n),
    );
    assertAllSucceeded(s);
    assert.equal(receivedBy(s, stranger.address, Op.workerPaid), POOL + STAKE);
    // The honest payout finds nothing: refused by the proxy, rolled back by the worker contract, still valid.
    const r = await worker.sendPayout(submitter.getSender(), GAS, held);
    txOf(r, { to: worker.address, op: Op.workerPayoutRefused });
    assert.equal(receivedBy(r, workerOwner.address, Op.workerPaid), 0n);
    assert.equal((await worker.getWorkerData()).paidWorker, 0n);
    // Money arriving later (more charges, a top-up of the stake) pays it in full, with the same message.
    assertAllSucceeded(await proxy.sendAddStake(proxyOwner.getSender(), toNano('4') + GAS, toNano('4')));
    const again = await worker.sendPayout(submitter.getSender(), GAS, held);
    assertAllSucceeded(again);
    assert.equal(receivedBy(again, workerOwner.address, Op.workerPaid), toNano('4'));
  });
});
