import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { paidSuite, workerAccrued } from './paid-network.ts';
import { call, RogueClient, until } from './rogue-client.ts';

/**
 * Attack: two calls with the same request id, so that the second bill overwrites the first (the expensive
 * call never billed, its relay hung, in-flight count and reservation leaked). The second call is refused
 * before any worker runs; the first is billed and paid as usual; nothing leaks.
 */
describe('attack: reuse a request id to have one bill overwrite another', () => {
  const env = paidSuite(3);

  test('a second call with an id in flight is refused with duplicate_request_id; the first is billed', async () => {
    const rogue = await RogueClient.join(env.net, join(env.dir, 'rogue'));
    const desk = env.net.proxy.billing!.desk;
    const accruedBefore = workerAccrued(env.net);
    const expensive = rogue.open(call({ maxTokens: 80 }), 'same-id');
    const cheap = rogue.open(call({ maxTokens: 1, stream: false }), 'same-id');
    const paying = rogue.waitForBill('same-id', 10_000).then(() => rogue.sign(['same-id']));
    const [first, second] = await Promise.all([rogue.read(expensive.stream), rogue.read(cheap.stream)]);
    await paying;
    assert.equal((second.error as { code?: string }).code, 'duplicate_request_id');
    assert.equal((second.error as { status?: number }).status, 400);
    assert.equal(first.error, null, 'the first call completes');
    const bill = rogue.billFor('same-id');
    assert.equal(
      rogue.bills.filter((b) => b.requestId === 'same-id').length,
      1,
      'one bill, for the first call',
    );
    assert.ok(bill.usage.completionTokens > 1, 'billed for the expensive call');
    await until(() => env.net.proxy.counters.inFlight === 0, 'nothing in flight');
    const account = desk.accountOf(rogue.contract)!;
    assert.equal(account.reserved, 0n, 'no reservation leaked');
    assert.equal(account.inFlight.size, 0);
    const accrued = workerAccrued(env.net);
    assert.equal(
      accrued.worker + accrued.proxy - accruedBefore.worker - accruedBefore.proxy,
      BigInt(bill.cost.total),
      'the worker is paid for the call it served',
    );
    // Once over, the id may be used again.
    const again = rogue.open(call({ maxTokens: 2, stream: false }), 'same-id');
    const pay = until(
      () => rogue.bills.filter((b) => b.requestId === 'same-id').length === 2,
      'second bill',
    ).then(() => rogue.sign(['same-id']));
    const r = await rogue.read(again.stream);
    await pay;
    assert.equal(r.error, null);
    rogue.close();
  });
});
