import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { loadOrCreateNodeKey } from '../attest/identity.ts';
import { checkPeerPolicy } from '../attest/policy.ts';
import {
  CERT_VALIDITY_MS,
  makeCredentials,
  rotateCredentials,
  type TrustSetup,
  trustLabel,
} from '../attest/trust-setup.ts';
import {
  AuthenticationError,
  asCocoonError,
  BadRequestError,
  CancelledError,
  type CocoonError,
  MethodNotAllowedError,
  ModelNotFoundError,
  ProtocolError,
  RateLimitError,
  RouteNotFoundError,
  ServiceUnavailableError,
  toOpenAIError,
} from '../errors.ts';
import { PeerLink } from '../net/peer-link.ts';
import type { Session } from '../net/session.ts';
import type { Stream } from '../net/stream.ts';
import { requestCounters } from '../ops/counters.ts';
import { listenHttp, readBody, sendError, sendJson, serveStats } from '../ops/http.ts';
import { type Logger, silentLogger } from '../ops/log.ts';
import { NodeMetrics, type Outcome, serveMetrics, tonGauge } from '../ops/metrics.ts';
import { errorFields, RecentRequests } from '../ops/recent-requests.ts';
import { waitUntil } from '../ops/wait.ts';
import { addCostToUsage } from '../pay/usage-cost.ts';
import type { InferenceKind } from '../protocol/inference.ts';
import {
  type ControlMessage,
  controlSchema,
  type InferenceTrailer,
  inferenceTrailerSchema,
  type ModelList,
  modelListSchema,
  parseMessage,
  type Serving,
} from '../protocol/messages.ts';
import type { ClientPayments } from './client-payments.ts';
import { parseInferenceRequest, type RequestDefaults } from './openai-request.ts';
import { addServing, servingHeaders } from './serving.ts';

export interface ClientOptions {
  name: string;
  dataDir: string;
  /** Where the OpenAI API listens; keep it on loopback unless `apiKeys` are set. */
  httpHost: string;
  httpPort: number;
  proxy: { host: string; port: number };
  trust: TrustSetup;
  defaults: RequestDefaults;
  /** Largest accepted request body, bytes. */
  maxBodyBytes: number;
  /** Most OpenAI requests served at once; more get 429. */
  maxConcurrentRequests: number;
  /** If non-empty, callers must send one of these as `Authorization: Bearer …`. */
  apiKeys?: string[];
  logger?: Logger;
  /** Paying the proxy on TON; without it the client only works with a free (non-paying) proxy. */
  payments?: ClientPayments;
}

const ENDPOINTS: Record<string, InferenceKind> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completion',
};

/**
 * The client daemon: serves the OpenAI API on localhost and sends each request through its session with
 * the proxy, streaming the answer back. Cancels the whole chain when the HTTP caller goes away.
 */
export class ClientNode {
  private readonly log: Logger;
  private link: PeerLink | null = null;
  private http: Awaited<ReturnType<typeof listenHttp>> | null = null;
  private readonly startedAt = Date.now();
  readonly counters = requestCounters();
  private stopRotation: () => void = () => {};
  private draining = false;
  /** Who serves each request in flight, as the proxy said before its first part. */
  private readonly serving = new Map<string, Serving | null>();

  readonly metrics: NodeMetrics;
  readonly recent = new RecentRequests();

  constructor(private readonly opts: ClientOptions) {
    this.log = opts.logger ?? silentLogger;
    this.metrics = new NodeMetrics('client', opts.name);
    const m = this.metrics;
    m.gauge('cocoon_requests_in_flight', 'Requests being served now.', () => this.counters.inFlight);
    m.gauge('cocoon_connected_proxies', 'Proxy sessions up.', () => (this.session ? 1 : 0));
    const pay = opts.payments;
    if (pay) {
      m.counterFrom('cocoon_authorised_ton_total', 'TON this client signed to its proxy so far.', () =>
        tonGauge(pay.payer.authorisedTotal),
      );
    }
  }

  /** Base URL for OpenAI SDKs, e.g. http://127.0.0.1:10000/v1 */
  get baseUrl(): string {
    return `${this.http!.url}/v1`;
  }
  get url(): string {
    return this.http!.url;
  }

  get payments(): ClientPayments | null {
    return this.opts.payments ?? null;
  }

