import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Address, toNano } from '@ton/core';
import OpenAI from 'openai';
import { ClientContract } from '../../src/chain/contracts/client-contract.ts';
import { Op } from '../../src/chain/contracts/opcodes.ts';
import { ProxyContract } from '../../src/chain/contracts/proxy-contract.ts';
import { buildClient } from '../../src/config/build-nodes.ts';
import { clientConfigSchema } from '../../src/config/config.ts';
import { type LocalNetwork, startLocalNetwork } from '../../src/local/local-network.ts';
import { LOCAL_PARAMS } from '../../src/local/local-ton.ts';
import { requestCost } from '../../src/pay/pricing.ts';
import { Harness, post } from './harness.ts';

/** Sums the `worker_paid` notices a wallet received: what the worker owner was actually paid. */
async function workerPaidTo(net: LocalNetwork, owner: Address): Promise<bigint> {
  const txs = await net.ton!.chain.client.getTransactions(owner, { limit: 100 });
  let sum = 0n;
  for (const tx of txs) {
    const m = tx.inMessage;
    if (m?.info.type !== 'internal') continue;
    const s = m.body.beginParse();
    if (s.remainingBits >= 32 && s.loadUint(32) === Op.workerPaid) sum += m.info.value.coins;
  }
  return sum;
}

