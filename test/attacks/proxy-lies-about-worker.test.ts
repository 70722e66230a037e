import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createNodeCertificate } from '../../src/attest/certificate.ts';
import { generateE2EKey } from '../../src/attest/e2e-key.ts';
import { generateNodeKey } from '../../src/attest/identity.ts';
import { makeCredentials, trustSetup } from '../../src/attest/trust-setup.ts';
import type { ClientNode } from '../../src/client/client-node.ts';
import { MAX_OFFERS_PER_REQUEST } from '../../src/client/offer-answer.ts';
import type { Session } from '../../src/net/session.ts';
import type { Stream } from '../../src/net/stream.ts';
import { listenForPeers, type PeerListener } from '../../src/net/tls.ts';
import { callSchema } from '../../src/protocol/messages.ts';
import { OfferedCertificates } from '../../src/protocol/offered-certificates.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import type { WorkerConnection } from '../../src/proxy/worker-registry.ts';
import { Harness, post } from '../e2e/harness.ts';

/**
 * A dishonest proxy between a real client and real workers. It cannot make the client believe in a better
 * worker than the one serving: the client checks the offered certificate itself, and seals the request to
 * the key that certificate carries, so only that worker can read it or answer it.
 *
 * The liar here is test code on a TLS listener of its own (a properly attested dev proxy); for workers it
 * borrows the sessions of a real proxy's registry, so it can route a body wherever it likes.
 */
const dev = trustSetup('dev');
const ask = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };

type Behaviour = (call: {
  stream: Stream;
  session: Session;
  requestId: string;
  model: string;
}) => Promise<void>;