  get session(): Session | null {
    const s = this.link?.session;
    return s && !s.closed ? s : null;
  }

  async start(): Promise<this> {
    const key = await loadOrCreateNodeKey(this.opts.dataDir);
    const validity = this.opts.trust.certValidityMs ?? CERT_VALIDITY_MS;
    const issue = async () =>
      (await makeCredentials(key, 'client', this.opts.trust.provider, undefined, validity)).credentials;
    const credentials = await issue();
    this.stopRotation = rotateCredentials(
      issue,
      (c) => this.link?.setCredentials(c),
      validity,
      (err) => this.log.error({ err: String(err) }, 'certificate rotation failed'),
    );
    this.link = new PeerLink({
      ...this.opts.proxy,
      credentials,
      trust: {
        verifiers: this.opts.trust.verifiers,
        roles: ['proxy'],
        minTier: this.opts.trust.minPeerTier,
        policy: (peer) => checkPeerPolicy(peer, this.opts.trust.policy.current()),
      },
      session: {
        hello: {
          role: 'client',
          name: this.opts.name,
          ...(this.opts.payments ? { info: this.opts.payments.helloInfo } : {}),
        },
      },
    });
    this.link.on('up', (session, peer) => {
      this.log.info({ proxy: this.link!.address, tier: peer.attestation.tier }, 'connected to proxy');
      session.on('control', (payload) => {
        let msg: ControlMessage;
        try {
          msg = parseMessage(controlSchema, payload, 'control');
        } catch (err) {
          session.close(err as CocoonError);
          return;
        }
        // Only for requests of ours in flight: a proxy cannot grow this map.
        if (msg.type === 'request.serving') {
          if (this.serving.has(msg.requestId)) this.serving.set(msg.requestId, msg.serving);
        } else {
          this.opts.payments?.onControl(msg);
        }
      });
      try {
        this.opts.payments?.attach(session, peer);
      } catch (err) {
        // e.g. a proxy that does not take payments, or names no valid proxy contract
        this.log.warn({ err: (err as Error).message }, 'cannot pay this proxy');
        session.close(
          new ProtocolError(`cannot pay this proxy: ${(err as Error).message}`, 'payments_unavailable'),
        );
      }
    });
    this.link.on('down', (err) =>
      this.log.warn({ proxy: this.link!.address, err: err.message }, 'proxy link down'),
    );
    this.link.start();
    this.http = await listenHttp(
      this.opts.httpHost,
      this.opts.httpPort,
      (req, res) => void this.onHttp(req, res),
    );
    return this;
  }

  /** Resolves once the proxy session is up (or rejects after `timeoutMs`). */
  async waitForProxy(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.session) {
      if (Date.now() > deadline) throw new ServiceUnavailableError('no connection to the proxy');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private async onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    try {
      if (serveMetrics(req, res, this.metrics)) return;
      if (serveStats(req, res, `Cocoon client ${this.opts.name}`, () => this.stats())) return;
      this.authorize(req);
      const kind = ENDPOINTS[path];
      if (kind) {
        if (req.method !== 'POST') throw new MethodNotAllowedError(req.method ?? '?', path);
        await this.completion(kind, req, res);
        return;
      }
      if (path === '/v1/models' || path.startsWith('/v1/models/')) {
        if (req.method !== 'GET') throw new MethodNotAllowedError(req.method ?? '?', path);
        await this.models(path, res);
        return;
      }
      throw new RouteNotFoundError(req.method ?? '?', path);
    } catch (err) {
      sendError(res, err);
    }
  }

  private authorize(req: IncomingMessage): void {
    const keys = this.opts.apiKeys;
    if (!keys || keys.length === 0) return;
    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    if (!keys.includes(token)) throw new AuthenticationError();
  }

  private requireSession(): Session {
    const s = this.session;
    if (!s) throw new ServiceUnavailableError('Not connected to any proxy; retry shortly.', 'no_proxy');
    return s;
  }

