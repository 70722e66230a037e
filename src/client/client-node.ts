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
  CancelledError,
  type CocoonError,
  MethodNotAllowedError,
  RouteNotFoundError,
  ServiceUnavailableError,
} from '../errors.ts';
import type { Session } from '../net/session.ts';
import { ApiKeys } from '../ops/api-keys.ts';
import { requestCounters } from '../ops/counters.ts';
import { DEFAULT_HTTP_LIMITS, type HttpLimits, listenHttp, sendError, serveStats } from '../ops/http.ts';
import { type CorsHeaders, HttpGuard } from '../ops/http-guard.ts';
import { readJsonBody } from '../ops/json-body.ts';
import { type Logger, silentLogger } from '../ops/log.ts';
import { NodeMetrics, type Outcome, serveMetrics, tonGauge } from '../ops/metrics.ts';
import { RecentRequests } from '../ops/recent-requests.ts';
import { RequestTally } from '../ops/request-tally.ts';
import { pathOf, type Route, RouteTable } from '../ops/route-table.ts';
import { waitUntil } from '../ops/wait.ts';
import type { InferenceKind, InferenceRequest } from '../protocol/inference.ts';
import type { InferenceTrailer } from '../protocol/messages.ts';
import { receiptsDir } from '../protocol/receipt-audit.ts';
import { Admission } from './admission.ts';
import type { ClientPayments } from './client-payments.ts';
import { MODEL_PREFIX, modelIdOf, networkModels, sendModels } from './models-route.ts';
import { OfferDesk } from './offer-answer.ts';
import { parseInferenceRequest, type RequestDefaults } from './openai-request.ts';
import { type FailoverOptions, type Opened, openThroughProxies } from './proxy-failover.ts';
import { type ProxyAddress, type ProxyConnection, ProxyPool } from './proxy-pool.ts';
import { RECEIPTS_PREFIX, ReceiptDesk } from './receipt-desk.ts';
import { type ReplyContext, relayJson, relaySse } from './reply-relay.ts';
import { WorkerCheck } from './worker-check.ts';

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
  /** If non-empty, callers must send one of these as `Authorization: Bearer …`, on every route. */
  apiKeys?: string[];
  /** Host names the API answers to besides IP literals and localhost (see HttpGuard). */
  allowedHosts?: string[];
  /** Web origins whose pages may call the API (CORS); every other origin is refused. */
  allowedOrigins?: string[];
  /** Header, request and idle timeouts and the connection bound of the API server. */
  httpLimits?: HttpLimits;
  logger?: Logger;
  /**
   * Seal each request's body to the worker serving it (end-to-end encryption; default on). Off, the proxy
   * reads prompts and completions: an explicit, labelled choice.
   */
  e2e?: boolean;
  /**
   * Ask for, check and keep workers' receipts (default on). Off only with E2E off (build-nodes checks):
   * an explicit, labelled choice, for measuring what receipts cost.
   */
  receipts?: boolean;
  /** Receipts: ms between a log write and its fsync (0: fsync before each reply ends). Default 100. */
  receiptSyncMs?: number;
  /** Paying proxies on TON (a client contract per proxy); without it only free proxies serve us. */
  payments?: { newPayments: () => ClientPayments; close: () => Promise<void> };
}

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
  private readonly admission: Admission;
  private readonly tally: RequestTally;
  private readonly guard: HttpGuard;
  private readonly keys: ApiKeys;
  private readonly table: RouteTable;
  /** Offers of workers for our requests in flight, as the proxies send them. */
  private readonly offers = new OfferDesk();
  /** Workers the proxies offered that this client refused, by reason. */
  readonly refusals: Record<string, number> = {};
  private readonly workers: WorkerCheck;
  /** The workers' receipts of our replies: checked, kept in `<dataDir>/receipts`, served by id. */
  private receiptDesk: ReceiptDesk | null = null;

  readonly metrics: NodeMetrics;
  readonly recent = new RecentRequests();

  constructor(private readonly opts: ClientOptions) {
    this.log = opts.logger ?? silentLogger;
    this.metrics = new NodeMetrics('client', opts.name);
    this.admission = new Admission(opts.maxConcurrentRequests, this.counters);
    this.tally = new RequestTally(this.counters, this.metrics, this.log, this.recent);
    this.keys = new ApiKeys(opts.apiKeys ?? []);
    this.table = this.routes();
    this.workers = new WorkerCheck(opts.trust, this.refusals);
    this.guard = new HttpGuard({
      listenHost: opts.httpHost,
      allowedHosts: opts.allowedHosts ?? [],
      allowedOrigins: opts.allowedOrigins ?? [],
    });
    const m = this.metrics;
    const proxies = () => this.pool?.all() ?? [];
    m.gauge('cocoon_requests_in_flight', 'Requests being served now.', () => this.counters.inFlight);
    m.gauge(
      'cocoon_connected_proxies',
      'Proxy sessions up.',
      () => proxies().filter((c) => c.session).length,
    );
    m.counterFrom(
      'cocoon_worker_refusals_total',
      'Workers a proxy offered that this client refused after checking them itself, by reason.',
      () => Object.entries(this.refusals).map(([code, n]) => [{ code }, n]),
      ['code'],
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
      m.counterFrom(
        'cocoon_bill_disputes_total',
        'Bills disputed because a worker claimed more than its sealed reply carries, by ruling.',
        () =>
          (['upheld', 'rejected'] as const).map(
            (ruling) => [{ ruling }, this.disputeTotals()[ruling]] as [{ ruling: string }, number],
          ),
        ['ruling'],
      );
    }
  }

  /** Bills this client disputed with its proxies, and how they ruled. */
  disputeTotals(): { opened: number; upheld: number; rejected: number } {
    const t = { opened: 0, upheld: 0, rejected: 0 };
    for (const c of this.proxies) {
      const d = c.payments?.disputes;
      if (d) for (const k of ['opened', 'upheld', 'rejected'] as const) t[k] += d[k];
    }
    return t;
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
    this.receiptDesk = await ReceiptDesk.open(
      receiptsDir(this.opts.dataDir),
      this.refusals,
      this.opts.receiptSyncMs ?? 100,
    );
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
      onOffer: (offer, conn) => {
        if (!this.offers.deliver(offer, conn))
          this.refusals.unknown_offer = (this.refusals.unknown_offer ?? 0) + 1;
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
      this.opts.httpLimits ?? DEFAULT_HTTP_LIMITS,
      (e) => this.tally.refused(e),
    );
    return this;
  }

  /** Resolves once a proxy session is up (or rejects after `timeoutMs`). */
  async waitForProxy(timeoutMs = 10_000): Promise<void> {
    if (!(await waitUntil(() => this.session !== null, timeoutMs))) {
      throw new ServiceUnavailableError('no connection to any proxy');
    }
  }

  private routes(): RouteTable {
    const infer = (kind: InferenceKind): Route => ({
      methods: ['POST'],
      handle: (req, res, { cors }) => this.completion(kind, req, res, cors),
    });
    const models: Route = {
      methods: ['GET'],
      handle: async (_req, res, { path, cors }) => {
        const id = path === '/v1/models' ? null : modelIdOf(path);
        sendModels(res, await networkModels(this.proxies), id, cors);
      },
    };
    const title = `Cocoon client ${this.opts.name}`;
    const stats: Route = {
      methods: ['GET'],
      page: true,
      handle: (req, res, { cors }) => void serveStats(req, res, title, () => this.stats(), cors),
    };
    return new RouteTable()
      .add('/v1/chat/completions', infer('chat'))
      .add('/v1/completions', infer('completion'))
      .add('/v1/models', models)
      .addPrefix(RECEIPTS_PREFIX, {
        methods: ['GET'],
        handle: (_req, res, { path, cors }) => this.receiptDesk!.serve(res, path, cors),
      })
      .addPrefix(MODEL_PREFIX, models)
      .add('/metrics', {
        methods: ['GET'],
        page: true,
        handle: (req, res, { cors }) => void serveMetrics(req, res, this.metrics, cors),
      })
      .add('/stats', stats)
      .add('/jsonstats', stats)
      .add('/dashboard', stats);
  }

  /**
   * Every request passes the same gate, in this order: who addressed it (Host, Origin), a CORS preflight,
   * the API key, the route and method. A refusal is counted and answered in OpenAI's error shape.
   */
  private async onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let cors: CorsHeaders = {};
    let route: Route | undefined;
    try {
      cors = this.guard.check(req);
      const path = pathOf(req);
      route = this.table.find(path);
      if (this.guard.preflight(req, res, cors, (route?.methods ?? ['GET', 'POST']).join(', '))) return;
      // Before the route is known to exist: without a key, not even which paths exist is told.
      this.authorize(req, route?.page === true);
      if (!route) throw new RouteNotFoundError(req.method ?? '?', path);
      if (!route.methods.includes(req.method ?? '')) throw new MethodNotAllowedError(req.method ?? '?', path);
      await route.handle(req, res, { path, cors });
    } catch (err) {
      const e = asCocoonError(err);
      this.tally.refused(e);
      const headers: Record<string, string> = { ...cors };
      // RFC 9110 §15.5.6: a 405 names the methods the route takes.
      if (e instanceof MethodNotAllowedError && route) headers.allow = route.methods.join(', ');
      if (e instanceof AuthenticationError) {
        headers['www-authenticate'] = route?.page
          ? 'Basic realm="Cocoon", charset="UTF-8"'
          : 'Bearer realm="Cocoon"';
      }
      sendError(res, e, headers);
    }
  }

  private authorize(req: IncomingMessage, page: boolean): void {
    if (!this.keys.enabled) return;
    const key = ApiKeys.presented(req, page);
    if (key === null || !this.keys.accepts(key)) throw new AuthenticationError();
  }

  /**
   * One OpenAI request: a slot from its headers on (a slow body holds one too), the body checked and
   * parsed, then served. Refusals up to here are the gate's; from `serve` on the request is tallied.
   */
  private async completion(
    kind: InferenceKind,
    req: IncomingMessage,
    res: ServerResponse,
    cors: CorsHeaders,
  ): Promise<void> {
    this.admission.enter();
    try {
      const body = await readJsonBody(req, this.opts.maxBodyBytes);
      await this.serve(parseInferenceRequest(kind, body, this.opts.defaults), res, cors);
    } finally {
      this.admission.leave();
    }
  }

  /** Sends a request through a proxy and relays its reply; answers failures itself and tallies the end. */
  private async serve(request: InferenceRequest, res: ServerResponse, cors: CorsHeaders): Promise<void> {
    const requestId = randomUUID();
    this.counters.total++;
    const started = performance.now();
    let opened: Opened | null = null;
    let outcome: Outcome = 'failed';
    let trailer: InferenceTrailer | null = null;
    let error: CocoonError | undefined;
    try {
      opened = await openThroughProxies(this.failover(), request, requestId, res, started);
      if (res.destroyed) throw new CancelledError(); // the caller left; what it got is paid for
      const o = opened;
      const ctx: ReplyContext = {
        requestId,
        serving: o.serving,
        headers: cors,
        receipts: this.opts.receipts !== false,
        receipt:
          this.opts.receipts === false
            ? async () => undefined
            : (reply, replyHash) =>
                this.receiptDesk!.accept(reply?.receipt, {
                  requestId,
                  worker: o.worker,
                  proxy: o.proxyKey,
                  requestHash: o.requestHash,
                  replyHash,
                }),
      };
      const relayed = request.stream ? await relaySse(o, res, ctx, this.log) : await relayJson(o, res, ctx);
      trailer = relayed.trailer;
      if (res.destroyed && !res.writableFinished) throw new CancelledError();
      error = relayed.error ?? undefined; // a stream broken after its first part: the caller got an error event
      if (!error) outcome = 'ok';
    } catch (err) {
      error = asCocoonError(err);
      if (err instanceof CancelledError || (res.destroyed && !res.writableFinished)) outcome = 'cancelled';
      else sendError(res, error, cors);
    } finally {
      if (opened) {
        opened.conn.inFlight--;
        opened.conn.payments?.forget(requestId);
        res.off('close', opened.onClose);
      }
      this.tally.finish({
        requestId,
        model: request.model,
        worker: opened?.serving.worker ?? null,
        outcome,
        error,
        seconds: (performance.now() - started) / 1000,
        usage: trailer?.usage,
        costNanoton: trailer?.cost ? trailer.cost.total.toString() : null,
        attempts: opened?.attempts ?? 0,
      });
    }
  }

  private failover(): FailoverOptions {
    return {
      pool: this.pool!,
      maxAttempts: this.opts.maxAttempts ?? 3,
      log: this.log,
      offers: this.offers,
      workers: this.workers,
      e2e: this.opts.e2e ?? true,
      receipts: this.opts.receipts ?? true,
      onFailover: () => this.counters.failovers++,
      onFirstPart: (seconds) => this.metrics.firstToken(seconds),
    };
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
            disputes: this.disputeTotals(),
          }
        : 'off (free proxies only)',
      e2e: this.opts.e2e === false ? 'off (the proxy reads prompts and completions)' : 'on',
      receipts: this.opts.receipts === false ? 'off (nothing binds a reply to the worker checked)' : 'on',
      refusals: { ...this.refusals },
      recent: this.recent.list(),
    };
  }

  /**
   * Graceful shutdown, first half: no new connections or requests; requests in flight finish (and are
   * paid for), for at most `timeoutMs`. True if all finished.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.admission.drain();
    this.http?.server.close(); // stop listening; open keep-alive connections still get their answers
    return waitUntil(() => this.counters.inFlight === 0, timeoutMs);
  }

  async stop(): Promise<void> {
    this.stopRotation();
    if (this.listTimer) clearInterval(this.listTimer);
    this.pool?.stop();
    await this.http?.close();
    await this.opts.payments?.close();
    await this.receiptDesk?.close();
  }
}