describe('payments on the embedded TON chain', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-pay-'));
  let net: LocalNetwork;
  let openai: OpenAI;

  before(async () => {
    net = await startLocalNetwork({
      dataDir: dir,
      logLevel: 'silent',
      tokenDelayMs: 2, // streams last long enough to be cut mid-way
      // Thresholds far away: this test settles explicitly.
      payments: {
        settleIntervalSeconds: 3600,
        payoutIntervalSeconds: 3600,
        workerPayoutIntervalSeconds: 3600,
      },
    });
    openai = new OpenAI({ baseURL: net.client.baseUrl, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await net?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('every usage carries its cost; after settlement the chain moved exactly those sums', async () => {
    const desk = net.proxy.billing!.desk;
    const proxyContract = Address.parse(net.proxy.billing!.proxyContract);
    const clientContract = net.client.payments!.payer.account!;
    const chain = net.ton!.chain;
    const clientBefore = await chain.open(ClientContract.fromAddress(clientContract)).getClientData();
    const proxyBefore = await chain.open(ProxyContract.fromAddress(proxyContract)).getProxyData();

    let total = 0n;
    for (let i = 0; i < 6; i++) {
      if (i % 2 === 0) {
        const r = await openai.chat.completions.create({
          model: 'cocoon-tiny',
          messages: [{ role: 'user', content: `question number ${i}` }],
          max_tokens: 5 + i,
        });
        const u = r.usage as unknown as Record<string, number>;
        assert.equal(u.total_cost, u.prompt_cost! + u.completion_cost!);
        assert.equal(
          BigInt(u.total_cost!),
          BigInt(u.total_tokens!) * LOCAL_PARAMS.pricePerToken,
          'coefficient 1000, multipliers 1×: one price per token',
        );
        total += BigInt(u.total_cost!);
      } else {
        const stream = await openai.chat.completions.create({
          model: 'cocoon-tiny',
          messages: [{ role: 'user', content: `streamed question ${i}` }],
          max_tokens: 5 + i,
          stream: true,
          stream_options: { include_usage: true },
        });
        let cost: number | undefined;
        for await (const chunk of stream) {
          const u = chunk.usage as unknown as Record<string, number> | null | undefined;
          if (u) cost = u.total_cost;
        }
        assert.ok(cost && cost > 0, 'the usage chunk of a stream carries total_cost');
        total += BigInt(cost);
      }
    }
    const workerShare = (total / LOCAL_PARAMS.pricePerToken) * LOCAL_PARAMS.workerFeePerToken;

    assert.equal(await desk.settleDue(true), 1, 'one client settled, in one transfer');
    await desk.signPayouts();
    await new Promise((r) => setTimeout(r, 200)); // the payout reaches the worker over its session
    assert.equal(await net.worker.payments!.redeemDue(true), 1);

    const clientAfter = await chain.open(ClientContract.fromAddress(clientContract)).getClientData();
    const proxyAfter = await chain.open(ProxyContract.fromAddress(proxyContract)).getProxyData();
    assert.equal(clientAfter.charged - clientBefore.charged, total);
    assert.equal(clientBefore.balance - clientAfter.balance, total);
    const commissionOf = (d: typeof proxyAfter) => d.commission + d.maturingNew + d.maturingOld; // matured or maturing
    assert.equal(commissionOf(proxyAfter) - commissionOf(proxyBefore), total - workerShare);
    const owner = Address.parse(net.worker.info().payoutAddress!);
    assert.equal(await workerPaidTo(net, owner), workerShare, "the worker owner's wallet received its fee");
  });

  test('/metrics shows the money: billed and signed totals, wallet and contract balances on-chain', async () => {
    const sample = async (url: string, name: string, label = '') => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const line = text
        .split('\n')
        .find((l) => l.startsWith(name) && l.includes(label) && !l.startsWith('#'));
      return line ? Number(line.split(' ').at(-1)) : null;
    };
    const proxy = net.proxy.statsUrl!;
    const client = net.client.url;
    assert.ok(((await sample(proxy, 'cocoon_billed_ton_total')) ?? 0) > 0);
    assert.ok(((await sample(proxy, 'cocoon_wallet_balance_ton')) ?? 0) > 0);
    assert.ok(((await sample(proxy, 'cocoon_proxy_contract_ton', 'part="stake"')) ?? 0) > 0);
    assert.ok(((await sample(client, 'cocoon_authorised_ton_total')) ?? 0) > 0);
    assert.ok(((await sample(client, 'cocoon_client_contract_ton', 'part="stake"')) ?? 0) > 0);
    assert.ok(((await sample(client, 'cocoon_wallet_balance_ton')) ?? 0) > 0);
    assert.ok(((await sample(net.worker.statsUrl!, 'cocoon_wallet_balance_ton')) ?? 0) > 0);
  });

  test('a request whose worst case exceeds the credit is refused with 402 before any worker runs', async () => {
    const before = net.worker.counters.total;
    const res = await post(`${net.client.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'write a very long book' }],
      max_tokens: 900_000, // × coefficient 4 × 1000 nanoton = 3.6 TON, over the 1 TON stake
    });
    assert.equal(res.status, 402);
    const body = res.json as { error: { type: string; code: string; message: string } };
    assert.equal(body.error.type, 'insufficient_quota');
    assert.equal(body.error.code, 'insufficient_balance');
    assert.match(body.error.message, /Insufficient balance: this request may cost up to 3\.6\d+ TON/);
    assert.equal(net.worker.counters.total, before, 'no worker ran');
    // …and a modest request still goes through.
    const ok = await post(`${net.client.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'short' }],
      max_tokens: 3,
    });
    assert.equal(ok.status, 200);
  });

  test('a paying client facing a proxy that takes no payments answers 503 and keeps running', async () => {
    const h = new Harness();
    try {
      const free = await h.proxy();
      const clientDir = join(dir, 'client-of-free-proxy');
      await net.ton!.fundNode(clientDir, toNano('1'));
      const c = await buildClient(
        clientConfigSchema.parse({
          dataDir: clientDir,
          httpPort: 0,
          proxy: `127.0.0.1:${free.clientPort}`,
          chainEndpoint: net.ton!.endpoint,
          root: net.ton!.root.toString(),
          logLevel: 'silent',
        }),
      );
      await c.start();
      after(() => c.stop());
      await new Promise((r) => setTimeout(r, 300)); // it connects, finds no proxy contract, hangs up
      const res = await post(`${c.baseUrl}/chat/completions`, {
        model: 'cocoon-tiny',
        messages: [{ role: 'user', content: 'hi' }],
      });
      assert.equal(res.status, 503);
      assert.equal((await fetch(`${c.url}/jsonstats`)).status, 200, 'the client still serves');
    } finally {
      await h.stop();
    }
  });

  test('a client that takes its proxies from the root finds the registered one and pays it', async () => {
    const clientDir = join(dir, 'client-from-root');
    await net.ton!.fundNode(clientDir, toNano('3'));
    const proxyContract = Address.parse(net.proxy.billing!.proxyContract);
    await net.ton!.ensureDeposit(clientDir, proxyContract, toNano('1'));
    const c = await buildClient(
      clientConfigSchema.parse({
        dataDir: clientDir,
        httpPort: 0,
        proxy: '127.0.0.1:1', // nothing there: the root's registry is what counts
        proxiesFromRoot: true,
        chainEndpoint: net.ton!.endpoint,
        root: net.ton!.root.toString(),
        logLevel: 'silent',
      }),
    );
    await c.start();
    after(() => c.stop());
    assert.deepEqual(
      c.proxies.map((p) => p.address),
      [`127.0.0.1:${net.proxy.clientPort}`],
    );
    await c.waitForProxy();
    await c.payments!.ready();
    const r = await post(`${c.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 3,
    });
    assert.equal(r.status, 200, r.text);
    assert.ok(c.payments!.payer.authorisedTotal > 0n);
  });

  // Last: it cuts the worker's connection (the worker reconnects by itself).
  test('a stream cut after some tokens: an error event, and only the delivered tokens are billed', async () => {
    const desk = net.proxy.billing!.desk;
    const payer = net.client.payments!.payer;
    const billedBefore = desk.totals.billed;
    const signedBefore = payer.authorisedTotal;
    const stream = await openai.chat.completions.create({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'tell me a long story' }],
      max_tokens: 400,
      stream: true,
    });
    let delivered = 0;
    await assert.rejects(
      async () => {
        for await (const c of stream) {
          if (c.choices[0]?.delta?.content && ++delivered === 5) {
            // The worker's connection drops as if it crashed.
            for (const s of net.worker.sessions()) s.socket.destroy();
          }
        }
      },
      (e: Error) =>
        /failed after \d+ tokens were delivered.*Only the \d+ delivered tokens are charged/.test(e.message),
    );
    const charged = desk.totals.billed - billedBefore;
    const expected = requestCost(
      { promptTokens: 0, cachedTokens: 0, completionTokens: delivered, reasoningTokens: 0 },
      1000,
      payer.prices,
    ).totalCost;
    assert.ok(delivered >= 5);
    assert.equal(charged, expected, `billed ${charged} for ${delivered} delivered tokens`);
    assert.equal(payer.authorisedTotal - signedBefore, expected, 'the client signed exactly that');
    assert.equal(net.proxy.counters.inFlight, 0);
  });
});