describe('attack: a proxy lies to the client about who serves its request', () => {
  const h = new Harness();
  let real: ProxyNode;
  let liar: PeerListener;
  let client: ClientNode;
  let url: string;
  let behave: Behaviour;
  const bodiesSeen: Buffer[] = [];
  let a: WorkerConnection;
  let b: WorkerConnection;

  /** Offers `offered`'s certificate, reads the body, and hands it to `target` (its own hash, or `as`). */
  const relayTo =
    (offered: () => WorkerConnection, target: () => WorkerConnection, as?: () => string): Behaviour =>
    async ({ stream, session, requestId, model }) => {
      session.sendControl(offered().offer(requestId, model, new OfferedCertificates()));
      const body = await stream.next();
      if (body.done) return;
      bodiesSeen.push(body.value);
      const header = callSchema.parse(stream.header);
      if (header.method !== 'inference') return;
      const ws = target().session.openStream({
        method: 'inference',
        requestId,
        request: header.request,
        certificate: as ? as() : target().certificateHash,
      });
      await ws.write(body.value);
      ws.end();
      try {
        for await (const part of ws) await stream.write(part);
        stream.end({ usage: (ws.trailer as { usage: unknown }).usage, reply: ws.trailer });
      } catch (err) {
        stream.reset(err);
      }
    };

  before(async () => {
    real = await h.proxy();
    await h.worker(real, { name: 'worker-a' });
    await h.worker(real, { name: 'worker-b' });
    [a, b] = ['worker-a', 'worker-b'].map((n) => real.registry.all().find((w) => w.name === n)!) as [
      WorkerConnection,
      WorkerConnection,
    ];
    const { credentials } = await makeCredentials(generateNodeKey(), 'proxy', dev.provider);
    liar = await listenForPeers({
      host: '127.0.0.1',
      port: 0,
      credentials,
      trust: { verifiers: dev.verifiers, roles: ['client'], minTier: 'dev' },
      session: { hello: { role: 'proxy', name: 'liar' } },
      onSession: (session) =>
        session.on('stream', (stream: Stream) => {
          const header = callSchema.parse(stream.header);
          if (header.method !== 'inference') return stream.end();
          behave({ stream, session, requestId: header.requestId, model: header.request.model }).catch(
            () => {},
          );
        }),
    });
    client = await h.client(real, { proxy: `127.0.0.1:${liar.port}`, maxAttempts: 1 });
    url = `${client.baseUrl}/chat/completions`;
  });
  after(async () => {
    await liar.close();
    await h.stop();
  });

  test('through the honest proxy: the tier, image and model come from the certificate', async () => {
    const direct = await h.client(real);
    const r = await post(`${direct.baseUrl}/chat/completions`, ask);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-cocoon-trust-tier'), 'dev');
    const name = (r.json as unknown as { cocoon: { worker: string } }).cocoon.worker;
    const served = real.registry.all().find((w) => w.name === name)!;
    assert.equal(r.headers.get('x-cocoon-worker-image'), served.peer.attestation.imageHash);
    assert.equal(r.headers.get('x-cocoon-model'), 'cocoon-tiny');
  });

  test("relaying the right worker's reply through another proxy's session: the receipt names that proxy", async () => {
    behave = relayTo(
      () => a,
      () => a,
    );
    const r = await post(url, ask);
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error?.code, 'bad_receipt');
    assert.match(r.json.error!.message, /names another proxy/);
    assert.ok(bodiesSeen.at(-1)!.toString('latin1').indexOf('hi') < 0, 'the proxy saw only a sealed body');
  });

  test('a dev worker offered for a request that needs tee-cpu: refused before the body leaves the client', async () => {
    behave = relayTo(
      () => a,
      () => a,
    );
    const seen = bodiesSeen.length;
    const before = client.refusals.trust_tier_too_low ?? 0;
    const r = await post(url, { ...ask, min_trust_tier: 'tee-cpu' });
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error?.code, 'worker_not_trusted');
    assert.match(r.json.error!.message, /proves 'dev', below the required 'tee-cpu'/);
    assert.equal(client.refusals.trust_tier_too_low, before + 1);
    assert.equal(bodiesSeen.length, seen, 'no body was sent');
  });

  test("another worker's certificate: the body sealed to A does not open at B", async () => {
    // Routed to B under B's own certificate hash (what B would accept), or under A's (what the client sealed to).
    for (const as of [() => b.certificateHash, () => a.certificateHash]) {
      behave = relayTo(
        () => a,
        () => b,
        as,
      );
      const r = await post(url, ask);
      assert.equal(r.status, 502, r.text);
      assert.match(String(r.json.error?.code), /^(e2e_open_failed|worker_certificate_unknown)$/);
    }
  });

  test('a reply the proxy makes up itself cannot pass for the worker it offered', async () => {
    behave = async ({ stream, session, requestId, model }) => {
      session.sendControl(a.offer(requestId, model, new OfferedCertificates()));
      await stream.next();
      const chunk = { id: 'x', object: 'chat.completion', created: 0, model, choices: [] };
      await stream.write(Buffer.from(JSON.stringify(chunk)));
      stream.end({ usage: { promptTokens: 1, cachedTokens: 0, completionTokens: 1, reasoningTokens: 0 } });
    };
    const r = await post(url, ask);
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error?.code, 'e2e_open_failed');
  });

  test('an old certificate (expired) or a forged one: refused, nothing sent', async () => {
    const key = generateNodeKey();
    const e2eKey = await generateE2EKey();
    const old = await createNodeCertificate({
      key,
      provider: dev.provider,
      now: new Date(Date.now() - 3 * 24 * 3600_000),
      validityMs: 24 * 3600_000,
      claims: {
        role: 'worker',
        protocol: { min: 1, max: 1 },
        models: ['cocoon-tiny'],
        e2e: { suite: e2eKey.suite, publicKey: e2eKey.publicKeyHex },
      },
    });
    const forged = Buffer.from(a.peer.certificate);
    forged[forged.length - 10]! ^= 0xff; // in the signature
    for (const [der, code] of [
      [old.certDer, 'certificate_expired'],
      [forged, 'bad_signature'],
    ] as const) {
      const seen = bodiesSeen.length;
      behave = async ({ stream, session, requestId }) => {
        session.sendControl({
          type: 'request.offer',
          requestId,
          certificate: der.toString('base64'),
          coefficient: 1000,
          worker: 'worker-a',
        });
        const body = await stream.next().catch(() => ({ done: true as const, value: undefined }));
        if (!body.done) bodiesSeen.push(body.value);
      };
      const before = client.refusals[code] ?? 0;
      const r = await post(url, ask);
      assert.equal(r.status, 502, r.text);
      assert.equal(r.json.error?.code, 'worker_not_trusted');
      assert.equal(client.refusals[code], before + 1, JSON.stringify(client.refusals));
      assert.equal(bodiesSeen.length, seen, 'no body was sent');
    }
  });

  test('offers without end: the client answers a few, then gives the request up', async () => {
    behave = async ({ stream, session, requestId, model }) => {
      for (let i = 0; i < 50; i++) session.sendControl(b.offer(requestId, model, new OfferedCertificates()));
      for (;;) {
        const body = await stream.next();
        if (body.done) return;
        bodiesSeen.push(body.value);
      }
    };
    const seen = bodiesSeen.length;
    const r = await post(url, ask);
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error?.code, 'too_many_offers');
    assert.ok(
      bodiesSeen.length - seen <= MAX_OFFERS_PER_REQUEST,
      `${bodiesSeen.length - seen} bodies sealed`,
    );
  });

  test('the old way of claiming a tier (a bare serving message) is a protocol violation: the proxy is cut off', async () => {
    behave = async ({ session, requestId }) => {
      session.sendControl({
        type: 'request.serving',
        requestId,
        serving: { worker: 'w', tier: 'tee-cpu', image: 'ab', model: 'cocoon-tiny', coefficient: 1 },
      });
    };
    const r = await post(url, ask);
    assert.ok(r.status >= 500, r.text);
    assert.notEqual(r.headers.get('x-cocoon-trust-tier'), 'tee-cpu');
  });

  test('with E2E turned off (an explicit choice, labelled) the proxy reads the prompt', async () => {
    behave = relayTo(
      () => a,
      () => a,
    );
    const open = await h.client(real, { proxy: `127.0.0.1:${liar.port}`, maxAttempts: 1, e2e: false });
    await post(`${open.baseUrl}/chat/completions`, ask);
    assert.match(bodiesSeen.at(-1)!.toString('utf8'), /"content":"hi"/);
    assert.match(String(open.stats().e2e), /^off/);
    assert.equal(client.stats().e2e, 'on');
  });
});
