import assert from 'node:assert/strict';
import { it } from 'node:test';
import { type Address, fromNano, toNano } from '@ton/core';
import { Blockchain, type SandboxContract, type SendMessageResult } from '@ton/sandbox';
import { ClientContract } from '../../src/chain/contracts/client-contract.ts';
import { Op, STORAGE_RESERVE } from '../../src/chain/contracts/opcodes.ts';
import { ProxyContract, proxyTracked } from '../../src/chain/contracts/proxy-contract.ts';
import { WorkerContract } from '../../src/chain/contracts/worker-contract.ts';
import { GLOBAL_ID, signClientAuth, signWorkerPayout } from '../../src/pay/signed-messages.ts';
import {
  assertAllSucceeded,
  balanceOf,
  contractCodes,
  flatten,
  GAS,
  type Keys,
  newKeys,
  receivedBy,
  T0,
  txOf,
} from './helpers.ts';

const PROXY_STAKE = toNano('3');

it('value is conserved to the nanoton across a sequence of operations', async (t) => {
  const codes = await contractCodes();
  const blockchain = await Blockchain.create();
  blockchain.now = T0;
  const proxyOwner = await blockchain.treasury('proxy-owner');
  const proxyNode = await blockchain.treasury('proxy-node');
  const workerNode = await blockchain.treasury('worker-node');
  const proxyKeys = newKeys();
  const proxy = blockchain.openContract(
    ProxyContract.fromInit(
      {
        owner: proxyOwner.address,
        root: proxyOwner.address,
        proxyKey: proxyKeys.uint,
        workerCode: codes.worker,
      },
      codes.proxy,
    ),
  );
  assertAllSucceeded(await proxy.sendAddStake(proxyOwner.getSender(), PROXY_STAKE + GAS, PROXY_STAKE));
  assertAllSucceeded(await proxy.sendRaiseCloseDelay(proxyOwner.getSender(), GAS, 60));

  let topUps = 0n;
  let refunds = 0n;
  let workerPaid = 0n;
  let commissionPaid = 0n;
  const tally = (r: SendMessageResult, owners: Address[]) => {
    for (const o of owners) {
      refunds += receivedBy(r, o, Op.clientRefund);
      workerPaid += receivedBy(r, o, Op.workerPaid);
      commissionPaid += receivedBy(r, o, Op.proxyPaid);
    }
  };

  // Two clients, two workers.
  const clients: { contract: SandboxContract<ClientContract>; keys: Keys; seqno: bigint; total: bigint }[] =
    [];
  const owners: Address[] = [proxyOwner.address];
  for (const name of ['alice', 'bob']) {
    const owner = await blockchain.treasury(name);
    owners.push(owner.address);
    const keys = newKeys();
    const contract = blockchain.openContract(
      ClientContract.fromInit(
        {
          owner: owner.address,
          proxy: proxy.address,
          clientKey: keys.uint,
        },
        codes.client,
      ),
    );
    for (const amount of [toNano('4.123456789'), toNano('1.000000001')]) {
      const r = await contract.sendTopUp(owner.getSender(), amount + GAS, amount);
      assertAllSucceeded(r);
      topUps += amount;
    }
    // Deployed by the first top-up; the owner sets its terms (raise_terms moves no money).
    assertAllSucceeded(await contract.sendRaiseTerms(owner.getSender(), GAS, toNano('0.5'), 60));
    clients.push({ contract, keys, seqno: 0n, total: 0n });
  }
  const workers: { contract: SandboxContract<WorkerContract>; seqno: bigint; w: bigint; p: bigint }[] = [];
  for (const name of ['worker-1', 'worker-2']) {
    const owner = await blockchain.treasury(name);
    owners.push(owner.address);
    const cfg = { owner: owner.address, proxy: proxy.address, proxyKey: proxyKeys.uint };
    workers.push({
      contract: blockchain.openContract(WorkerContract.fromInit(cfg, codes.worker)),
      seqno: 0n,
      w: 0n,
      p: 0n,
    });
  }

  const charge = async (i: number, more: bigint) => {
    const c = clients[i]!;
    c.seqno += 1n;
    c.total += more;
    const signed = signClientAuth(
      { globalId: GLOBAL_ID.mainnet, contract: c.contract.address, seqno: c.seqno, total: c.total },
      c.keys.privateKey,
    );
    const r = await c.contract.sendCharge(proxyNode.getSender(), GAS, signed);
    assertAllSucceeded(r);
    return r;
  };
  const pay = async (i: number, w: bigint, p: bigint) => {
    const x = workers[i]!;
    x.seqno += 1n;
    const signed = signWorkerPayout(
      {
        globalId: GLOBAL_ID.mainnet,
        contract: x.contract.address,
        seqno: x.seqno,
        workerTotal: x.w + w,
        proxyTotal: x.p + p,
      },
      proxyKeys.privateKey,
    );
    const r = await x.contract.sendPayout(workerNode.getSender(), GAS, signed);
    assertAllSucceeded(r);
    if (r.transactions.some((tx) => flatten(tx).op === Op.workerPayoutRefused)) return r;
    x.w += w;
    x.p += p;
    tally(r, owners);
    return r;
  };

  await charge(0, toNano('1.5'));
  await charge(1, 333_333_333n);
  const steadyCharge = await charge(0, 1n);
  await pay(0, toNano('0.8'), toNano('0.2')); // deploys worker 1
  await pay(1, 123_456_789n, 30_864_197n);
  const steadyPayout = await pay(0, 1n, 2n);
  await charge(1, toNano('100')); // capped at bob's balance
  await pay(1, toNano('9'), toNano('1')); // more than pool + stake: refused and rolled back
  await pay(1, toNano('5.5'), toNano('0.5')); // takes from the pool, the maturing commission, then the stake

  const owner = (i: number) => blockchain.treasury(['alice', 'bob'][i]!);
  let r = await clients[0]!.contract.sendWithdraw((await owner(0)).getSender(), GAS, toNano('1'));
  assertAllSucceeded(r);
  tally(r, owners);
  blockchain.now = T0 + 120; // every commission credited at T0 has matured (after 60 to 120 s)
  r = await proxy.sendWithdrawCommission(proxyOwner.getSender(), GAS);
  assertAllSucceeded(r);
  tally(r, owners);
  assertAllSucceeded(await clients[0]!.contract.sendRequestClose((await owner(0)).getSender(), GAS));
  blockchain.now = T0 + 180;
  r = await clients[0]!.contract.sendClose((await owner(0)).getSender(), GAS);
  assertAllSucceeded(r);
  tally(r, owners);

  const balances = await Promise.all(clients.map(async (c) => (await c.contract.getClientData()).balance));
  const p = await proxy.getProxyData();
  const held = balances.reduce((a, b) => a + b, 0n);
  const stakeUsed = PROXY_STAKE - p.stake; // the last payout went beyond the pool and maturing commission
  const maturing = p.maturingNew + p.maturingOld;
  assert.equal(
    topUps + stakeUsed,
    held + refunds + workerPaid + commissionPaid + p.commission + maturing + p.pool,
  );
  assert.ok(workerPaid > 0n && commissionPaid > 0n && refunds > 0n && p.stake < PROXY_STAKE);

  // And every contract holds exactly its tracked funds plus the storage reserve.
  for (const [i, c] of clients.entries()) {
    assert.equal(await balanceOf(blockchain, c.contract.address), balances[i]! + STORAGE_RESERVE);
  }
  for (const w of workers) assert.equal(await balanceOf(blockchain, w.contract.address), STORAGE_RESERVE);
  assert.equal(await balanceOf(blockchain, proxy.address), proxyTracked(p) + STORAGE_RESERVE);

  // Gas, for the benchmark.
  const report = (label: string, res: SendMessageResult, hops: [Address, number][], payer: Address) => {
    const gas = hops.map(([to, op]) => txOf(res, { to, op }).gasUsed);
    const cost = GAS - receivedBy(res, payer, Op.excesses);
    t.diagnostic(`${label}: gas ${gas.join(' + ')}; the submitter pays ${fromNano(cost)} TON in all`);
  };
  report(
    'charge',
    steadyCharge,
    [
      [clients[0]!.contract.address, Op.clientCharge],
      [proxy.address, Op.proxyChargeProceeds],
    ],
    proxyNode.address,
  );
  report(
    'payout',
    steadyPayout,
    [
      [workers[0]!.contract.address, Op.workerPayout],
      [proxy.address, Op.proxyWorkerPayoutRequest],
    ],
    workerNode.address,
  );
});
