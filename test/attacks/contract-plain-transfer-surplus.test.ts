import assert from 'node:assert/strict';
import { it } from 'node:test';
import { type Address, beginCell, type Cell, toNano } from '@ton/core';
import { topUpBody } from '../../src/chain/contracts/client-contract.ts';
import { ExitCode, Op, STORAGE_RESERVE } from '../../src/chain/contracts/opcodes.ts';
import { proxyTracked, withdrawCommissionBody } from '../../src/chain/contracts/proxy-contract.ts';
import { RootContract, setParamsBody } from '../../src/chain/contracts/root-contract.ts';
import {
  assertAllSucceeded,
  balanceOf,
  flatten,
  GAS,
  receivedBy,
  startNet,
  TEST_PARAMS,
} from '../contracts/helpers.ts';

/**
 * Attack (finding 17): TON sent to a contract without a valid op — a plain transfer, a text comment, an
 * unknown op, an empty body, or a valid op the contract refuses, sent non-bounceable — used to stay in the
 * contract as surplus, and the next caller's `excesses` (everything above tracked + reserve) took it. Now a
 * bounceable one bounces, and a non-bounceable one is sent back with `returned#d53276dd query_id exit_code`;
 * no contract ever holds more than its tracked funds plus the storage reserve, so nobody's excess grows.
 */

const VALUE = toNano('3');

it('value sent to any of the four contracts without a valid op goes back to its sender, never to the next caller', async () => {
  const net = await startNet();
  const { blockchain, client, proxy, worker, stranger, submitter, proxyOwner, clientOwner } = net;
  const root = blockchain.openContract(
    RootContract.fromInit({ owner: proxyOwner.address, params: TEST_PARAMS }, net.codes.root),
  );
  assertAllSucceeded(
    await root.sendSetParams(proxyOwner.getSender(), GAS, { ...TEST_PARAMS, paramsVersion: 2 }),
  );
  // the pool, and a deployed worker contract
  assertAllSucceeded(await client.sendCharge(submitter.getSender(), GAS, net.auth(1n, toNano('2'))));
  assertAllSucceeded(
    await worker.sendPayout(submitter.getSender(), GAS, net.payout(worker.address, 1n, toNano('1'), 1n)),
  );

  const tracked: Record<string, () => Promise<bigint>> = {
    root: async () => 0n,
    client: async () => (await client.getClientData()).balance,
    proxy: async () => proxyTracked(await proxy.getProxyData()),
    worker: async () => 0n,
  };
  const at: Record<string, Address> = {
    root: root.address,
    client: client.address,
    proxy: proxy.address,
    worker: worker.address,
  };
  // a valid op each contract refuses from a stranger
  const refusedOp: Record<string, [Cell, number]> = {
    root: [setParamsBody({ ...TEST_PARAMS, paramsVersion: 3 }), ExitCode.notAllowed],
    client: [topUpBody(toNano('5')), ExitCode.notEnoughValue], // 5 TON named, 3 attached
    proxy: [withdrawCommissionBody(), ExitCode.notAllowed],
    worker: [
      beginCell()
        .storeUint(Op.workerPayoutRefused, 32)
        .storeUint(7, 64)
        .storeCoins(toNano('1'))
        .storeCoins(0)
        .storeAddress(stranger.address)
        .endCell(),
      ExitCode.notAllowed,
    ],
  };
  // the root takes messages from its owner only, so it refuses a stranger's with 101 first
  const unknown = (name: string) => (name === 'root' ? ExitCode.notAllowed : ExitCode.unknownOp);
  const bodies = (name: string): [string, Cell, number][] => [
    ['empty body', beginCell().endCell(), unknown(name)],
    ['text comment', beginCell().storeUint(0, 32).storeStringTail('thanks!').endCell(), unknown(name)],
    ['unknown op', beginCell().storeUint(0x12345678, 32).storeUint(42, 64).endCell(), unknown(name)],
    ['refused op', ...refusedOp[name]!],
  ];

  for (const name of Object.keys(at)) {
    const to = at[name]!;
    for (const [what, body, code] of bodies(name)) {
      const label = `${name}, ${what}`;
      const before = await tracked[name]!();
      // non-bounceable: sent back with `returned`
      const r = await stranger.send({ to, value: VALUE, bounce: false, body });
      const tx = r.transactions.map(flatten).find((t) => t.to?.equals(to))!;
      assert.ok(!tx.aborted, `${label}: handled, not aborted (exit ${tx.exitCode})`);
      const back = receivedBy(r, stranger.address, Op.returned);
      assert.ok(back > VALUE - toNano('0.01') && back < VALUE, `${label}: returned ${back}`);
      const ret = tx.raw.outMessages.get(0)!.body.beginParse();
      assert.equal(ret.loadUint(32), Op.returned);
      ret.loadUint(64);
      assert.equal(ret.loadInt(32), code, `${label}: exit code in the returned notice`);
      assert.equal(await tracked[name]!(), before, `${label}: tracked funds unchanged`);
      assert.equal(await balanceOf(blockchain, to), before + STORAGE_RESERVE, `${label}: no surplus stays`);
      // bounceable: bounces, and nothing stays either
      const b = await stranger.send({ to, value: VALUE, bounce: true, body });
      const btx = b.transactions.map(flatten).find((t) => t.to?.equals(to))!;
      assert.equal(btx.exitCode, code, `${label} (bounceable)`);
      assert.ok(btx.aborted);
      assert.ok(
        (await balanceOf(blockchain, to)) <= before + STORAGE_RESERVE,
        `${label} (bounceable): no surplus`,
      );
    }
  }

  // The next honest caller gets back no more than it sent: a client top-up by its owner.
  const r = await client.sendTopUp(clientOwner.getSender(), toNano('1') + GAS, toNano('1'));
  assertAllSucceeded(r);
  assert.ok(receivedBy(r, clientOwner.address, Op.excesses) < GAS);
  const d = await client.getClientData();
  assert.equal(await balanceOf(blockchain, client.address), d.balance + STORAGE_RESERVE);
});
