import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { type CocoonError, UsageDisputedError } from '../../src/errors.ts';
import { type AuthMessage, ClientAccount, type StoredAuth } from '../../src/pay/client-account.ts';
import { Ledger } from '../../src/pay/ledger.ts';
import { type Bill, Payer, type RequestBound, type SignedAuth } from '../../src/pay/payer.ts';
import { requestCost } from '../../src/pay/pricing.ts';
import { clientAuthCell, GLOBAL_ID, signCell, verifyCell } from '../../src/pay/signed-messages.ts';
import type { TokenUsage } from '../../src/protocol/inference.ts';
import { devWorker, receipt } from '../protocol/receipt-fixtures.ts';
import {
  CONTRACT,
  type KeyPair,
  keyPair,
  NETWORK,
  OTHER_CONTRACT,
  OWNER,
  openLedger,
  PRICES,
  TON,
  tempDir,
} from './fixtures.ts';

const client = keyPair();

/** A request's bound, as the client knows it once the call went out and `observed` tokens came back. */
function boundOf(
  over: { maxCompletionTokens?: number; callBytes?: number; observed?: number } = {},
): RequestBound {
  const observed = over.observed ?? 100_000;
  return {
    maxCoefficient: 1500,
    maxCompletionTokens: over.maxCompletionTokens ?? 1000,
    choices: 1,
    callBytes: over.callBytes ?? 4000,
    coefficient: null,
    observed: { completionTokens: () => observed },
  };
}
const USAGE: TokenUsage = {
  promptTokens: 1000,
  cachedTokens: 400,
  completionTokens: 500,
  reasoningTokens: 200,
};

/** The bill a proxy would send for `usage` at `coefficient`, priced exactly. */
/** The worker serving every request here: each bill carries its signed receipt for the billed usage. */
const worker = await devWorker();

function billFor(requestId: string, usage: TokenUsage = USAGE, coefficient = 1000): Bill {
  const c = requestCost(usage, coefficient, PRICES);
  return {
    requestId,
    paramsVersion: PRICES.paramsVersion,
    coefficient,
    usage,
    cost: { prompt: c.promptCost, completion: c.completionCost, total: c.totalCost },
    receipt: receipt(worker, requestId, { usage, coefficient }),
  };
}

function signedBy(
  key: KeyPair,
  seqno: bigint,
  total: bigint,
  contract = CONTRACT,
  globalId: number = NETWORK,
): StoredAuth {
  return {
    seqno,
    total,
    signature: signCell(clientAuthCell({ globalId, contract, seqno, total }), key.privateKey),
  };
}

function refusedWith(code: string) {
  return (e: CocoonError) => {
    assert.equal(e.status, 402);
    assert.equal(e.code, code);
    return true;
  };
}

/**
 * A Payer (client side) and a ClientAccount (proxy side) joined in memory: `request` registers a request with
 * both and returns the proxy's bill; `deliver` hands every authorisation sent so far to the proxy.
 */
function harness(
  t: TestContext,
  opts: { dir?: string; proxyAuth?: StoredAuth | null; resume?: boolean } = {},
) {
  const dir = opts.dir ?? tempDir(t);
  const ledger = openLedger(t, dir);
  const proxy = new ClientAccount(CONTRACT, OWNER, client.publicKey, NETWORK, opts.proxyAuth ?? null);
  proxy.chain = {
    deployed: true,
    state: 0,
    balance: 10n * TON,
    stake: TON,
    charged: 0n,
    seqno: 0n,
    unlockAt: 0,
    closeDelay: 3600,
  };
  const sent: SignedAuth[] = [];
  let delivered = 0;
  const payer = new Payer(client.privateKey, client.publicKey, ledger, NETWORK, PRICES, (a) => sent.push(a));
  if (opts.resume !== false) payer.resume(CONTRACT, opts.proxyAuth ?? null, 0n);
  return {
    dir,
    ledger,
    payer,
    proxy,
    sent,
    request(
      id: string,
      usage: TokenUsage = USAGE,
      coefficient = 1000,
      bound: RequestBound = boundOf(),
    ): Bill {
      payer.expect(id, bound);
      payer.served(id, coefficient, worker.key.publicKeyHex); // the worker we sent the body to
      const bill = billFor(id, usage, coefficient);
      proxy.addBill(id, bill.cost.total);
      return bill;
    },
    deliver(): void {
      for (; delivered < sent.length; delivered++) {
        const msg: AuthMessage = sent[delivered]!;
        proxy.applyAuth(msg, proxy.checkAuth(msg));
      }
    },
  };
}

