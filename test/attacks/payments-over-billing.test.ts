import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LocalNetwork } from '../../src/local/local-network.ts';
import type { ProxyBilling } from '../../src/proxy/billing.ts';
import { paidNetwork } from './paid-network.ts';
import { until } from './rogue-client.ts';

type BillFn = ProxyBilling['bill'];

/**
 * Attack: a proxy (or the worker behind it) bills more than was served: more tokens than the client sent
 * or received, or a dearer coefficient than the worker it named. The honest client signs only what it
 * can bound from what it observed, so it pays nothing for such a bill; an honest bill still goes through.
 * (The proxy here is the real one with its billing replaced: the dishonest operator runs modified code.)
 */
describe('attack: a proxy over-bills the client', () => {
  let net: LocalNetwork;
  let stop: () => Promise<void>;
  let honestBill: BillFn;
  before(async () => {
    ({ net, stop } = await paidNetwork(1));
    const desk = net.proxy.billing!.desk;
    honestBill = desk.bill.bind(desk);
  });
  after(() => stop());

  const ask = (stream: boolean) =>
    fetch(`${net.client.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'cocoon-tiny',
        messages: [{ role: 'user', content: 'hello there' }],
        max_tokens: 50,
        stream,
      }),
    });

  async function overBilled(cheat: BillFn, stream: boolean): Promise<void> {
    const desk = net.proxy.billing!.desk;
    const payer = net.client.payments!.payer;
    const signedBefore = payer.authorisedTotal;
    desk.bill = cheat;
    try {
      const res = await ask(stream);
      const text = await res.text();
      // Refused (unpaid_bill); after three, the proxy refuses this client (unpaid_bills): a dishonest
      // proxy loses the client, the client loses nothing.
      if (stream) assert.match(text, /unpaid_bill/);
      else {
        assert.equal(res.status, 402, text);
        assert.match((JSON.parse(text) as { error: { code: string } }).error.code, /^unpaid_bills?$/);
      }
    } finally {
      desk.bill = honestBill;
    }
    await until(() => net.proxy.counters.inFlight === 0, 'over at the proxy');
    assert.equal(payer.authorisedTotal, signedBefore, 'the client signed nothing for it');
  }

  test('an honest bill is signed, and exactly its cost', async () => {
    const payer = net.client.payments!.payer;
    const signedBefore = payer.authorisedTotal;
    const res = await ask(false);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { usage: { total_cost: number } };
    assert.equal(payer.authorisedTotal - signedBefore, BigInt(body.usage.total_cost));
  });

  for (const stream of [false, true]) {
    const kind = stream ? 'stream' : 'JSON reply';
    test(`${kind}: 10× the completion tokens delivered is refused`, () =>
      overBilled(
        (acct, r) =>
          honestBill(acct, { ...r, usage: { ...r.usage, completionTokens: r.usage.completionTokens * 10 } }),
        stream,
      ));

    test(`${kind}: prompt tokens beyond the call's bytes are refused`, () =>
      overBilled(
        (acct, r) => honestBill(acct, { ...r, usage: { ...r.usage, promptTokens: 100_000 } }),
        stream,
      ));

    test(`${kind}: a coefficient above the serving worker's is refused`, () =>
      overBilled((acct, r) => honestBill(acct, { ...r, coefficient: r.coefficient * 4 }), stream));

    test(`${kind}: reasoning tokens (a dearer class) beyond completion are refused`, () =>
      overBilled(
        (acct, r) =>
          honestBill(acct, { ...r, usage: { ...r.usage, reasoningTokens: r.usage.completionTokens + 50 } }),
        stream,
      ));
  }
});
