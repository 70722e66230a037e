import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Address } from '@ton/core';
import { type E2EKey, generateE2EKey } from '../../src/attest/e2e-key.ts';
import { generateNodeKey, type NodeKey } from '../../src/attest/identity.ts';
import { BadGatewayError } from '../../src/errors.ts';
import type { Session } from '../../src/net/session.ts';
import type { Stream } from '../../src/net/stream.ts';
import type { WorkerAccount } from '../../src/pay/worker-account.ts';
import type { InferenceCall } from '../../src/protocol/inference.ts';
import { ReplyHasher, sha256Hex, signReceipt } from '../../src/protocol/receipt.ts';
import { openRequest, type ReplySealer, requestAad } from '../../src/protocol/sealing/index.ts';
import { paidSuite } from './paid-network.ts';
import { until } from './rogue-client.ts';
import { rogueWorker } from './rogue-worker.ts';

/**
 * Attack: a worker pads its sealed reply. The proxy cannot read sealed parts, so it counts each stream
 * part as a token (and each byte of a whole reply): a worker that sends one token of text and twenty empty
 * parts, and signs usage for 21 completion tokens, gets a bill the proxy and the envelope allow. The client
 * reads the reply, sees one token's worth, and disputes with the proof (the reply's secret and the sealed
 * parts as relayed). The proxy upholds it: nothing is charged, the worker accrues nothing and is cut off,
 * and the client is not struck: its next request is served and paid as usual.
 */
const MODEL = 'cocoon-padded';
const chunk = (content: string) =>
  JSON.stringify({
    id: 'p',
    object: 'chat.completion.chunk',
    created: 1,
    model: MODEL,
    choices: [{ index: 0, delta: { content }, finish_reason: null }],
  });
const usageChunk = JSON.stringify({
  id: 'p',
  object: 'chat.completion.chunk',
  created: 1,
  model: MODEL,
  choices: [],
  usage: { prompt_tokens: 5, completion_tokens: 21, total_tokens: 26 },
});
const wholeReply = JSON.stringify({
  id: 'p',
  object: 'chat.completion',
  created: 1,
  model: MODEL,
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 5, completion_tokens: 21, total_tokens: 26 },
});
const PADDING_PARTS = 20;
const claimed = { promptTokens: 5, cachedTokens: 0, completionTokens: 21, reasoningTokens: 0 };

type Mode = 'stream' | 'whole' | 'cut';

/** Serves each call as the padding worker would: sealed properly, with a valid receipt for the padded claim. */
function servePadded(rogue: Session, key: NodeKey, e2e: E2EKey, mode: Mode): void {
  rogue.on('stream', (s: Stream) => void serve(s).catch(() => s.reset(new BadGatewayError('rogue failed'))));
  async function serve(s: Stream): Promise<void> {
    const h = s.header as { requestId: string; request: InferenceCall; certificate: string };
    const body = await s.readAll();
    const aad = requestAad({
      requestId: h.requestId,
      model: h.request.model,
      workerCertHash: Buffer.from(h.certificate, 'hex'),
    });
    const { reply } = await openRequest({ key: e2e.keyPair, sealed: body, aad, maxBytes: body.length });
    const hasher = new ReplyHasher();
    const send = async (sealer: ReplySealer, event: string) => {
      hasher.update(Buffer.from(event));
      const p = s.write(sealer.seal(Buffer.from(event)));
      if (p) await p;
    };
    if (mode === 'whole') await send(reply, wholeReply);
    else {
      await send(reply, chunk('Hello'));
      for (let i = 0; i < PADDING_PARTS; i++) await send(reply, chunk(''));
    }
    if (mode === 'cut') {
      // Dies after the padding: the proxy bills the parts it relayed.
      s.reset(new BadGatewayError('engine died'));
      return;
    }
    const tail = mode === 'stream' ? usageChunk : '';
    if (tail) hasher.update(Buffer.from(tail));
    const receipt = signReceipt(
      {
        network: null,
        proxyContract: null,
        proxy: '00'.repeat(32),
        seqno: '1',
        requestId: h.requestId,
        requestHash: sha256Hex(body),
        replyHash: hasher.digest(),
        model: MODEL,
        image: '00'.repeat(32),
        tier: 'dev',
        certificate: h.certificate,
        usage: claimed,
        coefficient: 1000,
        cost: null,
        time: Date.now(),
      },
      key,
    );
    const end = reply.seal(Buffer.from(tail), true).toString('base64');
    s.end({ usage: claimed, end, receipt, worker: 'padder' });
  }
}

describe('attack: a worker pads its sealed reply to be paid for empty parts', () => {
  const env = paidSuite();

  const ask = (model: string, stream: boolean) =>
    fetch(`${env.net.client.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 50, stream }),
    });

  const cases: [Mode, RegExp][] = [
    ['stream', /usage_disputed/],
    ['whole', /usage_disputed/],
    ['cut', /worker_failed_mid_stream/],
  ];
  for (const [mode, expected] of cases) {
    test(`${mode}: disputed and upheld; nothing charged, the worker unpaid and cut off, the client not struck`, async () => {
      const { net } = env;
      const desk = net.proxy.billing!.desk;
      const key = generateNodeKey();
      const e2eKey = await generateE2EKey();
      const rogue = await rogueWorker(net.proxy, MODEL, {
        key,
        e2eKey,
        name: `padder-${mode}`,
        coefficient: 1000,
        maxConcurrent: 4,
        payoutAddress: new Address(0, Buffer.alloc(32, 7)).toString(),
      });
      servePadded(rogue, key, e2eKey, mode);
      const gone = new Promise((r) => rogue.once('close', r));
      await until(() => net.proxy.registry.all().some((w) => w.name === `padder-${mode}`), 'rogue joined');
      const account = net.proxy.registry.all().find((w) => w.name === `padder-${mode}`)!
        .account as WorkerAccount;
      const payer = net.client.payments!.payer;
      const signedBefore = payer.authorisedTotal;
      const upheldBefore = desk.stats().refusals.dispute_upheld ?? 0;
      const unpaidBefore = desk.stats().refusals.unpaid_bill ?? 0;

      const res = await ask(MODEL, mode !== 'whole');
      const text = await res.text();
      if (mode === 'whole') assert.equal(res.status, 502, text);
      else assert.match(text, /Hello/, 'the streamed text reached the caller before the bill');
      assert.match(text, expected);
      assert.match(text, /[Nn]othing is charged/);

      await gone;
      assert.equal(payer.authorisedTotal, signedBefore, 'the client signed nothing');
      assert.equal(account.accruedWorker, 0n, 'the worker accrued nothing');
      assert.equal(account.accruedProxy, 0n);
      assert.equal(desk.stats().refusals.dispute_upheld, upheldBefore + 1);
      assert.equal(desk.stats().refusals.unpaid_bill ?? 0, unpaidBefore, 'no bill was left unpaid');
      assert.ok((net.proxy.refusals.usage_disputed ?? 0) >= 1, 'the worker was cut off for it');
      assert.ok(net.client.disputeTotals().upheld >= 1);

      // Not struck: the honest worker's next reply is served and paid as usual.
      const honest = await ask('cocoon-tiny', false);
      assert.equal(honest.status, 200, await honest.clone().text());
      const cost = ((await honest.json()) as { usage: { total_cost: number } }).usage.total_cost;
      assert.equal(payer.authorisedTotal - signedBefore, BigInt(cost));
    });
  }
});