/** Lets queued flushes run. */
const settle = () => new Promise<void>((r) => setTimeout(r, 20));

describe('Payer ↔ ClientAccount', () => {
  test('a bill is signed once, sent, and the ClientAccount accepts the authorisation', async (t) => {
    const h = harness(t);
    const bill = h.request('r1');
    await h.payer.pay(bill);
    assert.equal(h.sent.length, 1);
    assert.deepEqual(h.sent[0]!.requestIds, ['r1']);
    assert.equal(h.sent[0]!.seqno, 1n);
    assert.equal(h.sent[0]!.total, bill.cost.total);
    h.deliver();
    assert.equal(h.proxy.authorised, bill.cost.total);
    assert.equal(h.proxy.hasBill('r1'), false);
    assert.equal(h.payer.authorisedTotal, bill.cost.total);
  });

  test('bills arriving in the same tick are covered by one signature', async (t) => {
    const h = harness(t);
    const bills = [
      h.request('a'),
      h.request('b', { ...USAGE, completionTokens: 7, reasoningTokens: 3 }),
      h.request('c', USAGE, 1500),
    ];
    await Promise.all(bills.map((b) => h.payer.pay(b)));
    assert.equal(h.sent.length, 1);
    const [auth] = h.sent;
    assert.deepEqual(auth!.requestIds, ['a', 'b', 'c']);
    assert.equal(auth!.seqno, 1n);
    assert.equal(
      auth!.total,
      bills.reduce((s, b) => s + b.cost.total, 0n),
    );
    h.deliver();
    for (const id of ['a', 'b', 'c']) assert.equal(h.proxy.hasBill(id), false);
  });

  test('successive batches carry rising seqnos and cumulative totals, each accepted in turn', async (t) => {
    const h = harness(t);
    const b1 = h.request('r1');
    await h.payer.pay(b1);
    const b2 = h.request('r2', USAGE, 1200);
    await h.payer.pay(b2);
    assert.deepEqual(
      h.sent.map((a) => [a.seqno, a.total]),
      [
        [1n, b1.cost.total],
        [2n, b1.cost.total + b2.cost.total],
      ],
    );
    h.deliver();
    assert.equal(h.proxy.authorised, b1.cost.total + b2.cost.total);
  });

  test('a bill below the priced cost (capped at the reservation) is accepted', async (t) => {
    const h = harness(t);
    const bill = billFor('r1');
    const capped: Bill = { ...bill, cost: { prompt: 1n, completion: 2n, total: 3n } };
    h.payer.expect('r1', boundOf());
    h.payer.served('r1', 1000, worker.key.publicKeyHex);
    h.proxy.addBill('r1', 3n);
    await h.payer.pay(capped);
    h.deliver();
    assert.equal(h.proxy.authorised, 3n);
  });

  test('the signature is the client key’s over the cumulative ClientAuth cell', async (t) => {
    const h = harness(t);
    await h.payer.pay(h.request('r1'));
    const a = h.sent[0]!;
    const cell = clientAuthCell({ globalId: NETWORK, contract: CONTRACT, seqno: a.seqno, total: a.total });
    assert.ok(verifyCell(cell, a.signature, client.publicKey));
  });
});

