import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MAX_CHOICES } from '../../src/protocol/inference.ts';
import { paidSuite } from './paid-network.ts';
import { call, RogueClient } from './rogue-client.ts';

/**
 * Attack: a call with n < 0 (or a body whose `n` disagrees with the call's), so that the reservation goes
 * negative and raises the client's credit. `n` is a normalized, bounded field of the call; the body's
 * `n` is never read by the proxy, and the worker sends its engine the call's.
 */
describe('attack: a negative n to turn the reservation into credit', () => {
  const env = paidSuite(3);

  for (const n of [-5, 0, MAX_CHOICES + 1, 1.5]) {
    test(`a call with n = ${n} is refused before anything is reserved`, async () => {
      const rogue = await RogueClient.join(env.net, join(env.dir, `rogue-${n}`));
      const account = env.net.proxy.billing!.desk.accountOf(rogue.contract)!;
      const before = account.available();
      const { stream } = rogue.open(call({ n }));
      const r = await rogue.read(stream);
      assert.equal((r.error as { code?: string }).code, 'bad_message');
      assert.match(String((r.error as Error).message), /request\.n/);
      assert.equal(account.available(), before, 'credit unchanged');
      assert.equal(account.reserved, 0n);
      rogue.close();
    });
  }

  test('a body with n = -5 in a call with n = 1: one choice, reserved and billed for one', async () => {
    const rogue = await RogueClient.join(env.net, join(env.dir, 'rogue-body'));
    const account = env.net.proxy.billing!.desk.accountOf(rogue.contract)!;
    const before = account.available();
    const request = call({ stream: false, maxTokens: 6 });
    request.body = { ...request.body, n: -5, max_tokens: 6 };
    const { stream, requestId } = rogue.open(request);
    let during = 0n;
    const pay = rogue.waitForBill(requestId).then(() => {
      during = account.available();
      rogue.sign([requestId]);
    });
    const r = await rogue.read(stream);
    await pay;
    assert.equal(r.error, null);
    assert.ok(during < before, 'the reservation lowered the credit while it ran');
    const reply = JSON.parse(Buffer.concat(r.parts).toString()) as { choices: unknown[] };
    assert.equal(reply.choices.length, 1);
    assert.ok(rogue.billFor(requestId).usage.completionTokens <= 6);
    rogue.close();
  });
});
