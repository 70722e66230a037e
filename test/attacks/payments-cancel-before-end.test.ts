import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CancelledError } from '../../src/errors.ts';
import { partCarriesOutput } from '../../src/protocol/observed-output.ts';
import { paidSuite, workerAccrued } from './paid-network.ts';
import { call, RogueClient, until } from './rogue-client.ts';

/**
 * Attack: a client resets its stream (or its HTTP caller hangs up) just before the worker's END, hoping
 * that nothing is billed. Whatever reached it is billed; a client that does not sign is struck, and after
 * three unsigned bills refused; the worker is paid for what it delivered either way.
 */
describe('attack: cancel a stream just before its end to get the tokens for free', () => {
  const env = paidSuite(3);

  test('a RESET after tokens arrived is billed for them; unsigned, the client is struck, then refused', async () => {
    const rogue = await RogueClient.join(env.net, join(env.dir, 'rogue-reset'));
    const desk = env.net.proxy.billing!.desk;
    for (let i = 0; i < 3; i++) {
      const accruedBefore = workerAccrued(env.net);
      const { stream, requestId } = rogue.open(call({ maxTokens: 60 }));
      let received = 0;
      for await (const part of stream) {
        if (partCarriesOutput(part)) received++;
        if (received === 5) break; // leaves the loop: the stream is reset (cancelled) right here
      }
      stream.reset(new CancelledError());
      const bill = await rogue.waitForBill(requestId);
      assert.ok(bill.usage.completionTokens >= received, 'every token it received is on the bill');
      assert.ok(bill.usage.completionTokens <= 60);
      assert.ok(BigInt(bill.cost.total) > 0n);
      rogue.session.sendControl({ type: 'pay.reject', requestId, reason: 'I cancelled' });
      await until(
        () => workerAccrued(env.net).worker > accruedBefore.worker,
        'the worker is paid all the same',
      );
    }
    assert.equal(desk.stats().refusals.unpaid_bill, 3);
    // The fourth request is refused before any worker runs.
    const { stream } = rogue.open(call());
    const r = await rogue.read(stream);
    assert.equal((r.error as { code?: string }).code, 'unpaid_bills');
    assert.equal(r.parts.length, 0);
    rogue.close();
  });

  test('request.cancel: the stream ends with what was delivered, and that is exactly what is billed', async () => {
    const rogue = await RogueClient.join(env.net, join(env.dir, 'rogue-cancel'));
    const { stream, requestId } = rogue.open(call({ maxTokens: 200 }));
    let received = 0;
    // It pays as soon as the bill comes (before END, as every bill does) and reads on to the end.
    const paid = rogue.waitForBill(requestId, 10_000).then(() => rogue.sign([requestId]));
    for await (const part of stream) {
      if (partCarriesOutput(part)) received++;
      if (received === 4) rogue.session.sendControl({ type: 'request.cancel', requestId });
    }
    await paid;
    const bill = rogue.billFor(requestId);
    assert.equal(bill.usage.completionTokens, received, 'billed exactly the tokens that reached it');
    assert.ok(received < 200, 'the worker was stopped');
    const trailer = stream.trailer as { usage: { completionTokens: number }; cost?: { total: string } };
    assert.equal(trailer.usage.completionTokens, received);
    rogue.close();
  });

  test('the honest client daemon: a caller that hangs up mid-stream pays for what it received', async () => {
    const payer = env.net.client.payments!.payer;
    const desk = env.net.proxy.billing!.desk;
    const signedBefore = payer.authorisedTotal;
    const unpaidBefore = desk.totals.unpaid;
    const accruedBefore = workerAccrued(env.net);
    const abort = new AbortController();
    const res = await fetch(`${env.net.client.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'cocoon-tiny',
        messages: [{ role: 'user', content: 'a long story please' }],
        max_tokens: 300,
        stream: true,
      }),
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    let events = 0;
    while (events < 6) {
      const { value } = await reader.read();
      events += (
        Buffer.from(value!)
          .toString()
          .match(/^data: /gm) ?? []
      ).length;
    }
    abort.abort();
    await until(() => payer.authorisedTotal > signedBefore, 'the client signed for the delivered tokens');
    await until(() => env.net.proxy.counters.inFlight === 0, 'the request is over at the proxy');
    assert.equal(desk.totals.unpaid, unpaidBefore, 'nothing left unpaid');
    const paid = payer.authorisedTotal - signedBefore;
    const accrued = workerAccrued(env.net);
    assert.equal(
      accrued.worker + accrued.proxy - accruedBefore.worker - accruedBefore.proxy,
      paid,
      'what the client signed is what the worker and proxy earned',
    );
  });
});