describe('Payer refuses bills', () => {
  async function refuses(t: TestContext, setup: (h: ReturnType<typeof harness>) => Bill, code: string) {
    const h = harness(t);
    const bill = setup(h);
    await assert.rejects(h.payer.pay(bill), refusedWith(code));
    await settle();
    assert.equal(h.sent.length, 0, 'nothing signed');
    assert.equal(h.payer.authorisedTotal, 0n);
  }

  test('above the request’s bound (more completion tokens than allowed) with wrong_bill', (t) =>
    refuses(
      t,
      (h) =>
        h.request(
          'r1',
          { ...USAGE, completionTokens: 1000, reasoningTokens: 0 },
          1500,
          boundOf({ maxCompletionTokens: 100, callBytes: 2000 }),
        ),
      'usage_not_observed',
    ));

  test('at a coefficient above the accepted maximum with coefficient_too_high', (t) =>
    refuses(t, (h) => h.request('r1', USAGE, 1501), 'coefficient_too_high'));

  test('whose total is not prompt + completion with wrong_bill', (t) =>
    refuses(
      t,
      (h) => {
        const b = h.request('r1');
        return { ...b, cost: { ...b.cost, total: b.cost.total - 1n } };
      },
      'wrong_bill',
    ));

  test('above the cost of the reported usage with wrong_bill', (t) =>
    refuses(
      t,
      (h) => {
        const b = h.request('r1');
        return { ...b, cost: { ...b.cost, completion: b.cost.completion + 1n, total: b.cost.total + 1n } };
      },
      'wrong_bill',
    ));

  test('with a negative part with wrong_bill', (t) =>
    refuses(
      t,
      (h) => {
        const b = h.request('r1');
        return { ...b, cost: { ...b.cost, prompt: -1n, completion: b.cost.total + 1n } };
      },
      'wrong_bill',
    ));

  test('for an unknown request with unknown_bill', (t) =>
    refuses(t, () => billFor('never-asked'), 'unknown_bill'));

  test('for a forgotten request with unknown_bill', (t) =>
    refuses(
      t,
      (h) => {
        const b = h.request('r1');
        h.payer.forget('r1');
        return b;
      },
      'unknown_bill',
    ));

  test('before any account is known with no_account', async (t) => {
    const h = harness(t, { resume: false });
    h.payer.expect('r1', boundOf());
    h.payer.served('r1', 1000, worker.key.publicKeyHex);
    await assert.rejects(h.payer.pay(billFor('r1')), refusedWith('no_account'));
  });

  test('for a request already paid with unknown_bill', async (t) => {
    const h = harness(t);
    const b = h.request('r1');
    await h.payer.pay(b);
    await assert.rejects(h.payer.pay(b), refusedWith('unknown_bill'));
  });

  test('a second bill for the same request in the same tick is refused; the request is paid once', {}, async (t) => {
    const h = harness(t);
    const b = h.request('r1');
    const first = h.payer.pay(b);
    let second: unknown = null;
    try {
      await h.payer.pay(b);
    } catch (e) {
      second = e;
    }
    await first;
    await settle();
    assert.equal(h.sent.length, 1);
    assert.equal(h.sent[0]!.total, b.cost.total, 'signed for the request once');
    assert.ok(second instanceof Error, 'the duplicate bill is refused');
  });
});

