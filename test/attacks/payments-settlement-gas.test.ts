import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Address, toNano } from '@ton/core';
import { clientChargeBody } from '../../src/chain/contracts/client-contract.ts';
import { proxyCloseBody, proxyRequestCloseBody } from '../../src/chain/contracts/proxy-contract.ts';
import type { TonPayments } from '../../src/chain/payments-chain.ts';
import { MAX_MESSAGES_PER_TRANSFER, type WalletSender } from '../../src/chain/wallet.ts';
import type { LocalNetwork } from '../../src/local/local-network.ts';
import { LOCAL_PARAMS } from '../../src/local/local-ton.ts';
import { clientAuthCell } from '../../src/pay/signed-messages.ts';
import { clientContractState, paidNetwork, paidSuite } from './paid-network.ts';
import { call, proxyContractOf, RogueClient, walletOf } from './rogue-client.ts';

/**
 * Settlement that burns gas forever: accounts that can never be redeemed were re-charged about every
 * second, and all due accounts went into one wallet transfer, which the wallet refuses above 255 messages,
 * so past 255 due accounts nobody was settled again.
 */
describe('attack: make the proxy burn gas on settlement, or stop it settling anyone', () => {
  const env = paidSuite(1);

  test('more due accounts than one transfer can carry are settled in several transfers', async () => {
    const chain = (env.net.proxy.billing!.desk as unknown as { opts: { chain: TonPayments } }).opts.chain;
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
    const rogue = await RogueClient.join(env.net, join(env.dir, 'payer'), toNano('3'));
    const desk = env.net.proxy.billing!.desk;
    const chain = (desk as unknown as { opts: { chain: TonPayments } }).opts.chain;
    const wallet = (chain as unknown as { sender: WalletSender }).sender;
    // It is billed and signs, then pays what it signed itself, before the proxy settles.
    const { stream, requestId } = rogue.open(call({ stream: false, maxTokens: 4 }));
    const paid = rogue.waitForBill(requestId).then(() => rogue.sign([requestId]));
    await rogue.read(stream);
    await paid;
    const total = desk.accountOf(rogue.contract)!.authorised;
    const payload = {
      globalId: await env.net.ton!.chain.globalId(),
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

/**
 * A charge that cannot take (here: the proxy contract closed, so the proceeds bounce back and the client
 * contract puts them back) is not sent again every second: it backs off, and costs no more gas meanwhile.
 */
describe('attack: an account whose charge always fails burns no gas forever', () => {
  // Chain time starts in the past, so that passing the close delay keeps it before the wall clock that
  // wallets date their messages by.
  let chainNow = Math.floor(Date.now() / 1000) - 3 * LOCAL_PARAMS.proxyCloseDelay;
  let net: LocalNetwork;
  let stop: () => Promise<void>;
  let dir: string;
  before(async () => {
    ({ net, stop, dir } = await paidNetwork(1, () => chainNow));
  });
  after(() => stop());

  test('after one charge that took nothing, the account is left alone', async () => {
    const rogue = await RogueClient.join(net, join(dir, 'stuck'), toNano('3'));
    const desk = net.proxy.billing!.desk;
    const { stream, requestId } = rogue.open(call({ stream: false, maxTokens: 4 }));
    const paid = rogue.waitForBill(requestId).then(() => rogue.sign([requestId]));
    await rogue.read(stream);
    await paid;
    rogue.close();
    // The proxy's owner closes its contract (request_close, the delay, close).
    const owner = await walletOf(net, join(dir, 'proxy'));
    const proxyContract = proxyContractOf(net);
    await owner.send([{ to: proxyContract, value: toNano('0.1'), body: proxyRequestCloseBody() }]);
    chainNow += LOCAL_PARAMS.proxyCloseDelay + 1;
    await owner.send([{ to: proxyContract, value: toNano('0.1'), body: proxyCloseBody() }]);
    const chain = (desk as unknown as { opts: { chain: TonPayments } }).opts.chain;
    const wallet = (chain as unknown as { sender: WalletSender }).sender;
    const before = await wallet.seqno();
    assert.equal(await desk.settleDue(true), 1, 'one charge sent');
    assert.equal(desk.totals.chargesFailed, 1, 'it took nothing');
    assert.equal((await clientContractState(net, rogue.contract)).charged, 0n, 'the client contract kept it');
    for (let i = 0; i < 5; i++) assert.equal(await desk.settleDue(true), 0, 'not again during the back-off');
    assert.equal((await wallet.seqno()) - before, 1, 'one transfer in all');
  });
});
