import assert from 'node:assert/strict';
import { it } from 'node:test';
import { toNano } from '@ton/core';
import { ExitCode, Op, STORAGE_RESERVE } from '../../src/chain/contracts/opcodes.ts';
import {
  assertAllSucceeded,
  assertRefused,
  balanceOf,
  GAS,
  receivedBy,
  startNet,
  txOf,
} from '../contracts/helpers.ts';

/**
 * Attack (finding 1): anyone may submit a `charge`. A client signs its own ClientAuth with seqno 2^64 − 1
 * and a total of what was charged + 1 nanoton and submits it itself, hoping that every later, honest
 * authorisation (lower seqno) is refused as stale, so the proxy can never redeem what the client owes.
 * Authorisations are now ordered by their cumulative total: the bump moves 1 nanoton of the client's own
 * money to the proxy early, and the honest authorisation still takes exactly what it says.
 */

const MAX_SEQNO = 2n ** 64n - 1n;

it('a client that bumps its seqno to 2^64 − 1 cannot make its later authorisations unredeemable', async () => {
  const deposit = toNano('10');
  const net = await startNet({ deposit });
  const { client, proxy, clientOwner, submitter } = net;
  const poolBefore = (await proxy.getProxyData()).pool;

  // The proxy redeemed seqno 1 (0.5 TON) already.
  assertAllSucceeded(await client.sendCharge(submitter.getSender(), GAS, net.auth(1n, toNano('0.5'))));

  // The attack: total = charged + 1 nanoton, seqno = 2^64 − 1, submitted by the client's own wallet.
  const bump = await client.sendCharge(clientOwner.getSender(), GAS, net.auth(MAX_SEQNO, toNano('0.5') + 1n));
  assertAllSucceeded(bump);
  let d = await client.getClientData();
  assert.deepEqual([d.charged, d.seqno], [toNano('0.5') + 1n, MAX_SEQNO]);

  // Meanwhile the client was served and signed seqno 2 for 3 TON in all: the proxy redeems it, in full.
  const honest = net.auth(2n, toNano('3'));
  const r = await client.sendCharge(submitter.getSender(), GAS, honest);
  assertAllSucceeded(r);
  assert.equal(txOf(r, { to: client.address, op: Op.clientCharge }).aborted, false);
  d = await client.getClientData();
  assert.equal(d.charged, toNano('3'), 'the proxy got exactly what the client signed');
  assert.equal(d.balance, deposit - toNano('3'));
  assert.equal(d.seqno, MAX_SEQNO, 'the highest seqno is kept, for information only');
  assert.equal((await proxy.getProxyData()).pool - poolBefore, toNano('3'));
  assert.equal(await balanceOf(net.blockchain, client.address), deposit - toNano('3') + STORAGE_RESERVE);

  // The client gained nothing: replaying any of its authorisations takes no more.
  for (const again of [honest, net.auth(MAX_SEQNO, toNano('0.5') + 1n), net.auth(1n, toNano('0.5'))]) {
    assertRefused(
      await client.sendCharge(clientOwner.getSender(), GAS, again),
      client.address,
      ExitCode.totalNotAbovePaid,
    );
  }
  assert.equal((await client.getClientData()).charged, toNano('3'));

  // And the next honest authorisation, with the next small seqno, takes exactly its difference.
  const next = await client.sendCharge(submitter.getSender(), GAS, net.auth(3n, toNano('3.25')));
  assertAllSucceeded(next);
  assert.equal((await client.getClientData()).charged, toNano('3.25'));
  assert.equal(receivedBy(next, proxy.address, Op.proxyChargeProceeds) > toNano('0.25'), true);
  assert.equal((await proxy.getProxyData()).pool - poolBefore, toNano('3.25'));
});