describe('Payer signs only what it can bound from what it observed', () => {
  test('a coefficient other than the serving worker’s is refused with coefficient_mismatch', async (t) => {
    const h = harness(t);
    h.payer.expect('r1', boundOf());
    h.payer.served('r1', 1000, worker.key.publicKeyHex);
    await assert.rejects(h.payer.pay(billFor('r1', USAGE, 1400)), refusedWith('coefficient_mismatch'));
    assert.equal(h.sent.length, 0);
  });

  test('a bill before the proxy named the serving worker is refused', async (t) => {
    const h = harness(t);
    h.payer.expect('r1', boundOf());
    await assert.rejects(h.payer.pay(billFor('r1')), refusedWith('coefficient_mismatch'));
  });

  test('more completion tokens than were received is refused with usage_not_observed', async (t) => {
    const h = harness(t);
    const bill = h.request('r1', USAGE, 1000, boundOf({ observed: USAGE.completionTokens - 1 }));
    await assert.rejects(h.payer.pay(bill), refusedWith('usage_not_observed'));
    const ok = h.request('r2', USAGE, 1000, boundOf({ observed: USAGE.completionTokens }));
    await h.payer.pay(ok);
    assert.equal(h.sent.length, 1, 'exactly what was received is signed');
  });

  test('more prompt tokens than the call had bytes is refused with usage_not_observed', async (t) => {
    const h = harness(t);
    const bill = h.request('r1', USAGE, 1000, boundOf({ callBytes: 100 }));
    await assert.rejects(h.payer.pay(bill), refusedWith('usage_not_observed'));
  });

  test('a bill above the usage its worker signed is refused with usage_not_signed', async (t) => {
    const h = harness(t);
    const bill = h.request('r1');
    const more = { ...USAGE, completionTokens: USAGE.completionTokens - 1 };
    await assert.rejects(
      h.payer.pay({ ...bill, receipt: receipt(worker, 'r1', { usage: more }) }),
      refusedWith('usage_not_signed'),
    );
  });

  test('a receipt from another worker, for another request, or forged is refused with receipt_mismatch', async (t) => {
    const h = harness(t);
    const other = await devWorker();
    const forged = {
      ...receipt(worker, 'r3', { usage: USAGE }),
      usage: { ...USAGE, promptTokens: USAGE.promptTokens + 1 },
    };
    for (const [id, r] of [
      ['r1', receipt(other, 'r1', { usage: USAGE })],
      ['r2', receipt(worker, 'elsewhere', { usage: USAGE })],
      ['r3', forged],
    ] as const) {
      const bill = h.request(id);
      await assert.rejects(h.payer.pay({ ...bill, receipt: r }), refusedWith('receipt_mismatch'));
    }
  });

  test('a bill without a receipt may charge delivered tokens only, never the prompt', async (t) => {
    const h = harness(t);
    const { receipt: _, ...bare } = h.request('r1');
    await assert.rejects(h.payer.pay(bare), refusedWith('receipt_missing'));
    const cut = { ...USAGE, promptTokens: 0, cachedTokens: 0 };
    const { receipt: __, ...partial } = h.request('r2', cut);
    await h.payer.pay(partial);
  });

  /** A sealed reply the client read: it accounts for `counted` completion tokens; `proof` is what it kept. */
  function readReply(counted: number, proof: Buffer[] | null) {
    const ends: (string | undefined)[] = [];
    return {
      ends,
      completionTokens: (_n: number, end: string | undefined) => {
        ends.push(end);
        return counted;
      },
      proof: () => proof,
    };
  }

  test('a sealed reply billed beyond what it carries is disputed with the proof, and nothing signed', async (t) => {
    const h = harness(t);
    const proof = [Buffer.alloc(32, 1), Buffer.from('part')];
    const bill = h.request('r1');
    const read = readReply(USAGE.completionTokens - 1, proof);
    h.payer.served('r1', 1000, worker.key.publicKeyHex, read);
    await assert.rejects(h.payer.pay({ ...bill, end: 'ZW5k' }), (e: Error) => {
      assert.ok(e instanceof UsageDisputedError);
      assert.equal(e.code, 'usage_disputed');
      assert.deepEqual(e.proof, proof);
      return true;
    });
    assert.deepEqual(read.ends, ['ZW5k'], "the bill's sealed end is counted with the reply");
    await settle();
    assert.equal(h.sent.length, 0);
    await assert.rejects(h.payer.pay(bill), refusedWith('unknown_bill'), 'one bill per request');
  });

  test('a sealed reply billed within what it carries is signed', async (t) => {
    const h = harness(t);
    const bill = h.request('r1');
    h.payer.served('r1', 1000, worker.key.publicKeyHex, readReply(USAGE.completionTokens, null));
    await h.payer.pay(bill);
    assert.equal(h.sent.length, 1);
  });

  test('an over-claim on a reply too long to prove is refused with usage_not_read', async (t) => {
    const h = harness(t);
    const bill = h.request('r1');
    h.payer.served('r1', 1000, worker.key.publicKeyHex, readReply(1, null));
    await assert.rejects(h.payer.pay(bill), refusedWith('usage_not_read'));
  });

  test('sub-counts above their totals (dearer classes) are refused', async (t) => {
    const h = harness(t);
    const bill = h.request('r1', { ...USAGE, reasoningTokens: USAGE.completionTokens + 1 });
    await assert.rejects(h.payer.pay(bill), refusedWith('usage_not_observed'));
  });

  test('a bill priced with newer params reads them from the chain; older ones are kept for one change', async (t) => {
    const dir = tempDir(t);
    const ledger = openLedger(t, dir);
    const v2 = { ...PRICES, paramsVersion: 2, pricePerToken: 2000n };
    let reads = 0;
    const payer = new Payer(
      client.privateKey,
      client.publicKey,
      ledger,
      NETWORK,
      PRICES,
      () => {},
      async () => {
        reads++;
        return v2;
      },
    );
    payer.resume(CONTRACT, null, 0n);
    const priced = (id: string, prices: typeof PRICES): Bill => {
      const c = requestCost(USAGE, 1000, prices);
      payer.expect(id, boundOf());
      payer.served(id, 1000, worker.key.publicKeyHex);
      return {
        requestId: id,
        paramsVersion: prices.paramsVersion,
        coefficient: 1000,
        usage: USAGE,
        cost: { prompt: c.promptCost, completion: c.completionCost, total: c.totalCost },
        receipt: receipt(worker, id, { usage: USAGE }),
      };
    };
    await payer.pay(priced('r1', v2));
    assert.equal(reads, 1, 'the newer params were read from the chain');
    assert.equal(payer.prices.paramsVersion, 2);
    await payer.pay(priced('r2', PRICES)); // a proxy that has not seen the change yet
    await assert.rejects(
      payer.pay(priced('r3', { ...PRICES, paramsVersion: 7 })),
      refusedWith('unknown_params'),
    );
  });
});

