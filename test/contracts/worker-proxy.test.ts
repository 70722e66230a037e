import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, beforeEach, describe, it } from 'node:test';
import { type Cell, toNano } from '@ton/core';
import {
  Blockchain,
  type BlockchainSnapshot,
  type SandboxContract,
  type TreasuryContract,
} from '@ton/sandbox';
import { ClientContract } from '../../src/chain/contracts/client-contract.ts';
import { ContractState, ExitCode, Op, STORAGE_RESERVE } from '../../src/chain/contracts/opcodes.ts';
import {
  ProxyContract,
  proxyCommissionAt,
  proxyTracked,
  workerPayoutRequestBody,
} from '../../src/chain/contracts/proxy-contract.ts';
import { WorkerContract } from '../../src/chain/contracts/worker-contract.ts';
import {
  GLOBAL_ID,
  signCell,
  signClientAuth,
  signWorkerPayout,
  type WorkerPayout,
} from '../../src/pay/signed-messages.ts';
import {
  assertAllSucceeded,
  assertRefused,
  balanceOf,
  contractCodes,
  GAS,
  type Keys,
  newKeys,
  plain,
  receivedBy,
  T0,
  TEST_PARAMS,
  txOf,
} from './helpers.ts';

const PROXY_STAKE = toNano('10');
const POOL = toNano('5');
const CLOSE_DELAY = TEST_PARAMS.proxyCloseDelay;

