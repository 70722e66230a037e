import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { paidSuite } from './paid-network.ts';
import { call, RogueClient, until } from './rogue-client.ts';

/**
 * Attack: whoever learns another client's request id (the worker that served it, say) sends `pay.reject`
 * for it, to fail that client's request and strike it (three strikes ban it). A rejection only ever
 * applies to the sender's own bills.
 */
describe('attack: reject another client’s bill to fail its request and strike it', () => {
  const env = paidSuite(3);

  test('pay.reject naming another client’s request id changes nothing for that client', async () => {
    const victim = await RogueClient.join(env.net, join(env.dir, 'victim'));
    const attacker = await RogueClient.join(env.net, join(env.dir, 'attacker'));
    const desk = env.net.proxy.billing!.desk;
    for (let i = 0; i < 4; i++) {
      const id = `victim-${i}`;
      const { stream } = victim.open(call({ maxTokens: 20 }), id);
      // The attacker fires its rejections as soon as the bill exists, before the victim signs.
      const paid = victim.waitForBill(id).then(() => {
        for (let k = 0; k < 3; k++)
          attacker.session.sendControl({ type: 'pay.reject', requestId: id, reason: 'x' });
        setTimeout(() => victim.sign([id]), 20);
      });
      const r = await victim.read(stream);
      await paid;
      assert.equal(r.error, null, `request ${i} served and paid`);
      assert.ok((stream.trailer as { cost?: unknown }).cost, 'released with its cost');
    }
    assert.equal(desk.stats().refusals.unpaid_bill ?? 0, 0, 'no bill of the victim failed');
    // The victim is not struck: it is served still.
    const { stream } = victim.open(call({ maxTokens: 2 }), 'victim-last');
    const pay = victim.waitForBill('victim-last').then(() => victim.sign(['victim-last']));
    const r = await victim.read(stream);
    await pay;
    assert.equal(r.error, null);
    await until(() => env.net.proxy.counters.inFlight === 0, 'nothing in flight');
    victim.close();
    attacker.close();
  });
});
