import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { toNano } from '@ton/core';
import { clientChargeBody } from '../../src/chain/contracts/client-contract.ts';
import { clientAuthCell } from '../../src/pay/signed-messages.ts';
import { clientContractState, paidSuite } from './paid-network.ts';
import { call, RogueClient } from './rogue-client.ts';

const MAX_SEQNO = 2n ** 64n - 1n;

/**
 * Attack: anyone may submit a charge, so the client submits its own, signed with seqno 2^64−1 and a total
 * 1 nanoton above `charged`, to make every later authorisation stale on-chain while the proxy keeps
 * serving on them. Authorisations are ordered by their cumulative total, so the self-charge only pays the
 * proxy early; everything signed is still redeemed, and no gas is spent on a charge that cannot take.
 */
describe('attack: bump the on-chain seqno with a self-submitted charge', () => {
  const env = paidSuite(1);

  test('the proxy still redeems everything the client signed, before and after the bump', async () => {
    const rogue = await RogueClient.join(env.net, join(env.dir, 'bumper'));
    const desk = env.net.proxy.billing!.desk;
    const serve = async (id: string) => {
      const { stream } = rogue.open(call({ stream: false, maxTokens: 6 }), id);
      const paid = rogue.waitForBill(id).then(() => rogue.sign([id]));
      assert.equal((await rogue.read(stream)).error, null);
      await paid;
    };
    await serve('a');
    await serve('b');
    const chargedBefore = (await clientContractState(env.net, rogue.contract)).charged;
    const bump = {
      globalId: await env.net.ton!.chain.globalId(),
      contract: rogue.contract,
      seqno: MAX_SEQNO,
      total: chargedBefore + 1n,
    };
    await rogue.wallet.send([
      {
        to: rogue.contract,
        value: toNano('0.1'),
        body: clientChargeBody({
          cell: clientAuthCell(bump),
          signature: rogue.signed(bump.seqno, bump.total),
        }),
      },
    ]);
    const bumped = await clientContractState(env.net, rogue.contract);
    assert.equal(bumped.charged, chargedBefore + 1n, 'the self-charge took its 1 nanoton');
    await serve('c'); // served on, signed with an ordinary seqno
    const signed = desk.accountOf(rogue.contract)!.authorised;
    await desk.settleDue(true);
    assert.equal((await clientContractState(env.net, rogue.contract)).charged, signed, 'all of it redeemed');

    // Now the client pays everything it signed itself: the proxy spends no gas on a charge that cannot take.
    const settlements = desk.totals.settlements;
    await serve('d');
    const all = desk.accountOf(rogue.contract)!.authorised;
    await rogue.wallet.send([
      {
        to: rogue.contract,
        value: toNano('0.1'),
        body: clientChargeBody({
          cell: clientAuthCell({ ...bump, seqno: 1n, total: all }),
          signature: rogue.signed(1n, all),
        }),
      },
    ]);
    assert.equal(await desk.settleDue(true), 0, 'nothing sent');
    assert.equal(desk.totals.settlements, settlements);
    assert.equal(desk.totals.chargesFailed, 0);
    assert.equal((await clientContractState(env.net, rogue.contract)).charged, all);
    rogue.close();
  });
});