describe('Payer.resume', () => {
  test('continues above what the contract has paid when the proxy holds less (lost ledger)', async (t) => {
    const h = harness(t, { resume: false });
    const charged = 5_000_000n;
    h.payer.resume(CONTRACT, null, charged);
    h.proxy.chain = { ...h.proxy.chain, charged };
    const b = h.request('r1');
    await h.payer.pay(b);
    assert.equal(h.sent[0]!.total, charged + b.cost.total, 'the total starts at what was already paid');
    h.deliver(); // and the proxy, which takes the chain as its floor too, accepts it
    assert.equal(h.proxy.authorised, charged + b.cost.total);
  });

  test('after a reconnect the next seqno is above both our ledger and the proxy’s newest auth', async (t) => {
    const h = harness(t);
    const bills = [h.request('r1'), h.request('r2'), h.request('r3')];
    for (const b of bills) await h.payer.pay(b);
    assert.deepEqual(
      h.sent.map((a) => a.seqno),
      [1n, 2n, 3n],
    );
    // The proxy's ledger kept only the authorisation of seqno 2; seqno 3 never reached it.
    const a2 = h.sent[1]!;
    const proxy = new ClientAccount(CONTRACT, OWNER, client.publicKey, NETWORK, {
      seqno: a2.seqno,
      total: a2.total,
      signature: a2.signature,
    });
    proxy.chain = h.proxy.chain;
    h.payer.resume(CONTRACT, { seqno: a2.seqno, total: a2.total, signature: a2.signature }, 0n);
    assert.equal(h.payer.authorisedTotal, a2.total);
    h.payer.expect('r4', boundOf());
    h.payer.served('r4', 1000, worker.key.publicKeyHex);
    const b4 = billFor('r4');
    proxy.addBill('r4', b4.cost.total);
    await h.payer.pay(b4);
    const a4 = h.sent[3]!;
    assert.equal(a4.seqno, 4n, 'above our 3 and the proxy’s 2');
    assert.equal(a4.total, a2.total + b4.cost.total, 'builds on what the proxy holds');
    proxy.applyAuth(a4, proxy.checkAuth(a4));
  });

  test('when the proxy holds a newer seqno than our ledger, the next one is above it', async (t) => {
    const proxyAuth = signedBy(client, 5n, 1_000_000n);
    const h = harness(t, { proxyAuth }); // a fresh ledger: we remember nothing
    const b = h.request('r1');
    await h.payer.pay(b);
    assert.equal(h.sent[0]!.seqno, 6n);
    assert.equal(h.sent[0]!.total, 1_000_000n + b.cost.total);
    h.deliver();
  });

  test('after a restart with the proxy holding nothing, the seqno continues from our ledger', async (t) => {
    const dir = tempDir(t);
    const first = harness(t, { dir });
    await first.payer.pay(first.request('r1'));
    await first.payer.pay(first.request('r2'));
    await first.ledger.close();

    const h = harness(t, { dir, proxyAuth: null });
    const b = h.request('r3');
    await h.payer.pay(b);
    assert.equal(h.sent[0]!.seqno, 3n);
    assert.equal(h.sent[0]!.total, b.cost.total, 'nothing the proxy holds to build on');
    h.deliver();
  });

  test('resume with no authorisation resets the base to zero', async (t) => {
    const h = harness(t);
    await h.payer.pay(h.request('r1'));
    h.payer.resume(CONTRACT, null, 0n);
    assert.equal(h.payer.authorisedTotal, 0n);
  });

  test('throws forged_authorisation for an auth signed by another key', (t) => {
    const h = harness(t);
    assert.throws(
      () => h.payer.resume(CONTRACT, signedBy(keyPair(), 5n, 1000n), 0n),
      refusedWith('forged_authorisation'),
    );
  });

  test('throws forged_authorisation for our own auth made for another contract or network', (t) => {
    const h = harness(t);
    assert.throws(
      () => h.payer.resume(CONTRACT, signedBy(client, 5n, 1000n, OTHER_CONTRACT), 0n),
      refusedWith('forged_authorisation'),
    );
    assert.throws(
      () => h.payer.resume(CONTRACT, signedBy(client, 5n, 1000n, CONTRACT, GLOBAL_ID.testnet), 0n),
      refusedWith('forged_authorisation'),
    );
  });
});

