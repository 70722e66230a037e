import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { toNano } from '@ton/core';
import { clientChargeBody } from '../../src/chain/contracts/client-contract.ts';
import { CancelledError } from '../../src/errors.ts';
import type { ClientAccount } from '../../src/pay/client-account.ts';
import { clientAuthCell } from '../../src/pay/signed-messages.ts';
import {
  partCarriesOutput,
  responseOutputBytes,
  SILENT_TOKENS_PER_CHOICE,
} from '../../src/protocol/observed-output.ts';
import { MAX_SEQNO, maxOf, Rng } from '../contracts/property-model.ts';
import { clientContractState, paidSuite, workerAccrued } from './paid-network.ts';
import { call, RogueClient, until } from './rogue-client.ts';

/**
 * Attack, randomized: a client that runs its own code does, in a seeded order, everything a cheating client
 * might — honest requests it pays (streams and JSON replies), streams it resets mid-way, `request.cancel`
 * and then pays, duplicate request ids, `pay.reject` of its bills, bills left unsigned, charges of its own
 * with any seqno and total — with forced settlements in between. After every step (once nothing is in
 * flight): nothing is in flight and nothing reserved at the proxy; the worker accrued exactly the bills the
 * proxy sent (paid or not); each bill covers only output that reached the client; after a forced settlement
 * the contract has charged exactly what the proxy holds signed, or more only by what the client chose to
 * pay itself; and after three unpaid bills the client is refused (`unpaid_bills`) and served nothing more.
 *
 * Replay with COCOON_ATTACK_SEED=<seed> (COCOON_ATTACK_STEPS=<n> for a longer walk).
 */

const SEED = Number(process.env.COCOON_ATTACK_SEED ?? 0xd15c0) >>> 0;
const STEPS = Number(process.env.COCOON_ATTACK_STEPS ?? 48);
const MAX_UNPAID_BILLS = 3;

