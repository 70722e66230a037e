import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { loadOrCreateNodeKey } from '../attest/identity.ts';
import {
  CERT_VALIDITY_MS,
  makeCredentials,
  peerTrust,
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
  GatewayTimeoutError,
  MethodNotAllowedError,
  ModelNotFoundError,
  RateLimitError,
  RouteNotFoundError,
  ServiceUnavailableError,
  toOpenAIError,
} from '../errors.ts';
import type { Session } from '../net/session.ts';
import type { Stream } from '../net/stream.ts';
import { requestCounters } from '../ops/counters.ts';
import { listenHttp, readBody, sendError, sendJson, serveStats } from '../ops/http.ts';
import { type Logger, silentLogger } from '../ops/log.ts';
import { NodeMetrics, type Outcome, serveMetrics, tonGauge } from '../ops/metrics.ts';
import { RecentRequests } from '../ops/recent-requests.ts';
import { waitUntil } from '../ops/wait.ts';
import type { RequestBound } from '../pay/payer.ts';
import { addCostToUsage } from '../pay/usage-cost.ts';
import { type InferenceKind, type InferenceRequest, maxCompletionTokens } from '../protocol/inference.ts';
import {
  type InferenceTrailer,
  inferenceTrailerSchema,
  type ModelList,
  modelListSchema,
  parseMessage,
  type Serving,
} from '../protocol/messages.ts';
import { OutputObserver } from '../protocol/observed-output.ts';
import type { ClientPayments } from './client-payments.ts';
import { parseInferenceRequest, type RequestDefaults } from './openai-request.ts';
import { type ProxyAddress, type ProxyConnection, ProxyPool } from './proxy-pool.ts';
import { addServing, servingHeaders } from './serving.ts';