describe('Payer durability', () => {
  test('the authorisation is in the ledger before it is sent', async (t) => {
    const dir = tempDir(t);
    const ledger = openLedger(t, dir);
    const seen: { seqno: string; signature: string }[][] = [];
    let sends = 0;
    const payer = new Payer(client.privateKey, client.publicKey, ledger, NETWORK, PRICES, (a) => {
      sends++;
      const fresh = Ledger.open(dir);
      const records = [...fresh.entries<{ seqno?: string; signature?: string }>('')].map(([, v]) => v);
      seen.push(
        records
          .filter((r) => r.signature === a.signature.toString('hex'))
          .map((r) => ({ seqno: r.seqno!, signature: r.signature! })),
      );
      void fresh.close();
    });
    payer.resume(CONTRACT, null, 0n);
    for (const id of ['r1', 'r2']) {
      payer.expect(id, boundOf());
      payer.served(id, 1000, worker.key.publicKeyHex);
      await payer.pay(billFor(id));
    }
    assert.equal(sends, 2);
    assert.equal(seen[0]?.length, 1, 'first auth found by a fresh reader inside send');
    assert.equal(seen[0]![0]!.seqno, '1');
    assert.equal(seen[1]?.length, 1, 'second auth found by a fresh reader inside send');
    assert.equal(seen[1]![0]!.seqno, '2');
  });

  test('a failed ledger write rejects the batch and sends nothing', async () => {
    const failing = {
      get: () => undefined,
      commit: () => Promise.reject(new Error('disk full')),
    } as unknown as Ledger;
    const sent: SignedAuth[] = [];
    const payer = new Payer(client.privateKey, client.publicKey, failing, NETWORK, PRICES, (a) =>
      sent.push(a),
    );
    payer.resume(CONTRACT, null, 0n);
    payer.expect('r1', boundOf());
    payer.served('r1', 1000, worker.key.publicKeyHex);
    await assert.rejects(payer.pay(billFor('r1')), /disk full/);
    assert.equal(sent.length, 0);
  });

  test('a failed ledger write does not leak into the next authorisation’s total', {}, async (t) => {
    const h = harness(t);
    let fail = true;
    const flaky = {
      get: () => undefined,
      commit: () => {
        if (!fail) return Promise.resolve();
        fail = false;
        return Promise.reject(new Error('disk full'));
      },
    } as unknown as Ledger;
    const sent: SignedAuth[] = [];
    const payer = new Payer(client.privateKey, client.publicKey, flaky, NETWORK, PRICES, (a) => sent.push(a));
    payer.resume(CONTRACT, null, 0n);
    payer.expect('r1', boundOf());
    payer.served('r1', 1000, worker.key.publicKeyHex);
    h.proxy.addBill('r1', billFor('r1').cost.total);
    await assert.rejects(payer.pay(billFor('r1')), /disk full/);
    const b2 = h.request('r2');
    payer.expect('r2', boundOf());
    payer.served('r2', 1000, worker.key.publicKeyHex);
    await payer.pay(b2);
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.total, b2.cost.total);
    assert.doesNotThrow(() => h.proxy.checkAuth(sent[0]!));
  });
});
