import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { generateNodeKey } from '../../src/attest/identity.ts';
import { makeCredentials, trustSetup } from '../../src/attest/trust-setup.ts';
import type { ClientNode } from '../../src/client/client-node.ts';
import type { Session } from '../../src/net/session.ts';
import { dialPeer } from '../../src/net/tls.ts';
import { usageBeyondBound } from '../../src/pay/pricing.ts';
import { type InferenceRequest, maxCompletionTokens } from '../../src/protocol/inference.ts';
import type { InferenceTrailer } from '../../src/protocol/messages.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import type { WorkerNode } from '../../src/worker/worker-node.ts';
import { Harness, until } from '../e2e/harness.ts';
import { FakeVllmEngine } from '../fakes/fake-vllm.ts';
import { openPlainCall } from './plain-call.ts';

/**
 * Attack: a client whose call says one thing (maxTokens 1, n 1: what the proxy reserves and bounds by)
 * and whose body says another (max_tokens 200, n 8, beam search, stream, …). Before the fix the worker
 * forwarded the body: the client got 200 tokens on a 1-token bill, and the honest worker reported 200, was
 * cut off by the proxy (usage over bound) and every other stream it carried died with it.
 *
 * Real daemons (proxy, worker with the openai-compatible backend over the fake engine, and one with the
 * built-in model, an honest client); the dishonest client is a properly attested client session that opens
 * a hand-made call on the proxy.
 */

const dev = trustSetup('dev');

async function rogueClient(proxy: ProxyNode): Promise<Session> {
  const { credentials } = await makeCredentials(generateNodeKey(), 'client', dev.provider);
  const { session } = await dialPeer({
    host: '127.0.0.1',
    port: proxy.clientPort,
    credentials,
    trust: { verifiers: dev.verifiers, roles: ['proxy'], minTier: 'dev' },
    session: { hello: { role: 'client', name: 'dishonest' } },
  });
  return session;
}

interface Reply {
  parts: Record<string, unknown>[];
  trailer: InferenceTrailer;
  headerBytes: number;
}

/** Opens one call on the proxy and reads it to its end. */
async function rawCall(session: Session, request: InferenceRequest, requestId: string): Promise<Reply> {
  const s = openPlainCall(session, requestId, request);
  const parts: Record<string, unknown>[] = [];
  for await (const p of s) parts.push(JSON.parse(p.toString('utf8')));
  return {
    parts,
    trailer: s.trailer as InferenceTrailer,
    headerBytes: s.headerBytes + Buffer.byteLength(JSON.stringify(request.body)),
  };
}

/** Every output part, per choice index: text and number of parts (a stream), or the whole text (a reply). */
function output(parts: Record<string, unknown>[]): Map<number, { parts: number; text: string }> {
  const m = new Map<number, { parts: number; text: string }>();
  for (const p of parts) {
    for (const c of (p.choices ?? []) as Record<string, unknown>[]) {
      const i = c.index as number;
      const e = m.get(i) ?? { parts: 0, text: '' };
      const d = (c.delta ?? c.message) as { content?: string } | undefined;
      const t = (typeof c.text === 'string' ? c.text : '') + (d?.content ?? '');
      if (t) e.parts++;
      e.text += t;
      m.set(i, e);
    }
  }
  return m;
}

const base = (
  model: string,
  over: Partial<InferenceRequest>,
  body: Record<string, unknown>,
): InferenceRequest => ({
  kind: 'chat',
  model,
  body: { model, messages: [{ role: 'user', content: 'tell me everything' }], ...body },
  stream: false,
  includeUsage: false,
  maxTokens: 1,
  n: 1,
  timeoutMs: 20_000,
  maxCoefficient: 4000,
  minTier: 'dev',
  ...over,
});

/** What the body claims, all of it more than the call allows. */
const greedy = {
  max_tokens: 200,
  max_completion_tokens: 200,
  n: 8,
  use_beam_search: true,
  n_predict: 200,
  stream_options: { include_usage: false },
};