export interface ClientOptions {
  name: string;
  dataDir: string;
  /** Where the OpenAI API listens; keep it on loopback unless `apiKeys` are set. */
  httpHost: string;
  httpPort: number;
  /** Proxies to keep sessions to; requests fail over between them. */
  proxies: ProxyAddress[];
  /** Re-reads the list of proxies (e.g. those registered in the root contract) every minute. */
  listProxies?: () => Promise<ProxyAddress[]>;
  /** Proxies one request may try before its first part reaches the caller (default 3). */
  maxAttempts?: number;
  trust: TrustSetup;
  defaults: RequestDefaults;
  /** Largest accepted request body, bytes. */
  maxBodyBytes: number;
  /** Most OpenAI requests served at once; more get 429. */
  maxConcurrentRequests: number;
  /** If non-empty, callers must send one of these as `Authorization: Bearer …`. */
  apiKeys?: string[];
  logger?: Logger;
  /** Paying proxies on TON (a client contract per proxy); without it only free proxies serve us. */
  payments?: { newPayments: () => ClientPayments; close: () => Promise<void> };
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
  private pool: ProxyPool | null = null;
  private listTimer: NodeJS.Timeout | null = null;
  private http: Awaited<ReturnType<typeof listenHttp>> | null = null;
  private readonly startedAt = Date.now();
  readonly counters = { ...requestCounters(), failovers: 0 };
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
    const proxies = () => this.pool?.all() ?? [];
    m.gauge('cocoon_requests_in_flight', 'Requests being served now.', () => this.counters.inFlight);
    m.gauge(
      'cocoon_connected_proxies',
      'Proxy sessions up.',
      () => proxies().filter((c) => c.session).length,
    );
    m.counterFrom(
      'cocoon_proxy_failovers_total',
      'Requests moved to another proxy after a failure before their first part.',
      () => this.counters.failovers,
    );
    m.gauge(
      'cocoon_proxy_latency_seconds',
      'Recent time to first part through each proxy.',
      () => proxies().map((c) => [{ proxy: c.address }, (c.latencyMs ?? 0) / 1000]),
      ['proxy'],
    );
    if (opts.payments) {
      m.gauge(
        'cocoon_client_contract_ton',
        'Our client contract with each proxy, as last read from the chain: balance, stake, settled.',
        () =>
          proxies().flatMap((c) => {
            const st = c.payments?.contractState;
            if (!st) return [];
            return [
              [{ proxy: c.address, part: 'balance' }, tonGauge(st.balance)],
              [{ proxy: c.address, part: 'stake' }, tonGauge(st.stake)],
              [{ proxy: c.address, part: 'charged' }, tonGauge(st.charged)],
            ] as [{ proxy: string; part: string }, number][];
          }),
        ['proxy', 'part'],
      );
      m.counterFrom('cocoon_authorised_ton_total', 'TON this client signed to its proxies so far.', () =>
        tonGauge(proxies().reduce((sum, c) => sum + (c.payments?.payer.authorisedTotal ?? 0n), 0n)),
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

  /** The payments of the first connected proxy (single-proxy setups, diagnostics). */
  get payments(): ClientPayments | null {
    return this.pool?.primary?.payments ?? null;
  }

  /** A session to a proxy, if any is up. */
  get session(): Session | null {
    return this.pool?.primary?.session ?? null;
  }

  /** Replaces the list of proxies (as a refresh from the root contract does). */
  updateProxies(addresses: ProxyAddress[]): void {
    this.pool?.update(addresses);
  }

  /** The proxies this client keeps sessions to. */
  get proxies(): ProxyConnection[] {
    return this.pool?.all() ?? [];
  }

  async start(): Promise<this> {
    const key = await loadOrCreateNodeKey(this.opts.dataDir);
    const validity = this.opts.trust.certValidityMs ?? CERT_VALIDITY_MS;
    const issue = async () =>
      (await makeCredentials(key, 'client', this.opts.trust.provider, undefined, validity)).credentials;
    const credentials = await issue();
    this.stopRotation = rotateCredentials(
      issue,
      (c) => this.pool?.setCredentials(c),
      validity,
      (err) => this.log.error({ err: String(err) }, 'certificate rotation failed'),
    );
    const payments = this.opts.payments;
    this.pool = new ProxyPool({
      link: {
        credentials,
        trust: peerTrust(this.opts.trust, ['proxy']),
        session: { hello: { role: 'client', name: this.opts.name } },
      },
      ...(payments ? { newPayments: payments.newPayments } : {}),
      log: this.log,
      // Only for requests of ours in flight: a proxy cannot grow this map.
      onControl: (msg) => {
        if (msg.type === 'request.serving' && this.serving.has(msg.requestId)) {
          this.serving.set(msg.requestId, msg.serving);
        }
      },
    });
    const list = this.opts.listProxies;
    if (!list) this.pool.update(this.opts.proxies);
    else {
      // The registered proxies; the configured ones only while the root lists none.
      const refresh = () =>
        list().then(
          (found) => this.pool?.update(found.length > 0 ? found : this.opts.proxies),
          (err) => {
            this.log.warn({ err: String(err) }, 'cannot read the list of proxies');
            if (this.pool?.all().length === 0) this.pool.update(this.opts.proxies); // until it can
          },
        );
      await refresh();
      this.listTimer = setInterval(refresh, 60_000);
      this.listTimer.unref();
    }
    this.http = await listenHttp(
      this.opts.httpHost,
      this.opts.httpPort,
      (req, res) => void this.onHttp(req, res),
    );
    return this;
  }

  /** Resolves once a proxy session is up (or rejects after `timeoutMs`). */
  async waitForProxy(timeoutMs = 10_000): Promise<void> {
    if (!(await waitUntil(() => this.session !== null, timeoutMs))) {
      throw new ServiceUnavailableError('no connection to any proxy');
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

  /** The network's models: what every connected proxy serves, merged. */
  private async modelList(): Promise<ModelList> {
    const sessions = this.proxies.flatMap((c) => (c.session && !c.draining ? [c.session] : []));
    if (sessions.length === 0) {
      throw new ServiceUnavailableError(
        'Not connected to any proxy; retry shortly.',
        'no_proxy',
      ).retryAfterSeconds(1);
    }
    const lists = await Promise.allSettled(
      sessions.map(async (session) => {
        const stream = session.openStream({ method: 'models' });
        stream.end();
        return parseMessage(modelListSchema, await stream.readAll(), 'model list');
      }),
    );
    const byId = new Map<string, ModelList['models'][number]>();
    let answered = 0;
    for (const l of lists) {
      if (l.status !== 'fulfilled') continue;
      answered++;
      for (const m of l.value.models) {
        const known = byId.get(m.id);
        if (known) known.workers.push(...m.workers);
        else byId.set(m.id, { id: m.id, workers: [...m.workers] });
      }
    }
    if (answered === 0) throw (lists[0] as PromiseRejectedResult).reason;
    return { models: [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1)) };
  }

  private async models(path: string, res: ServerResponse): Promise<void> {
    const list = await this.modelList();
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
    const requestId = randomUUID();
    this.counters.total++;
    this.counters.inFlight++;
    this.serving.set(requestId, null);
    const started = performance.now();
    let opened: Opened | null = null;
    let outcome: Outcome = 'failed';
    let trailer: InferenceTrailer | null = null;
    let error: CocoonError | undefined;
    try {
      opened = await this.open(request, requestId, res, started);
      if (res.destroyed) throw new CancelledError(); // the caller left; what it got is paid for
      const relayed = request.stream
        ? await this.relaySse(opened, res, requestId)
        : this.relayJson(opened, res, requestId);
      trailer = relayed.trailer;
      if (res.destroyed && !res.writableFinished) throw new CancelledError();
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
      if (opened) {
        opened.conn.inFlight--;
        opened.conn.payments?.forget(requestId);
        res.off('close', opened.onClose);
      }
      const serving = this.serving.get(requestId);
      this.serving.delete(requestId);
      const seconds = (performance.now() - started) / 1000;
      const usage = trailer?.usage;
      this.metrics.finished(
        outcome,
        error?.code ?? null,
        seconds,
        usage?.promptTokens,
        usage?.completionTokens,
      );
      this.log.debug(
        { requestId, proxy: opened?.conn.address, outcome, code: error?.code, seconds },
        'request finished',
      );
      this.recent.record({
        requestId,
        model: request.model,
        worker: serving?.worker ?? null,
        outcome,
        error,
        seconds,
        usage,
        costNanoton: trailer?.cost ? trailer.cost.total.toString() : null,
        attempts: opened?.attempts ?? 0,
      });
    }
  }

  /**
   * Sends a request through the best proxy and waits for its first part (a stream) or its whole reply
   * (JSON): until then nothing has reached the caller, so a proxy that fails, goes away or cannot serve it
   * is replaced by another (bounded attempts, within the request's time budget).
   */
  private async open(
    request: InferenceRequest,
    requestId: string,
    res: ServerResponse,
    started: number,
  ): Promise<Opened> {
    const tried = new Set<ProxyConnection>();
    const maxAttempts = this.opts.maxAttempts ?? 3;
    let lastError: CocoonError | null = null;
    for (let attempt = 1; ; attempt++) {
      let conn: ProxyConnection;
      try {
        conn = this.pool!.choose(tried);
      } catch (err) {
        throw lastError ?? err;
      }
      tried.add(conn);
      if (attempt > 1) {
        this.counters.failovers++;
        this.log.warn(
          { requestId, proxy: conn.address, code: lastError?.code, reason: lastError?.message },
          'proxy failed before the first part; failing over',
        );
      }
      const attemptStarted = performance.now();
      const timeoutMs = Math.floor(request.timeoutMs - (attemptStarted - started));
      conn.inFlight++;
      conn.total++;
      let stream: Stream | null = null;
      // The caller hanging up cancels the request all the way to the engine.
      const onClose = () => {
        if (!res.writableFinished && stream) this.cancel(conn, stream, requestId);
      };
      res.once('close', onClose);
      try {
        if (timeoutMs <= 0) throw new GatewayTimeoutError(`Request timed out after ${request.timeoutMs} ms.`);
        const bound = requestBound(request);
        if (conn.payments) {
          await conn.payments.ready();
          conn.payments.expect(requestId, bound);
        }
        const session = conn.session;
        if (!session) throw new ServiceUnavailableError('The proxy went away.', 'peer_lost');
        const s = session.openStream({ method: 'inference', requestId, request: { ...request, timeoutMs } });
        stream = s;
        bound.callBytes = s.headerBytes;
        // Everything received is counted as it arrives: a bill is checked against it.
        if (conn.payments) {
          const observed = bound.observed as OutputObserver;
          s.onData = request.stream ? (p) => void observed.observePart(p) : (p) => observed.collect(p);
        }
        s.end(); // the call is all in OPEN; no request body follows
        const head: Opened['head'] = request.stream ? { first: await s.next() } : { body: await s.readAll() };
        if (request.stream) this.metrics.firstToken((performance.now() - started) / 1000);
        conn.recordSuccess(performance.now() - attemptStarted);
        return { conn, stream: s, head, onClose, attempts: attempt };
      } catch (err) {
        const e = asCocoonError(err);
        res.off('close', onClose);
        conn.inFlight--;
        conn.payments?.forget(requestId);
        if (res.destroyed || e instanceof CancelledError || e.status === 504) throw e;
        if (e.status === 500 || e.status === 502) conn.recordFailure();
        if (!isRetryable(e) || attempt >= maxAttempts) throw e;
        lastError = e;
      }
    }
  }

  /**
   * The caller went away: ask the proxy to stop the request and keep reading what is already on its way,
   * so the bill for what was delivered is checked against all of it and paid. A proxy that does not end
   * the stream in time gets a RESET.
   */
  private cancel(conn: ProxyConnection, stream: Stream, requestId: string): void {
    const session = conn.session;
    if (!session || session.closed) {
      stream.reset(new CancelledError());
      return;
    }
    session.sendControl({ type: 'request.cancel', requestId });
    setTimeout(() => stream.reset(new CancelledError()), CANCEL_GRACE_MS).unref();
  }

  /** Relays a whole JSON reply (already read); returns the stream's trailer (null if malformed). */
  private relayJson({ stream, head, conn }: Opened, res: ServerResponse, requestId: string): Relayed {
    const parts = head.body ?? Buffer.alloc(0);
    const serving = this.serving.get(requestId);
    const trailer = parseTrailer(stream.trailer);
    const tail = finalPart(trailer);
    let body: Buffer;
    if (tail !== null) body = Buffer.concat([parts, Buffer.from(addServing(tail, serving))]);
    else if (trailer?.cost) {
      // A paid reply came whole before its bill; the cost just signed for goes into its usage.
      body = Buffer.from(addServing(addCostToUsage(parts.toString('utf8'), trailer.cost), serving));
    } else body = parts;
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': body.length,
      'x-request-id': requestId,
      'x-cocoon-proxy': conn.address,
      ...servingHeaders(serving),
    });
    res.end(body);
    return { trailer, error: null };
  }

  /** Server-sent events exactly as OpenAI sends them: `data: <chunk>\n\n` …, then `data: [DONE]\n\n`. */
  private async relaySse(
    { stream, head, conn }: Opened,
    res: ServerResponse,
    requestId: string,
  ): Promise<Relayed> {
    // The first part arrived before we commit to 200 (see open), so a refusal still gets its status.
    const first = head.first!;
    const serving = this.serving.get(requestId);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-request-id': requestId,
      'x-cocoon-proxy': conn.address,
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
    const proxies = this.proxies.map((c) => c.snapshot());
    return {
      role: 'client',
      name: this.opts.name,
      trust: trustLabel(this.opts.trust.mode),
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      api: this.http ? `${this.http.url}/v1` : null,
      connections: { proxies: proxies.length, connected: proxies.filter((p) => p.connected).length },
      proxies,
      requests: { ...this.counters },
      payments: this.opts.payments
        ? {
            spentNano: this.proxies
              .reduce((sum, c) => sum + (c.payments?.payer.authorisedTotal ?? 0n), 0n)
              .toString(),
          }
        : 'off (free proxies only)',
      recent: this.recent.list(),
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
    if (this.listTimer) clearInterval(this.listTimer);
    this.pool?.stop();
    await this.http?.close();
    await this.opts.payments?.close();
  }
}

/** The usage-bearing last part from the trailer, with the request's cost added to its `usage`. */
function finalPart(t: InferenceTrailer | null): string | null {
  if (!t || t.tail === undefined) return null;
  return t.cost ? addCostToUsage(t.tail, t.cost) : t.tail;
}

/** A request under way on one proxy: its first part (a stream) or its whole body (JSON) is in. */
interface Opened {
  conn: ProxyConnection;
  stream: Stream;
  head: { first?: IteratorResult<Buffer>; body?: Buffer };
  onClose: () => void;
  /** Proxies tried. */
  attempts: number;
}

/**
 * Worth another proxy: it failed or went away, was busy or draining, has no worker for the model, or
 * our account there cannot cover the request (another proxy bills another account).
 */
function isRetryable(e: CocoonError): boolean {
  return (
    (e.status >= 500 && e.status !== 504) ||
    e.status === 429 ||
    e.status === 402 ||
    e.code === 'model_not_found'
  );
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

/** How long a cancelled request may take to end before we reset it. */
const CANCEL_GRACE_MS = 10_000;

/** What we will pay one attempt of a request for at most: filled in as it is sent and received. */
function requestBound(request: InferenceRequest): RequestBound {
  return {
    maxCoefficient: request.maxCoefficient,
    maxCompletionTokens: maxCompletionTokens(request),
    choices: request.n,
    callBytes: 0,
    coefficient: null,
    observed: new OutputObserver(),
  };
}

const DATA_PREFIX = Buffer.from('data: ');
const EVENT_END = Buffer.from('\n\n');
