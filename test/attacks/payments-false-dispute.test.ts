import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { UsageDisputedError } from '../../src/errors.ts';
import type { Bill, Payer, RequestBound } from '../../src/pay/payer.ts';
import { post } from '../e2e/harness.ts';
import { paidSuite, workerAccrued } from './paid-network.ts';

/**
 * Attack: a client disputes a fair bill for a sealed reply, to get its answer for nothing. It shows the
 * true proof of a bill within what the reply carries, a proof with a changed part, a secret that opens
 * nothing, or disputes a request that has no open bill. Each is rejected: the bill stays unpaid (the
 * worker is paid all the same, by the proxy), the client is struck as for any bill it refuses, and after
 * three it is served no more. (The client here is the real one with its payer replaced.)
 */
type Proof = (proof: Buffer[]) => Buffer[];

describe('attack: a client disputes a fair bill', () => {
  const env = paidSuite();

  const ask = () =>
    post(`${env.net.client.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'hello there' }],
      max_tokens: 20,
    });

  /** The client's payer disputes every bill, with the proof its reader kept, altered by `alter`. */
  async function disputeWith(alter: Proof): Promise<void> {
    const { net } = env;
    const payer = net.client.payments!.payer;
    const desk = net.proxy.billing!.desk;
    const honestPay = payer.pay.bind(payer);
    const bounds = (payer as unknown as { bounds: Map<string, RequestBound> }).bounds;
    (payer as { pay: Payer['pay'] }).pay = async (bill: Bill) => {
      const read = bounds.get(bill.requestId)!.read!;
      throw new UsageDisputedError('the client says so', alter(read.proof(bill.end)!));
    };
    const before = {
      signed: payer.authorisedTotal,
      accrued: workerAccrued(net).worker,
      rejected: desk.stats().refusals.dispute_rejected ?? 0,
    };
    try {
      const res = await ask();
      assert.equal(res.status, 402);
      assert.equal(res.json.error?.code, 'unpaid_bill');
    } finally {
      (payer as { pay: Payer['pay'] }).pay = honestPay;
    }
    assert.equal(payer.authorisedTotal, before.signed, 'the client signed nothing');
    assert.ok(workerAccrued(net).worker > before.accrued, 'the worker is paid all the same');
    assert.equal(desk.stats().refusals.dispute_rejected, before.rejected + 1);
  }

  test('a dispute for a request with no open bill is refused and changes nothing', async () => {
    const { net } = env;
    const session = net.client.proxies[0]!.session!;
    const s = session.openStream({ method: 'dispute', requestId: 'no-such-request' });
    s.write(randomBytes(32));
    s.end();
    await assert.rejects(s.readAll(), /can be disputed/);
    assert.equal(net.proxy.billing!.desk.stats().refusals.dispute_refused, 1);
    const res = await ask();
    assert.equal(res.status, 200, 'the client is not struck for it');
  });

  test('the true proof of a fair bill: rejected, the bill unpaid', () => disputeWith((p) => p));

  test('a proof with a changed part: rejected', () =>
    disputeWith((p) => {
      const changed = Buffer.from(p[1]!);
      changed[changed.length - 1]! ^= 1;
      return [p[0]!, changed, ...p.slice(2)];
    }));

  test('a secret that opens nothing: rejected; a third refused bill and the client is served no more', async () => {
    await disputeWith((p) => [randomBytes(32), ...p.slice(1)]);
    const res = await ask();
    assert.equal(res.status, 402);
    assert.equal(res.json.error?.code, 'unpaid_bills');
  });
});