describe('attack: a randomized dishonest client against the real daemons', () => {
  const env = paidSuite(1);

  test('whatever it does, it pays for what reached it, gets nothing more, and is refused after 3 unpaid bills', async (t) => {
    t.diagnostic(`seed ${SEED}, ${STEPS} steps; replay with COCOON_ATTACK_SEED=${SEED}`);
    const rng = new Rng(SEED);
    const rogue = await RogueClient.join(env.net, join(env.dir, 'rogue'));
    const desk = env.net.proxy.billing!.desk;
    const account = (): ClientAccount => desk.accountOf(rogue.contract)!;
    // The proxy re-reads contracts every 5 s; after a charge of our own it must see it before we sign on
    // (the next total is `max(authorised, charged)` plus the bills, as the proxy counts it).
    const proxyRefresh = (desk as unknown as { refresh(a: ClientAccount): Promise<void> }).refresh.bind(desk);
    const accrued0 = workerAccrued(env.net);
    const stats: Record<string, number> = {};
    const count = (k: string) => {
      stats[k] = (stats[k] ?? 0) + 1;
    };

    /** The cost of every bill the proxy sent us. */
    let billed = 0n;
    /** Bills we rejected or left unsigned that have failed by now. */
    let unpaid = 0;
    /** A request whose bill we leave unsigned: it fails after the proxy's bill timeout. */
    let unsigned: Promise<void> | null = null;
    /** The highest total of a charge of our own that the contract took. */
    let selfHigh = 0n;
    let ids = 0;
    let step = 0;
    /** Strikes (rejected or unsigned bills) only after the first third: it is served a while before. */
    const mayStrike = () => step >= STEPS / 3;
    const freshId = () => `r${ids++}`;

    const expectRefused = () => unpaid >= MAX_UNPAID_BILLS;
    /** Before a request: if an unsigned bill could be the one that gets us refused, wait for it. */
    const settleUnsigned = async () => {
      if (unsigned && unpaid + 1 >= MAX_UNPAID_BILLS) {
        await unsigned;
        unsigned = null;
      }
    };

    /** Signs the bills of `requestIds` as the proxy counts: above what it holds signed or what was charged. */
    const pay = (requestIds: string[]) => {
      const a = account();
      const due = requestIds.reduce((s, id) => s + BigInt(rogue.billFor(id).cost.total), 0n);
      rogue.sign(requestIds, maxOf(a.authorised, a.chain.charged) + due);
    };
    /** The bill of `id` arrived: count it, check it is within what the call allows. */
    const gotBill = async (id: string, maxTokens: number) => {
      const bill = await rogue.waitForBill(id, 10_000);
      assert.equal(rogue.bills.filter((b) => b.requestId === id).length, 1, `one bill for ${id}`);
      assert.ok(bill.usage.completionTokens <= maxTokens, `${id}: billed beyond max_tokens`);
      billed += BigInt(bill.cost.total);
      return bill;
    };

    /** A request once refused: nothing served, no bill, no worker. */
    const refusedRequest = async () => {
      const id = freshId();
      const { stream } = rogue.open(call({ maxTokens: 10, stream: rng.chance(0.5) }), id);
      const r = await rogue.read(stream);
      assert.equal((r.error as { code?: string } | null)?.code, 'unpaid_bills');
      assert.equal(r.parts.length, 0, 'nothing served');
      assert.ok(!rogue.bills.some((b) => b.requestId === id), 'nothing billed');
      count('request refused: unpaid_bills');
      return 'refused' as const;
    };

    /** An honest request it pays: every output token it was billed for reached it. */
    const honest = async (stream: boolean) => {
      await settleUnsigned();
      if (expectRefused()) return refusedRequest();
      const id = freshId();
      const maxTokens = rng.int(1, 40);
      const { stream: s } = rogue.open(call({ stream, maxTokens }), id);
      const paying = gotBill(id, maxTokens).then(() => pay([id]));
      const r = await rogue.read(s);
      await paying;
      assert.equal(r.error, null, `${id}: ${String(r.error)}`);
      const bill = rogue.billFor(id);
      const trailer = s.trailer as { usage: { completionTokens: number } };
      assert.equal(
        trailer.usage.completionTokens,
        bill.usage.completionTokens,
        'END carries the billed usage',
      );
      if (stream) {
        const delivered = r.parts.filter((p) => partCarriesOutput(p)).length;
        assert.ok(
          bill.usage.completionTokens <= delivered + SILENT_TOKENS_PER_CHOICE,
          `${id}: beyond delivery`,
        );
      } else {
        const bytes = r.parts.reduce((n, p) => n + responseOutputBytes(p), 0);
        assert.ok(bill.usage.completionTokens <= bytes + SILENT_TOKENS_PER_CHOICE, `${id}: beyond delivery`);
      }
      count(stream ? 'stream paid' : 'reply paid');
      return 'ok' as const;
    };

    /** A stream reset after a few tokens: billed for at least what reached it; it pays or rejects. */
    const reset = async () => {
      await settleUnsigned();
      if (expectRefused()) return refusedRequest();
      const id = freshId();
      const maxTokens = rng.int(10, 60);
      const after = rng.int(1, 6);
      const { stream } = rogue.open(call({ maxTokens }), id);
      let received = 0;
      for await (const part of stream) {
        if (partCarriesOutput(part)) received++;
        if (received === after) break;
      }
      stream.reset(new CancelledError());
      const bill = await gotBill(id, maxTokens);
      assert.ok(bill.usage.completionTokens >= received, `${id}: a token it received is not on the bill`);
      if (!mayStrike() || rng.chance(0.75)) {
        pay([id]);
        count('stream reset, paid');
      } else {
        rogue.session.sendControl({ type: 'pay.reject', requestId: id, reason: 'I reset it' });
        unpaid++;
        count('stream reset, bill rejected');
      }
      return 'ok' as const;
    };

    /** `request.cancel` after a few tokens, then it pays: billed exactly what reached it. */
    const cancel = async () => {
      await settleUnsigned();
      if (expectRefused()) return refusedRequest();
      const id = freshId();
      const maxTokens = rng.int(20, 80);
      const at = rng.int(1, 5);
      const { stream } = rogue.open(call({ maxTokens }), id);
      const paying = gotBill(id, maxTokens).then(() => pay([id]));
      let received = 0;
      for await (const part of stream) {
        if (partCarriesOutput(part)) received++;
        if (received === at) rogue.session.sendControl({ type: 'request.cancel', requestId: id });
      }
      await paying;
      assert.equal(rogue.billFor(id).usage.completionTokens, received, `${id}: billed what reached it`);
      count('cancelled, paid');
      return 'ok' as const;
    };

    /** Two calls with one id at once: the second is refused, the first billed (and paid). */
    const duplicate = async () => {
      await settleUnsigned();
      if (expectRefused()) return refusedRequest();
      const id = freshId();
      const maxTokens = rng.int(5, 30);
      const first = rogue.open(call({ maxTokens }), id);
      const second = rogue.open(call({ maxTokens: 1, stream: false }), id);
      const paying = gotBill(id, maxTokens).then(() => pay([id]));
      const [a, b] = await Promise.all([rogue.read(first.stream), rogue.read(second.stream)]);
      await paying;
      assert.equal(a.error, null);
      assert.equal((b.error as { code?: string }).code, 'duplicate_request_id');
      count('duplicate request id refused');
      return 'ok' as const;
    };

    /** It rejects its bill: the request fails, the worker is paid all the same, a strike. */
    const reject = async () => {
      await settleUnsigned();
      if (expectRefused()) return refusedRequest();
      const id = freshId();
      const maxTokens = rng.int(1, 20);
      const { stream } = rogue.open(call({ maxTokens, stream: rng.chance(0.5) }), id);
      const rejecting = gotBill(id, maxTokens).then(() =>
        rogue.session.sendControl({ type: 'pay.reject', requestId: id, reason: 'no' }),
      );
      const r = await rogue.read(stream);
      await rejecting;
      assert.equal((r.error as { code?: string }).code, 'unpaid_bill');
      unpaid++;
      count('bill rejected');
      return 'ok' as const;
    };

    /** It never answers a bill: the request fails when the proxy's bill timeout fires (later). */
    const leaveUnsigned = async () => {
      if (unsigned) return 'skipped' as const; // one at a time
      await settleUnsigned();
      if (expectRefused()) return refusedRequest();
      const id = freshId();
      const maxTokens = rng.int(1, 20);
      const { stream } = rogue.open(call({ maxTokens, stream: rng.chance(0.5) }), id);
      await gotBill(id, maxTokens);
      unsigned = rogue.read(stream).then((r) => {
        assert.equal((r.error as { code?: string }).code, 'unpaid_bill');
        unpaid++;
      });
      count('bill left unsigned');
      return 'pending' as const;
    };

    /** A charge of its own: any seqno, any total (within its balance, so it keeps being served). */
    const selfCharge = async () => {
      const before = await clientContractState(env.net, rogue.contract);
      const a = account();
      const kind = rng.weighted({ below: 1, equal: 1, plusOne: 2, held: 2, above: 2 });
      const total =
        kind === 'below'
          ? before.charged > 0n
            ? rng.big(0n, before.charged - 1n)
            : 0n
          : kind === 'equal'
            ? before.charged
            : kind === 'plusOne'
              ? before.charged + 1n
              : kind === 'held'
                ? a.authorised
                : maxOf(a.authorised, before.charged) + rng.big(1n, toNano('0.001'));
      const seqno = rng.pick([
        0n,
        before.seqno,
        MAX_SEQNO,
        rng.big(0n, MAX_SEQNO),
        (before.seqno + 1n) & MAX_SEQNO,
      ]);
      const payload = {
        globalId: await env.net.ton!.chain.globalId(),
        contract: rogue.contract,
        seqno,
        total,
      };
      await rogue.wallet.send([
        {
          to: rogue.contract,
          value: toNano('0.1'),
          body: clientChargeBody({ cell: clientAuthCell(payload), signature: rogue.signed(seqno, total) }),
        },
      ]);
      const now = await clientContractState(env.net, rogue.contract);
      // ordered by totals alone: it takes iff above what was charged, whatever the seqno
      assert.equal(now.charged, maxOf(before.charged, total), `self-charge (${kind}) took the wrong amount`);
      if (total > before.charged) selfHigh = maxOf(selfHigh, total);
      await proxyRefresh(account());
      count(`self-charge ${kind}${total > before.charged ? '' : ' (took nothing)'}`);
      return 'ok' as const;
    };

    /** A forced settlement: afterwards the contract has charged what the proxy holds signed, or more only
     * by what the client paid itself. */
    const settle = async () => {
      const before = await clientContractState(env.net, rogue.contract);
      await desk.settleDue(true);
      const d = await clientContractState(env.net, rogue.contract);
      const authorised = account().authorised;
      assert.equal(d.charged, maxOf(authorised, before.charged), 'charged = what the proxy holds signed');
      assert.ok(d.charged - authorised <= maxOf(selfHigh - authorised, 0n), 'charged only what was signed');
      assert.equal(account().unredeemed, 0n);
      count('forced settlement');
      return 'ok' as const;
    };

    /** Nothing in flight, nothing reserved, and the worker accrued exactly what was billed. */
    const checkQuiet = async (label: string) => {
      await until(() => env.net.proxy.counters.inFlight === (unsigned ? 1 : 0), `${label}: in flight`);
      const a = account();
      assert.equal(a.inFlight.size, unsigned ? 1 : 0, `${label}: in flight at the account`);
      if (unsigned) return; // its reservation and accrual wait for the bill timeout
      assert.equal(a.reserved, 0n, `${label}: a reservation leaked`);
      await until(() => {
        const w = workerAccrued(env.net);
        return w.worker + w.proxy - accrued0.worker - accrued0.proxy === billed;
      }, `${label}: the worker accrued ${billed} (every bill, paid or not)`);
    };

    for (step = 0; step < STEPS; step++) {
      const kind = rng.weighted({
        stream: 5,
        reply: 4,
        reset: 2,
        cancel: 2,
        duplicate: 1,
        reject: 0.5,
        unsigned: 0.5,
        selfCharge: 3,
        settle: 2,
      });
      const actions = {
        stream: () => honest(true),
        reply: () => honest(false),
        reset,
        cancel,
        duplicate,
        reject,
        unsigned: leaveUnsigned,
        selfCharge,
        settle,
      };
      if ((kind === 'reject' || kind === 'unsigned') && !mayStrike()) continue;
      await actions[kind]();
      await checkQuiet(`step ${step} (${kind})`);
    }
    // The end: strikes until it is refused, then nothing more is served; a last forced settlement.
    if (unsigned) {
      await unsigned;
      unsigned = null;
    }
    while (unpaid < MAX_UNPAID_BILLS) await reject();
    await refusedRequest();
    await refusedRequest();
    assert.equal(desk.totals.refusals.unpaid_bill, MAX_UNPAID_BILLS, 'exactly 3 unpaid bills counted');
    await settle();
    await checkQuiet('end');
    for (const k of ['stream paid', 'reply paid', 'forced settlement', 'request refused: unpaid_bills']) {
      assert.ok((stats[k] ?? 0) > 0, `the run never did "${k}"`);
    }
    t.diagnostic(
      Object.entries(stats)
        .sort()
        .map(([k, n]) => `${k}: ${n}`)
        .join('; '),
    );
    rogue.close();
  });
});
