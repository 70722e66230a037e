import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Address, toNano } from '@ton/core';
import { clientChargeBody } from '../../src/chain/contracts/client-contract.ts';
import type { TonPayments } from '../../src/chain/payments-chain.ts';
import { MAX_MESSAGES_PER_TRANSFER, type WalletSender } from '../../src/chain/wallet.ts';
import type { LocalNetwork } from '../../src/local/local-network.ts';
import { clientAuthCell } from '../../src/pay/signed-messages.ts';
import { paidNetwork } from './paid-network.ts';
import { call, RogueClient } from './rogue-client.ts';

/**
 * Settlement that burns gas forever: accounts that can never be redeemed were re-charged about every
 * second, and all due accounts went into one wallet transfer, which the wallet refuses above 255 messages,
 * so past 255 due accounts nobody was settled again.
 */
describe('attack: make the proxy burn gas on settlement, or stop it settling anyone', () => {
  let net: LocalNetwork;
  let stop: () => Promise<void>;
  let dir: string;
  before(async () => {
    ({ net, stop, dir } = await paidNetwork(1));
  });
  after(() => stop());

  test('more due accounts than one transfer can carry are settled in several transfers', async () => {
    const chain = (net.proxy.billing!.desk as unknown as { opts: { chain: TonPayments } }).opts.chain;
    const wallet = (chain as unknown as { sender: WalletSender }).sender;
    const before = await wallet.seqno();
    const items = Array.from({ length: MAX_MESSAGES_PER_TRANSFER + 45 }, (_, i) => ({
      contract: new Address(0, Buffer.alloc(32, (i % 250) + 1).fill(i >> 8, 0, 1)),
      auth: { seqno: 1n, total: 1n, signature: Buffer.alloc(64) },
    }));
    await chain.redeemClientAuths(items);
    assert.equal((await wallet.seqno()) - before, 2, 'two transfers: 255 messages, then 45');
  });

  test('a contract that has paid everything signed costs no gas: nothing is sent for it', async () => {
    const rogue = await RogueClient.join(net, join(dir, 'payer'), toNano('3'));
    const desk = net.proxy.billing!.desk;
    const chain = (desk as unknown as { opts: { chain: TonPayments } }).opts.chain;
    const wallet = (chain as unknown as { sender: WalletSender }).sender;
    // It is billed and signs, then pays what it signed itself, before the proxy settles.
    const { stream, requestId } = rogue.open(call({ stream: false, maxTokens: 4 }));
    const paid = rogue.waitForBill(requestId).then(() => rogue.sign([requestId]));
    await rogue.read(stream);
    await paid;
    const total = desk.accountOf(rogue.contract)!.authorised;
    const payload = {
      globalId: await net.ton!.chain.globalId(),
      contract: rogue.contract,
      seqno: 99n,
      total,
    };
    await rogue.wallet.send([
      {
        to: rogue.contract,
        value: toNano('0.1'),
        body: clientChargeBody({ cell: clientAuthCell(payload), signature: rogue.signed(99n, total) }),
      },
    ]);
    const seqno = await wallet.seqno();
    for (let i = 0; i < 3; i++) assert.equal(await desk.settleDue(true), 0);
    assert.equal(await wallet.seqno(), seqno, 'the proxy sent nothing');
    rogue.close();
  });
});