describe('worker and proxy contracts', () => {
  let blockchain: Blockchain;
  let codes: Awaited<ReturnType<typeof contractCodes>>;
  let proxyOwner: SandboxContract<TreasuryContract>;
  let workerOwner: SandboxContract<TreasuryContract>;
  let workerNode: SandboxContract<TreasuryContract>;
  let stranger: SandboxContract<TreasuryContract>;
  let proxy: SandboxContract<ProxyContract>;
  let worker: SandboxContract<WorkerContract>;
  let proxyKeys: Keys;
  let ready: BlockchainSnapshot;

  const payout = (seqno: bigint, workerTotal: bigint, proxyTotal: bigint, over: Partial<WorkerPayout> = {}) =>
    signWorkerPayout(
      { globalId: GLOBAL_ID.mainnet, contract: worker.address, seqno, workerTotal, proxyTotal, ...over },
      proxyKeys.privateKey,
    );
  const snapshot = async () => ({
    worker: plain(await worker.getWorkerData()),
    proxy: plain(await proxy.getProxyData()),
  });
  const assertProxyHoldsExactly = async () => {
    const p = await proxy.getProxyData();
    assert.equal(await balanceOf(blockchain, proxy.address), proxyTracked(p) + STORAGE_RESERVE);
  };

  before(async () => {
    codes = await contractCodes();
    blockchain = await Blockchain.create();
    blockchain.now = T0;
    proxyOwner = await blockchain.treasury('proxy-owner');
    workerOwner = await blockchain.treasury('worker-owner');
    workerNode = await blockchain.treasury('worker-node');
    stranger = await blockchain.treasury('stranger');
    const clientOwner = await blockchain.treasury('client-owner');
    proxyKeys = newKeys();
    proxy = blockchain.openContract(
      ProxyContract.fromInit(
        {
          owner: proxyOwner.address,
          root: stranger.address,
          proxyKey: proxyKeys.uint,
          workerCode: codes.worker,
        },
        codes.proxy,
      ),
    );
    assertAllSucceeded(await proxy.sendAddStake(proxyOwner.getSender(), PROXY_STAKE + GAS, PROXY_STAKE));
    assertAllSucceeded(await proxy.sendRaiseCloseDelay(proxyOwner.getSender(), GAS, CLOSE_DELAY));
    worker = blockchain.openContract(
      WorkerContract.fromInit(
        { owner: workerOwner.address, proxy: proxy.address, proxyKey: proxyKeys.uint },
        codes.worker,
      ),
    );

    // Fill the pool the real way: a client contract charged by the proxy.
    const clientKeys = newKeys();
    const client = blockchain.openContract(
      ClientContract.fromInit(
        {
          owner: clientOwner.address,
          proxy: proxy.address,
          clientKey: clientKeys.uint,
        },
        codes.client,
      ),
    );
    assertAllSucceeded(await client.sendTopUp(clientOwner.getSender(), POOL + GAS, POOL));
    const auth = signClientAuth(
      { globalId: GLOBAL_ID.mainnet, contract: client.address, seqno: 1n, total: POOL },
      clientKeys.privateKey,
    );
    assertAllSucceeded(await client.sendCharge(stranger.getSender(), GAS, auth));
    assert.equal((await proxy.getProxyData()).pool, POOL);
    ready = blockchain.snapshot();
  });

  beforeEach(async () => {
    await blockchain.loadFrom(ready);
  });

  it('payout pays the worker owner exactly and credits the commission exactly', async () => {
    // The first payout deploys the worker contract.
    const r = await worker.sendPayout(workerNode.getSender(), GAS, payout(1n, toNano('0.8'), toNano('0.2')));
    assertAllSucceeded(r);
    assert.equal(receivedBy(r, workerOwner.address, Op.workerPaid), toNano('0.8'));
    assert.ok(receivedBy(r, workerNode.address, Op.excesses) > 0n);
    const w = await worker.getWorkerData();
    assert.deepEqual([w.seqno, w.paidWorker, w.paidProxy], [1n, toNano('0.8'), toNano('0.2')]);
    const p = await proxy.getProxyData();
    // the commission is credited maturing (not withdrawable before a close delay has passed)
    assert.deepEqual(
      [p.pool, p.stake, p.commission, p.maturingNew, p.maturingOld],
      [POOL - toNano('1'), PROXY_STAKE, 0n, toNano('0.2'), 0n],
    );
    assert.equal(await balanceOf(blockchain, worker.address), STORAGE_RESERVE);
    await assertProxyHoldsExactly();

    // Cumulative: the next payout pays only the difference.
    const r2 = await worker.sendPayout(workerNode.getSender(), GAS, payout(2n, toNano('1.2'), toNano('0.3')));
    assertAllSucceeded(r2);
    assert.equal(receivedBy(r2, workerOwner.address, Op.workerPaid), toNano('0.4'));
    assert.equal((await proxy.getProxyData()).maturingNew, toNano('0.3'));
  });

  it('payout refusals leave both contracts unchanged', async () => {
    assertAllSucceeded(
      await worker.sendPayout(workerNode.getSender(), GAS, payout(3n, toNano('1'), toNano('0.1'))),
    );
    const before = await snapshot();
    const s = workerNode.getSender();
    const refused = async (signed: { cell: Cell; signature: Buffer }, code: number) =>
      assertRefused(await worker.sendPayout(s, GAS, signed), worker.address, code);

    const good = payout(4n, toNano('2'), toNano('0.2'));
    await refused({ ...good, signature: randomBytes(64) }, ExitCode.badSignature);
    await refused({ ...good, signature: signCell(good.cell, newKeys().privateKey) }, ExitCode.badSignature);
    await refused(
      payout(4n, toNano('2'), toNano('0.2'), { contract: proxy.address }),
      ExitCode.wrongContract,
    );
    await refused(
      payout(4n, toNano('2'), toNano('0.2'), { globalId: GLOBAL_ID.testnet }),
      ExitCode.wrongTagOrNetwork,
    );
    await refused(payout(3n, toNano('1'), toNano('0.1')), ExitCode.totalNotAbovePaid); // a replay's totals
    await refused(payout(4n, toNano('1'), toNano('0.1')), ExitCode.totalNotAbovePaid);
    await refused(payout(4n, toNano('0.9'), toNano('0.05')), ExitCode.totalNotAbovePaid); // both below paid
    assertRefused(await worker.sendPayout(s, toNano('0.049'), good), worker.address, ExitCode.notEnoughValue);
    assert.deepEqual(await snapshot(), before);
    assertAllSucceeded(await worker.sendPayout(s, GAS, good));
  });

  it('a replayed payout (same message) is refused', async () => {
    const signed = payout(1n, toNano('1'), 0n);
    assertAllSucceeded(await worker.sendPayout(workerNode.getSender(), GAS, signed));
    const before = await snapshot();
    const r = await worker.sendPayout(workerNode.getSender(), GAS, signed);
    assertRefused(r, worker.address, ExitCode.totalNotAbovePaid);
    assert.equal(receivedBy(r, workerOwner.address, Op.workerPaid), 0n);
    assert.deepEqual(await snapshot(), before);
  });

  it('payout beyond pool + stake is refused by the proxy and rolled back by the worker', async () => {
    assertAllSucceeded(await worker.sendPayout(workerNode.getSender(), GAS, payout(1n, toNano('1'), 0n)));
    const proxyBefore = plain(await proxy.getProxyData());
    // Δ = 14 + 1 > pool 4 + stake 10
    const r = await worker.sendPayout(workerNode.getSender(), GAS, payout(2n, toNano('15'), toNano('1')));
    txOf(r, { to: worker.address, op: Op.workerPayoutRefused });
    assertAllSucceeded(r);
    assert.equal(receivedBy(r, workerOwner.address, Op.workerPaid), 0n);
    assert.ok(receivedBy(r, workerNode.address, Op.excesses) > 0n);
    const w = await worker.getWorkerData();
    assert.deepEqual([w.seqno, w.paidWorker, w.paidProxy], [2n, toNano('1'), 0n]); // paid counters back
    assert.deepEqual(plain(await proxy.getProxyData()), proxyBefore);
    assert.equal(await balanceOf(blockchain, worker.address), STORAGE_RESERVE);
    await assertProxyHoldsExactly();

    // Exactly pool + stake can be paid: the pool goes first, then the stake.
    const r2 = await worker.sendPayout(workerNode.getSender(), GAS, payout(3n, toNano('14'), toNano('1')));
    assertAllSucceeded(r2);
    assert.equal(receivedBy(r2, workerOwner.address, Op.workerPaid), toNano('13'));
    const p = await proxy.getProxyData();
    assert.deepEqual([p.pool, p.stake, p.maturingNew], [0n, 0n, toNano('1')]);
    await assertProxyHoldsExactly();
  });

  it('each total counts on its own: a lower seqno, or a lower proxy total, still pays the worker', async () => {
    assertAllSucceeded(
      await worker.sendPayout(workerNode.getSender(), GAS, payout(9n, toNano('1'), toNano('0.5'))),
    );
    const r = await worker.sendPayout(workerNode.getSender(), GAS, payout(2n, toNano('1.5'), toNano('0.1')));
    assertAllSucceeded(r);
    assert.equal(receivedBy(r, workerOwner.address, Op.workerPaid), toNano('0.5'));
    const w = await worker.getWorkerData();
    assert.deepEqual([w.seqno, w.paidWorker, w.paidProxy], [9n, toNano('1.5'), toNano('0.5')]);
    assert.equal((await proxy.getProxyData()).maturingNew, toNano('0.5'));
  });

  it('a payout request bounced by a missing proxy contract is rolled back', async () => {
    const ghostProxy = ProxyContract.fromInit(
      {
        owner: stranger.address,
        root: stranger.address,
        proxyKey: 1n,
        workerCode: codes.worker,
      },
      codes.proxy,
    ).address;
    const orphan = blockchain.openContract(
      WorkerContract.fromInit(
        { owner: workerOwner.address, proxy: ghostProxy, proxyKey: proxyKeys.uint },
        codes.worker,
      ),
    );
    const signed = signWorkerPayout(
      { globalId: GLOBAL_ID.mainnet, contract: orphan.address, seqno: 1n, workerTotal: 5n, proxyTotal: 1n },
      proxyKeys.privateKey,
    );
    const r = await orphan.sendPayout(workerNode.getSender(), GAS, signed);
    assert.equal(txOf(r, { to: orphan.address, bounced: true }).aborted, false);
    assert.ok(receivedBy(r, workerNode.address, Op.excesses) > 0n);
    const w = await orphan.getWorkerData();
    assert.deepEqual([w.seqno, w.paidWorker, w.paidProxy], [1n, 0n, 0n]);
  });

  it('a forged worker_payout_request from a non-worker address is refused', async () => {
    const before = plain(await proxy.getProxyData());
    for (const owner of [stranger.address, workerOwner.address]) {
      const body = workerPayoutRequestBody(owner, toNano('1'), 0n, stranger.address);
      const r = await proxy.sendBody(stranger.getSender(), GAS, body);
      assertRefused(r, proxy.address, ExitCode.notAllowed);
    }
    assert.deepEqual(plain(await proxy.getProxyData()), before);
  });

  it('charge_proceeds must carry its amount', async () => {
    const s = stranger.getSender();
    assertRefused(
      await proxy.sendChargeProceeds(s, toNano('1.0099'), toNano('1'), stranger.address),
      proxy.address,
      ExitCode.notEnoughValue,
    );
    assertAllSucceeded(await proxy.sendChargeProceeds(s, toNano('1.01'), toNano('1'), stranger.address));
    assert.equal((await proxy.getProxyData()).pool, POOL + toNano('1'));
    await assertProxyHoldsExactly();
  });

  it('add_stake: anyone, with the amount attached, while open', async () => {
    assertRefused(
      await proxy.sendAddStake(stranger.getSender(), toNano('1.049'), toNano('1')),
      proxy.address,
      ExitCode.notEnoughValue,
    );
    assertAllSucceeded(await proxy.sendAddStake(stranger.getSender(), toNano('1.05'), toNano('1')));
    assert.equal((await proxy.getProxyData()).stake, PROXY_STAKE + toNano('1'));
    await assertProxyHoldsExactly();
  });

  it('withdraw_commission pays the owner exactly what matured; owner only', async () => {
    assertAllSucceeded(
      await worker.sendPayout(workerNode.getSender(), GAS, payout(1n, toNano('1'), toNano('0.25'))),
    );
    assertRefused(
      await proxy.sendWithdrawCommission(stranger.getSender(), GAS),
      proxy.address,
      ExitCode.notAllowed,
    );
    // Credited at T0, in the maturing period that starts at `epoch` (≤ T0): it matures two periods on.
    const { epoch } = await proxy.getProxyData();
    assert.ok(epoch <= T0 && T0 < epoch + CLOSE_DELAY);
    const early = await proxy.sendWithdrawCommission(proxyOwner.getSender(), GAS);
    assertAllSucceeded(early);
    assert.equal(receivedBy(early, proxyOwner.address, Op.proxyPaid), 0n);
    blockchain.now = epoch + 2 * CLOSE_DELAY - 1;
    assert.equal(proxyCommissionAt(await proxy.getProxyData(), blockchain.now).withdrawable, 0n);
    assertAllSucceeded(await proxy.sendWithdrawCommission(proxyOwner.getSender(), GAS));
    assert.equal((await proxy.getProxyData()).maturingOld, toNano('0.25')); // a period on: maturing still
    blockchain.now = epoch + 2 * CLOSE_DELAY;
    assert.ok(blockchain.now - T0 >= CLOSE_DELAY && blockchain.now - T0 <= 2 * CLOSE_DELAY);
    assert.equal(proxyCommissionAt(await proxy.getProxyData(), blockchain.now).withdrawable, toNano('0.25'));
    const r = await proxy.sendWithdrawCommission(proxyOwner.getSender(), GAS);
    assertAllSucceeded(r);
    assert.equal(receivedBy(r, proxyOwner.address, Op.proxyPaid), toNano('0.25'));
    const p = await proxy.getProxyData();
    assert.deepEqual([p.commission, p.maturingNew, p.maturingOld], [0n, 0n, 0n]);
    await assertProxyHoldsExactly();
  });

  it('raise_close_delay: owner only, open only, never lower', async () => {
    assertRefused(
      await proxy.sendRaiseCloseDelay(stranger.getSender(), GAS, CLOSE_DELAY + 1),
      proxy.address,
      ExitCode.notAllowed,
    );
    assertRefused(
      await proxy.sendRaiseCloseDelay(proxyOwner.getSender(), GAS, CLOSE_DELAY - 1),
      proxy.address,
      ExitCode.invalidParams,
    );
    assertAllSucceeded(await proxy.sendRaiseCloseDelay(proxyOwner.getSender(), GAS, CLOSE_DELAY * 2));
    assert.equal((await proxy.getProxyData()).closeDelay, CLOSE_DELAY * 2);
    await assertProxyHoldsExactly();
    assertAllSucceeded(await proxy.sendRequestClose(proxyOwner.getSender(), GAS));
    assert.equal((await proxy.getProxyData()).unlockAt, T0 + 2 * CLOSE_DELAY);
    assertRefused(
      await proxy.sendRaiseCloseDelay(proxyOwner.getSender(), GAS, CLOSE_DELAY * 3),
      proxy.address,
      ExitCode.wrongState,
    );
  });

  it('request_close, payouts while closing, close after the delay pays everything', async () => {
    assertRefused(await proxy.sendClose(proxyOwner.getSender(), GAS), proxy.address, ExitCode.wrongState);
    assertRefused(
      await proxy.sendRequestClose(stranger.getSender(), GAS),
      proxy.address,
      ExitCode.notAllowed,
    );
    assertAllSucceeded(await proxy.sendRequestClose(proxyOwner.getSender(), GAS));
    const p = await proxy.getProxyData();
    assert.deepEqual([p.state, p.unlockAt], [ContractState.closing, T0 + CLOSE_DELAY]);
    assertRefused(
      await proxy.sendRequestClose(proxyOwner.getSender(), GAS),
      proxy.address,
      ExitCode.wrongState,
    );
    assertRefused(
      await proxy.sendAddStake(proxyOwner.getSender(), toNano('1.05'), toNano('1')),
      proxy.address,
      ExitCode.wrongState,
    );
    // Workers can still collect during the delay.
    assertAllSucceeded(
      await worker.sendPayout(workerNode.getSender(), GAS, payout(1n, toNano('2'), toNano('0.5'))),
    );

    blockchain.now = T0 + CLOSE_DELAY - 1;
    assertRefused(await proxy.sendClose(proxyOwner.getSender(), GAS), proxy.address, ExitCode.tooEarly);
    blockchain.now = T0 + CLOSE_DELAY;
    assertRefused(await proxy.sendClose(stranger.getSender(), GAS), proxy.address, ExitCode.notAllowed);
    const r = await proxy.sendClose(proxyOwner.getSender(), GAS);
    assertAllSucceeded(r);
    // stake 10 + pool (5 − 2.5); the commission 0.5, credited during the delay, is still maturing: it stays
    assert.equal(receivedBy(r, proxyOwner.address, Op.proxyPaid), toNano('12.5'));
    let closed = await proxy.getProxyData();
    assert.deepEqual(
      [closed.state, closed.stake, closed.pool, closed.commission, closed.maturingNew + closed.maturingOld],
      [ContractState.closed, 0n, 0n, 0n, toNano('0.5')],
    );
    await assertProxyHoldsExactly();
    // … backing payouts still (a worker is paid from it) …
    const late = await worker.sendPayout(
      workerNode.getSender(),
      GAS,
      payout(2n, toNano('2.1'), toNano('0.5')),
    );
    assertAllSucceeded(late);
    assert.equal(receivedBy(late, workerOwner.address, Op.workerPaid), toNano('0.1'));
    // … and once matured the owner withdraws it.
    blockchain.now = closed.epoch + 2 * CLOSE_DELAY;
    const w = await proxy.sendWithdrawCommission(proxyOwner.getSender(), GAS);
    assertAllSucceeded(w);
    assert.equal(receivedBy(w, proxyOwner.address, Op.proxyPaid), toNano('0.4'));
    closed = await proxy.getProxyData();
    assert.deepEqual([closed.commission, closed.maturingNew, closed.maturingOld], [0n, 0n, 0n]);
    assert.equal(await balanceOf(blockchain, proxy.address), STORAGE_RESERVE);
    assertRefused(
      await proxy.sendChargeProceeds(stranger.getSender(), toNano('1.05'), toNano('1'), stranger.address),
      proxy.address,
      ExitCode.wrongState,
    );
  });
});