  private async models(path: string, res: ServerResponse): Promise<void> {
    const stream = this.requireSession().openStream({ method: 'models' });
    stream.end();
    const list: ModelList = parseMessage(modelListSchema, await stream.readAll(), 'model list');
    const data = list.models.map((m) => ({
      id: m.id,
      object: 'model',
      created: 0,
      owned_by: 'cocoon',
      // The trust tiers the workers serving it prove (what `min_trust_tier` can ask for).
      trust_tiers: [...new Set(m.workers.map((w) => w.tier ?? 'dev'))],
      workers: m.workers,
    }));
    if (path === '/v1/models') {
      sendJson(res, 200, { object: 'list', data });
      return;
    }
    const id = decodeURIComponent(path.slice('/v1/models/'.length));
    const model = data.find((m) => m.id === id);
    if (!model) throw new ModelNotFoundError(id);
    sendJson(res, 200, model);
  }

  private async completion(kind: InferenceKind, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.draining) {
      this.counters.rejected++;
      throw new ServiceUnavailableError('This client is shutting down.', 'client_draining').retryAfterSeconds(
        1,
      );
    }
    if (this.counters.inFlight >= this.opts.maxConcurrentRequests) {
      this.counters.rejected++;
      throw new RateLimitError(
        'Too many concurrent requests to this client; retry shortly.',
        'too_many_requests',
      );
    }
    const body = await readBody(req, this.opts.maxBodyBytes);
    let raw: unknown;
    try {
      raw = JSON.parse(body.toString('utf8'));
    } catch {
      throw new BadRequestError(
        'We could not parse the JSON body of your request. The body must be valid JSON.',
        null,
        'invalid_json',
      );
    }
    const request = parseInferenceRequest(kind, raw, this.opts.defaults);
    const session = this.requireSession();
    const requestId = randomUUID();
    const payments = this.opts.payments;
    if (payments) {
      await payments.ready();
      const n = typeof request.body.n === 'number' ? request.body.n : 1;
      payments.expect(requestId, {
        maxCoefficient: request.maxCoefficient,
        maxCompletionTokens: request.maxTokens * n,
        bodyBytes: body.length,
      });
    }
    this.counters.total++;
    this.counters.inFlight++;
    this.serving.set(requestId, null);
    const started = performance.now();
    const stream = session.openStream({ method: 'inference', requestId, request });
    stream.end(); // the call is all in OPEN; no request body follows
    // The caller hanging up cancels the request all the way to the engine.
    const onClose = () => {
      if (!res.writableFinished) stream.reset(new CancelledError());
    };
    res.once('close', onClose);
    let outcome: Outcome = 'failed';
    let trailer: InferenceTrailer | null = null;
    let error: CocoonError | undefined;
    try {
      const relayed = request.stream
        ? await this.relaySse(stream, res, requestId, started)
        : await this.relayJson(stream, res, requestId);
      trailer = relayed.trailer;
      if (relayed.error) {
        error = relayed.error; // the stream broke after its first part: the caller got an error event
        this.counters.failed++;
      } else {
        outcome = 'ok';
        this.counters.succeeded++;
        if (trailer) {
          this.counters.promptTokens += trailer.usage.promptTokens;
          this.counters.completionTokens += trailer.usage.completionTokens;
        }
      }
    } catch (err) {
      error = asCocoonError(err);
      if (err instanceof CancelledError || (res.destroyed && !res.writableFinished)) {
        outcome = 'cancelled';
        this.counters.cancelled++;
        return;
      }
      this.counters.failed++;
      throw err;
    } finally {
      this.counters.inFlight--;
      payments?.forget(requestId);
      const serving = this.serving.get(requestId);
      this.serving.delete(requestId);
      res.off('close', onClose);
      const seconds = (performance.now() - started) / 1000;
      const usage = trailer?.usage;
      this.metrics.finished(
        outcome,
        error?.code ?? null,
        seconds,
        usage?.promptTokens,
        usage?.completionTokens,
      );
      this.log.debug({ requestId, outcome, code: error?.code, seconds }, 'request finished');
      this.recent.add({
        at: Date.now(),
        requestId,
        model: request.model,
        worker: serving?.worker ?? null,
        outcome,
        ...errorFields(error),
        durationMs: Math.round(seconds * 100_000) / 100,
        promptTokens: usage?.promptTokens ?? 0,
        completionTokens: usage?.completionTokens ?? 0,
        costNanoton: trailer?.cost ? trailer.cost.total.toString() : null,
        attempts: 1,
      });
    }
  }

  /** Relays a whole JSON reply; returns the stream's trailer (null if malformed). */
  private async relayJson(stream: Stream, res: ServerResponse, requestId: string): Promise<Relayed> {
    const parts = await stream.readAll();
    const serving = this.serving.get(requestId);
    const trailer = parseTrailer(stream.trailer);
    const tail = finalPart(trailer);
    const body = tail === null ? parts : Buffer.concat([parts, Buffer.from(addServing(tail, serving))]);
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': body.length,
      'x-request-id': requestId,
      ...servingHeaders(serving),
    });
    res.end(body);
    return { trailer, error: null };
  }

  /** Server-sent events exactly as OpenAI sends them: `data: <chunk>\n\n` …, then `data: [DONE]\n\n`. */
  private async relaySse(
    stream: Stream,
    res: ServerResponse,
    requestId: string,
    started: number,
  ): Promise<Relayed> {
    // Wait for the first part before committing to 200, so a refusal still gets its proper status.
    const first = await stream.next();
    this.metrics.firstToken((performance.now() - started) / 1000);
    const serving = this.serving.get(requestId);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-request-id': requestId,
      ...servingHeaders(serving),
    });
    try {
      if (!first.done) {
        await this.writeEvent(res, first.value);
        for await (const part of stream) await this.writeEvent(res, part);
      }
      const trailer = parseTrailer(stream.trailer);
      const tail = finalPart(trailer);
      // Without a usage chunk (not asked for), the headers alone say who served: OpenAI streams end with
      // content chunks, and an extra chunk without choices would surprise clients.
      if (tail !== null) await this.writeEvent(res, Buffer.from(addServing(tail, serving)));
      res.end('data: [DONE]\n\n');
      return { trailer, error: null };
    } catch (err) {
      if (err instanceof CancelledError || res.destroyed) throw err;
      // Headers are gone; the error travels as an SSE event the OpenAI SDKs raise as an APIError.
      const { body } = toOpenAIError(err);
      res.end(`data: ${JSON.stringify(body)}\n\ndata: [DONE]\n\n`);
      this.log.warn({ requestId, err: (err as CocoonError).message }, 'stream failed after first token');
      return { trailer: null, error: asCocoonError(err) };
    }
  }

  private writeEvent(res: ServerResponse, part: Buffer): Promise<void> | undefined {
    // Events that arrive in one tick leave in one write (one syscall), not one each.
    if (res.writableCorked === 0) {
      res.cork();
      process.nextTick(() => res.uncork());
    }
    const ok = res.write(Buffer.concat([DATA_PREFIX, part, EVENT_END]));
    if (ok || res.destroyed) return undefined;
    return new Promise((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }

  stats() {
    const l = this.link;
    return {
      role: 'client',
      name: this.opts.name,
      trust: trustLabel(this.opts.trust.mode),
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      api: this.http ? `${this.http.url}/v1` : null,
      connections: {
        proxy: l?.address ?? null,
        connected: !!this.session,
        proxyTier: l?.peer?.attestation.tier ?? null,
        connects: l?.connects ?? 0,
        lastError: l?.lastError?.message ?? null,
      },
      requests: { ...this.counters },
    };
  }

  /**
   * Graceful shutdown, first half: no new connections or requests; requests in flight finish (and are
   * paid for), for at most `timeoutMs`. True if all finished.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    this.http?.server.close(); // stop listening; open keep-alive connections still get their answers
    return waitUntil(() => this.counters.inFlight === 0, timeoutMs);
  }

  async stop(): Promise<void> {
    this.stopRotation();
    this.link?.stop();
    await this.http?.close();
    await this.opts.payments?.stop();
  }
}

/** The usage-bearing last part from the trailer, with the request's cost added to its `usage`. */
function finalPart(t: InferenceTrailer | null): string | null {
  if (!t || t.tail === undefined) return null;
  return t.cost ? addCostToUsage(t.tail, t.cost) : t.tail;
}

/** What a relay ended with: the trailer, or the error that cut a stream after its first part. */
interface Relayed {
  trailer: InferenceTrailer | null;
  error: CocoonError | null;
}

function parseTrailer(trailer: unknown): InferenceTrailer | null {
  const t = inferenceTrailerSchema.safeParse(trailer);
  return t.success ? t.data : null;
}

const DATA_PREFIX = Buffer.from('data: ');
const EVENT_END = Buffer.from('\n\n');
