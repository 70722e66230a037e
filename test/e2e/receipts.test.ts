import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { loadOrCreateNodeKey } from '../../src/attest/identity.ts';
import type { ClientNode } from '../../src/client/client-node.ts';
import { parseReceipt, type Receipt, verifyReceiptSignature } from '../../src/protocol/receipt.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import { cocoon } from '../cli/run-cocoon.ts';
import { Harness, post } from './harness.ts';

/**
 * Every reply comes with the serving worker's signed receipt: named in `x-cocoon-receipt`, carried in the
 * `cocoon` field (of the JSON reply, of the usage chunk, or of a last chunk when usage was not asked for),
 * kept in the client's log and served at `/v1/receipts/{id}`; `cocoon receipts verify` checks the log.
 */
describe('receipts: signed by the worker, checked, kept and served by the client', () => {
  const h = new Harness();
  let proxy: ProxyNode;
  let client: ClientNode;
  let clientDir: string;
  const ask = {
    model: 'cocoon-tiny',
    messages: [{ role: 'user', content: 'a receipt, please' }],
    max_tokens: 6,
  };
  before(async () => {
    proxy = await h.proxy();
    await h.worker(proxy);
    clientDir = join(h.dataDir, 'receipts-client');
    client = await h.client(proxy, { dataDir: clientDir });
  });
  after(() => h.stop());

  const workerKey = () => proxy.registry.all()[0]!.peer.publicKey;
  const served = async (id: string): Promise<Receipt> => {
    const r = await fetch(`${client.baseUrl}/receipts/${id}`);
    assert.equal(r.status, 200);
    return parseReceipt(((await r.json()) as { receipt: unknown }).receipt);
  };

  test('a JSON reply: the receipt is in the header and the body, signed by the worker, for its usage', async () => {
    const r = await post(`${client.baseUrl}/chat/completions`, ask);
    assert.equal(r.status, 200, r.text);
    const id = r.headers.get('x-cocoon-receipt')!;
    assert.equal(id, r.headers.get('x-request-id'));
    const body = r.json as unknown as { usage: { completion_tokens: number }; cocoon: { receipt: unknown } };
    const receipt = parseReceipt(body.cocoon.receipt);
    assert.equal(receipt.requestId, id);
    assert.ok(verifyReceiptSignature(receipt, workerKey()));
    assert.equal(receipt.usage.completionTokens, body.usage.completion_tokens);
    assert.equal(receipt.proxy, (await loadOrCreateNodeKey(join(h.dataDir, 'proxy-1'))).publicKeyHex);
    assert.deepEqual(await served(id), receipt);
  });

  test('streams: in the usage chunk, or in a last chunk of its own', async () => {
    const openai = new OpenAI({ baseURL: client.baseUrl, apiKey: 'x', maxRetries: 0 });
    for (const include_usage of [true, false]) {
      const stream = await openai.chat.completions.create({
        model: ask.model,
        messages: [{ role: 'user', content: 'a receipt, please' }],
        max_tokens: ask.max_tokens,
        stream: true,
        stream_options: { include_usage },
      });
      let last: unknown = null;
      for await (const chunk of stream) last = chunk;
      const receipt = parseReceipt((last as { cocoon: { receipt: unknown } }).cocoon.receipt);
      assert.ok(verifyReceiptSignature(receipt, workerKey()));
      assert.deepEqual(await served(receipt.requestId), receipt);
    }
  });

  test('an unknown id is a 404 in OpenAI shape', async () => {
    const r = await fetch(`${client.baseUrl}/receipts/no-such-request`);
    assert.equal(r.status, 404);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'receipt_not_found');
  });

  test('`cocoon receipts verify --all` checks the log offline: chain, signatures, attestations', async () => {
    const r = await cocoon('receipts', 'verify', '--all', '--data-dir', clientDir);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /3 receipts/);
  });

  test('receipts: false (with e2e: false) is the explicit choice of none: none asked, shown or kept', async () => {
    const bare = await h.client(proxy, { e2e: false, receipts: false });
    const r = await post(`${bare.baseUrl}/chat/completions`, ask);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-cocoon-receipt'), null);
    assert.equal((r.json as unknown as { cocoon: { receipt?: unknown } }).cocoon.receipt, undefined);
    const openai = new OpenAI({ baseURL: bare.baseUrl, apiKey: 'x', maxRetries: 0 });
    const stream = await openai.chat.completions.create({
      model: ask.model,
      messages: [{ role: 'user', content: 'no receipt' }],
      max_tokens: 6,
      stream: true,
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.ok(chunks.length > 0 && chunks.every((c) => c.choices.length > 0), 'no receipt-only last chunk');
    assert.equal(bare.stats().receipts, 'off (nothing binds a reply to the worker checked)');
  });

  test('receipts: false with end-to-end encryption on is refused at start-up', async () => {
    await assert.rejects(h.client(proxy, { receipts: false }), /receipts: false needs e2e: false/);
  });
});