describe('attack: the body and the call disagree; the call wins, the honest worker stays', () => {
  const h = new Harness();
  const engine = new FakeVllmEngine({ tokens: 200, servedModel: 'engine-model' });
  let proxy: ProxyNode;
  let worker: WorkerNode;
  let builtin: WorkerNode;
  let client: ClientNode;
  let rogue: Session;

  before(async () => {
    const upstream = await engine.start();
    proxy = await h.proxy();
    worker = await h.worker(proxy, {
      name: 'honest-engine',
      backend: { kind: 'openai-compatible', upstream, upstreamModel: 'engine-model' },
      models: ['m'],
    });
    builtin = await h.worker(proxy, { name: 'honest-builtin', models: ['cocoon-tiny'] });
    client = await h.client(proxy);
    rogue = await rogueClient(proxy);
  });
  after(async () => {
    rogue?.close();
    await h.stop();
    await engine.close();
  });

  /** The proxy's own check of a report, and the worker sessions untouched. */
  function assertHonestWorkerKept(r: Reply, request: InferenceRequest): void {
    assert.equal(usageBeyondBound(r.trailer.usage, r.headerBytes, maxCompletionTokens(request)), null);
    assert.equal(proxy.refusals.usage_over_bound, undefined, JSON.stringify(proxy.refusals));
    assert.equal(proxy.registry.size, 2, 'both workers still registered');
    for (const w of [worker, builtin]) assert.equal(w.connectedProxies, 1);
  }

  test('stream: the engine gets the call’s bounds; the client gets 1 token, billed 1; other streams survive', async () => {
    // An honest caller's long stream on the same worker, in flight while the attack runs.
    engine.options.tokenDelayMs = 5;
    const openai = new OpenAI({ baseURL: client.baseUrl, apiKey: 'x', maxRetries: 0 });
    const honest = (async () => {
      const s = await openai.chat.completions.create({
        model: 'm',
        messages: [{ role: 'user', content: 'a long answer please' }],
        max_tokens: 60,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      let completion = 0;
      for await (const c of s) {
        text += c.choices[0]?.delta?.content ?? '';
        if (c.usage) completion = c.usage.completion_tokens;
      }
      return { text, completion };
    })();
    await until(() => engine.inFlight === 1, 'the honest stream runs on the engine');
    const bodiesBefore = engine.bodies.length;

    const request = base('m', { stream: true }, { ...greedy, stream: true });
    const r = await rawCall(rogue, request, 'attack-stream');

    const sent = engine.bodies[bodiesBefore]!;
    assert.equal(sent.max_tokens, 1);
    assert.equal(sent.n, 1);
    assert.equal(sent.stream, true);
    assert.deepEqual(sent.stream_options, { include_usage: true });
    for (const k of ['max_completion_tokens', 'best_of', 'use_beam_search', 'n_predict'])
      assert.ok(!(k in sent), k);

    const out = output(r.parts);
    assert.deepEqual([...out.keys()], [0], 'one choice');
    assert.equal(out.get(0)!.parts, 1, 'one token delivered');
    assert.equal(r.trailer.usage.completionTokens, 1, 'billed for the one token');
    assertHonestWorkerKept(r, request);

    const done = await honest;
    assert.equal(done.completion, 60, 'the honest stream completed on the same worker');
    assert.equal(done.text.split(' ').length - 1, 60);
    engine.options.tokenDelayMs = 0;
  });

  test('non-stream asking to stream in its body: one reply, one choice, one token', async () => {
    const bodiesBefore = engine.bodies.length;
    const request = base('m', {}, { ...greedy, stream: true });
    const r = await rawCall(rogue, request, 'attack-reply');
    const sent = engine.bodies[bodiesBefore]!;
    assert.equal(sent.stream, false);
    assert.equal(sent.max_tokens, 1);
    assert.equal(sent.n, 1);
    assert.ok(!('stream_options' in sent));
    // The whole reply travels as one part; the worker's trailer reaches the caller whole.
    assert.equal(r.parts.length, 1);
    assert.equal(r.trailer.reply?.tail, undefined);
    const reply = r.parts[0] as {
      choices: { message: { content: string } }[];
      usage: { completion_tokens: number };
    };
    assert.equal(reply.choices.length, 1);
    assert.equal(reply.choices[0]!.message.content, 'w0');
    assert.equal(reply.usage.completion_tokens, 1);
    assert.equal(r.trailer.usage.completionTokens, 1);
    assertHonestWorkerKept(r, request);
  });

  test('the built-in model takes n and max_tokens from the call too', async () => {
    const request = base('cocoon-tiny', { stream: true, maxTokens: 3 }, { ...greedy, stream: true });
    const r = await rawCall(rogue, request, 'attack-builtin');
    const out = output(r.parts);
    assert.deepEqual([...out.keys()], [0], 'body n = 8 ignored: one choice');
    assert.ok(r.trailer.usage.completionTokens <= 3);
    assertHonestWorkerKept(r, request);
  });

  test('a completion batch the call does not pay for is refused before any engine work', async () => {
    const bodiesBefore = engine.bodies.length;
    const request: InferenceRequest = {
      ...base('m', {}, {}),
      kind: 'completion',
      body: { model: 'm', prompt: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], max_tokens: 1 },
    };
    const s = openPlainCall(rogue, 'attack-batch', request);
    await assert.rejects(
      (async () => {
        for await (const _ of s);
      })(),
      (e: { status: number; message: string }) => e.status === 400 && /batch of 8 prompts/.test(e.message),
    );
    assert.equal(engine.bodies.length, bodiesBefore, 'the engine never saw it');
    assert.equal(proxy.registry.size, 2);
  });

  test('best_of beyond the paid choices is refused by both workers before any engine work', async () => {
    const bodiesBefore = engine.bodies.length;
    for (const model of ['m', 'cocoon-tiny']) {
      const s = openPlainCall(rogue, `attack-best-of-${model}`, base(model, {}, { best_of: 8 }));
      await assert.rejects(
        (async () => {
          for await (const _ of s);
        })(),
        (e: { status: number; param: string }) => e.status === 400 && e.param === 'best_of',
      );
    }
    assert.equal(engine.bodies.length, bodiesBefore, 'the engine never saw it');
    assert.equal(proxy.registry.size, 2);
  });

  test('after all that, the network serves honest callers on both workers', async () => {
    const openai = new OpenAI({ baseURL: client.baseUrl, apiKey: 'x', maxRetries: 0 });
    for (const model of ['m', 'cocoon-tiny']) {
      const r = await openai.chat.completions.create({
        model,
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 5,
        n: 2,
      });
      assert.equal(r.choices.length, 2);
      assert.ok(r.usage!.completion_tokens <= 10);
    }
    assert.equal(proxy.refusals.usage_over_bound, undefined);
  });
});
