import assert from 'node:assert/strict';
import { it } from 'node:test';
import { internal, toNano } from '@ton/core';
import { clientChargeBody, clientCloseBody } from '../../src/chain/contracts/client-contract.ts';
import { ContractState, ExitCode, Op, STORAGE_RESERVE } from '../../src/chain/contracts/opcodes.ts';
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
 * Attack (finding 16): a `charge` submitted just before the client's `close`, against a proxy contract
 * that is closed: its `charge_proceeds` bounces, and the bounce arrives after the client contract closed.
 * It used to be credited to the closed contract's balance, locked forever. Now the client contract, when
 * closed, pays the bounced amount straight to its owner: the owner gets back every nanoton it deposited.
 */

it('a charge_proceeds bounced after the client contract closed is refunded to its owner', async () => {
  const deposit = toNano('10');
  const net = await startNet({ deposit });
  const { blockchain, client, clientOwner, proxy, proxyOwner } = net;

  // The proxy contract closes (after its delay).
  assertAllSucceeded(await proxy.sendRequestClose(proxyOwner.getSender(), GAS));
  blockchain.now = (blockchain.now ?? 0) + TEST_PARAMS.proxyCloseDelay;
  assertAllSucceeded(await proxy.sendClose(proxyOwner.getSender(), GAS));

  // The client closes too; once unlocked, a charge for 2 TON it signed and its `close` land in one block:
  // the charge runs first, then the close, then the bounce of the proceeds comes back.
  assertAllSucceeded(await client.sendRequestClose(clientOwner.getSender(), GAS));
  blockchain.now = (blockchain.now ?? 0) + TEST_PARAMS.clientCloseDelay;
  const r = await clientOwner.sendMessages([
    internal({
      to: client.address,
      value: GAS,
      bounce: true,
      body: clientChargeBody(net.auth(1n, toNano('2'))),
    }),
    internal({ to: client.address, value: GAS, bounce: true, body: clientCloseBody() }),
  ]);
  const atClient = r.transactions.map(flatten).filter((t) => t.to?.equals(client.address));
  assert.deepEqual(
    atClient.map((t) => [t.op, t.bounced]),
    [
      [Op.clientCharge, false],
      [Op.clientClose, false],
      [0xfffffffe, true], // the (rich) bounce, after the close
    ],
  );
  const refused = r.transactions.map(flatten).find((t) => t.to?.equals(proxy.address))!;
  assert.equal(refused.exitCode, ExitCode.wrongState);
  assert.ok(
    atClient.every((t) => !t.aborted),
    'the charge, the close and the bounce all went through',
  );

  // The owner got 8 TON from the close and the 2 TON that bounced: all of its deposit.
  assert.equal(receivedBy(r, clientOwner.address, Op.clientRefund), deposit);
  const d = await client.getClientData();
  assert.deepEqual([d.state, d.balance, d.charged], [ContractState.closed, 0n, 0n]);
  assert.equal(await balanceOf(blockchain, client.address), STORAGE_RESERVE, 'nothing is left locked');
});
