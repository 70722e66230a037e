import { createHash } from 'node:crypto';
import { verifyPeerCertificate } from '../attest/certificate.ts';
import { type E2EKey, loadOrCreateE2EKey } from '../attest/e2e-key.ts';
import { loadOrCreateNodeKey } from '../attest/identity.ts';
import { attestedModel } from '../attest/model-identity.ts';
import {
  CERT_VALIDITY_MS,
  makeCredentials,
  peerTrust,
  rotateCredentials,
  type TrustSetup,
  trustLabel,
} from '../attest/trust-setup.ts';
import type { PeerIdentity } from '../attest/types.ts';
import {
  asCocoonError,
  BadGatewayError,
  BadRequestError,
  type CocoonError,
  GatewayTimeoutError,
  ModelNotFoundError,
  ProtocolError,
  RateLimitError,
  ServiceUnavailableError,
} from '../errors.ts';
import { PeerLink } from '../net/peer-link.ts';
import type { Session } from '../net/session.ts';
import type { Stream } from '../net/stream.ts';
import { listenStats } from '../ops/http.ts';
import { type Logger, silentLogger } from '../ops/log.ts';
import { NodeMetrics, type Outcome, tonGauge } from '../ops/metrics.ts';
import { RequestTally } from '../ops/request-tally.ts';
import { waitUntil } from '../ops/wait.ts';
import { boundUsage } from '../pay/pricing.ts';
import {
  type InferenceRequest,
  maxCompletionTokens,
  receiptRequired,
  type TokenUsage,
} from '../protocol/inference.ts';
import { callSchema, type WorkerInfo, type WorkerTrailer } from '../protocol/messages.ts';
import type { Receipt } from '../protocol/receipt.ts';
import type { InferenceBackend, ReplyPart } from './backend.ts';
import { ReceiptSigner } from './receipt-signer.ts';
import { type OpenedCall, OwnCertificates, openCall, type ReplyWriter } from './sealed-call.ts';
import { adminRoutes, loadOrCreateAdminToken } from './worker-admin.ts';
import type { WorkerPayments } from './worker-payments.ts';

export interface WorkerOptions {
  name: string;
  dataDir: string;
  /** Proxies to serve; capacity is split between them. */
  proxies: { host: string; port: number }[];
  backend: InferenceBackend;
  /** Most requests this worker runs at once, over all proxies. */
  maxConcurrent: number;
  /** Price coefficient, 1000 = 1×. */
  coefficient: number;
  /** Model identities (`name@revision:hash`) put in the certificate; default the backend's base names. */
  modelIdentities?: string[];
  trust: TrustSetup;
  statsHost?: string;
  /** null: no stats server. */
  statsPort?: number | null;
  logger?: Logger;
  /** Being paid on TON; required by proxies that take payments. */
  payments?: WorkerPayments;
}

/**
 * The worker daemon: keeps a session to each proxy, announces what it serves, and runs the inference calls
 * the proxies open on those sessions through its backend, streaming the engine's output back.
 */
export class WorkerNode {
  private readonly log: Logger;
  private readonly links: PeerLink[] = [];
  private readonly startedAt = Date.now();
  private statsServer: Awaited<ReturnType<typeof listenStats>> | null = null;
  private enabled = true;
  private draining = false;
  /** The bearer token of the admin endpoint (also in `<dataDir>/admin-token`); null without stats server. */
  adminToken: string | null = null;
  private stopRotation: () => void = () => {};
  private e2eKey: E2EKey | null = null;
  private receipts: ReceiptSigner | null = null;
  /** The proxy on each session (its key goes into receipts). */
  private readonly proxyOf = new WeakMap<Session, PeerIdentity>();
  private readonly certificates = new OwnCertificates();
  readonly counters = {
    running: 0,
    total: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
    /** Refused at capacity, while disabled or draining. */
    rejected: 0,
    promptTokens: 0,
    completionTokens: 0,
    /** Replies whose engine reported more completion tokens than the reply carries: signed as carried. */
    usageClamped: 0,
  };
  private readonly tally: RequestTally;

  readonly metrics: NodeMetrics;

  constructor(private readonly opts: WorkerOptions) {
    this.log = opts.logger ?? silentLogger;
    this.metrics = new NodeMetrics('worker', opts.name);
    this.tally = new RequestTally(this.counters, this.metrics, this.log);
    const m = this.metrics;
    m.gauge('cocoon_requests_in_flight', 'Requests running on the engine now.', () => this.counters.running);
    m.gauge('cocoon_worker_enabled', '1 while this worker takes requests.', () => (this.enabled ? 1 : 0));
    m.gauge('cocoon_worker_coefficient', 'Price coefficient (1000 = 1x).', () => this.opts.coefficient);
    m.gauge('cocoon_connected_proxies', 'Proxy sessions up.', () => this.connectedProxies);
    m.counterFrom(
      'cocoon_busy_refusals_total',
      'Requests refused at capacity or while disabled.',
      () => this.counters.rejected,
    );
    const backend = opts.backend;
    backend.setLogger?.(this.log);
    if (backend.guardStats) {
      const guard = backend.guardStats.bind(backend);
      m.counterFrom(
        'cocoon_engine_overruns_total',
        'Engine replies that went past their request bounds (stopped and cut at the bound).',
        () => guard().engineOverruns,
      );
    }
    const pay = opts.payments;
    if (pay) {
      m.counterFrom('cocoon_earned_ton_total', 'TON proxies signed to this worker.', () =>
        tonGauge(pay.totals().signed),
      );
      m.counterFrom('cocoon_paid_ton_total', 'TON the worker contracts paid out.', () =>
        tonGauge(pay.totals().paid),
      );
    }
  }

  get payments(): WorkerPayments | null {
    return this.opts.payments ?? null;
  }

  get statsUrl(): string | null {
    return this.statsServer?.url ?? null;
  }

  async start(): Promise<this> {
    const key = await loadOrCreateNodeKey(this.opts.dataDir);
    const e2eKey = await loadOrCreateE2EKey(this.opts.dataDir);
    this.e2eKey = e2eKey;
    this.receipts = ReceiptSigner.open(this.opts.dataDir, key);
    const models = this.opts.modelIdentities ?? this.opts.backend.models();
    const validity = this.opts.trust.certValidityMs ?? CERT_VALIDITY_MS;
    // The E2E key is in the claims, so the quote binds it: clients seal requests to it.
    const e2e = { suite: e2eKey.suite, publicKey: e2eKey.publicKeyHex };
    const issue = async () => {
      const made = await makeCredentials(key, 'worker', this.opts.trust.provider, models, validity, { e2e });
      // Verified as a peer would verify it: the tier and image its receipts name are what the quote proves.
      const self = await verifyPeerCertificate(made.cert.certDer, { verifiers: this.opts.trust.verifiers });
      this.certificates.add(createHash('sha256').update(made.cert.certDer).digest('hex'), self.attestation);
      return made.credentials;
    };
    const credentials = await issue();
    this.stopRotation = rotateCredentials(
      issue,
      (c) => {
        for (const l of this.links) l.setCredentials(c);
      },
      validity,
      (err) => this.log.error({ err: String(err) }, 'certificate rotation failed'),
    );
    for (const p of this.opts.proxies) {
      const link = new PeerLink({
        host: p.host,
        port: p.port,
        credentials,
        trust: peerTrust(this.opts.trust, ['proxy']),
        session: { hello: { role: 'worker', name: this.opts.name, info: this.info() } },
      });
      link.on('up', (session, peer) => {
        this.proxyOf.set(session, peer);
        this.log.info({ proxy: link.address, tier: peer.attestation.tier }, 'connected to proxy');
        session.on('stream', (stream) => void this.serve(stream, session));
        try {
          this.opts.payments?.attach(session, peer);
          link.accepted();
        } catch (err) {
          // Logged once, with the retry, by 'down'.
          link.refuse(
            new ProtocolError(
              `cannot be paid by this proxy: ${(err as Error).message}`,
              'payments_unavailable',
            ),
          );
        }
      });
      // One line per backoff step; the link retries whether the proxy restarted, cut us off or refused us.
      link.on('down', (err, { retryInMs, refused }) =>
        this.log.warn(
          { proxy: link.address, err: err.message, retryInMs },
          refused ? 'proxy refused; retrying after backoff' : 'proxy link down',
        ),
      );
      this.links.push(link.start());
    }
    this.opts.payments?.start();
    if (this.opts.statsPort !== null && this.opts.statsPort !== undefined) {
      this.adminToken = await loadOrCreateAdminToken(this.opts.dataDir);
      this.statsServer = await listenStats({
        host: this.opts.statsHost ?? '127.0.0.1',
        port: this.opts.statsPort,
        title: `Cocoon worker ${this.opts.name}`,
        stats: () => this.stats(),
        metrics: this.metrics,
        routes: adminRoutes(this, this.adminToken),
      });
    }
    return this;
  }

  /** What this worker announces to each proxy. */
  info(): WorkerInfo {
    const perProxy = Math.max(1, Math.ceil(this.opts.maxConcurrent / Math.max(1, this.opts.proxies.length)));
    return {
      models: this.opts.backend.models().map((name) => ({
        name,
        maxConcurrent: perProxy,
        coefficient: this.opts.coefficient,
      })),
      enabled: this.enabled && !this.draining,
      backend: this.opts.backend.kind,
      ...this.opts.payments?.helloInfo,
    };
  }

  /** Workers can take themselves out of routing (and back) without disconnecting. */
  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.log.info({ enabled }, 'routing to this worker changed by its operator');
    this.broadcastStatus();
  }

  /** A new price takes effect for the next requests the proxies route here. */
  setCoefficient(coefficient: number): void {
    this.opts.coefficient = coefficient;
    this.log.info({ coefficient }, 'price coefficient changed by its operator');
    this.broadcastStatus();
  }

  adminStatus(): { enabled: boolean; coefficient: number } {
    return { enabled: this.enabled, coefficient: this.opts.coefficient };
  }

  private broadcastStatus(): void {
    for (const l of this.links) l.session?.sendControl({ type: 'worker.status', info: this.info() });
  }

  get connectedProxies(): number {
    return this.links.filter((l) => l.session && !l.session.closed).length;
  }

  private async serve(stream: Stream, session: Session): Promise<void> {
    const parsed = callSchema.safeParse(stream.header);
    if (!parsed.success || parsed.data.method !== 'inference') {
      stream.reset(new BadRequestError('worker accepts only inference calls', null, 'unsupported_call'));
      return;
    }
    const { requestId, request: call, certificate } = parsed.data;
    if (!this.opts.backend.models().includes(call.model)) {
      stream.reset(new ModelNotFoundError(call.model));
      return;
    }
    if (this.counters.running >= this.opts.maxConcurrent || !this.enabled || this.draining) {
      const e = this.draining
        ? new ServiceUnavailableError('worker is shutting down', 'worker_draining').retryAfterSeconds(1)
        : this.enabled
          ? new RateLimitError('worker is at capacity', 'worker_busy')
          : new RateLimitError('worker is disabled by its operator', 'worker_disabled', 5);
      this.tally.refused(e);
      stream.reset(e);
      return;
    }
    const started = performance.now();
    this.counters.running++;
    this.counters.total++;
    // The engine call is abandoned both when the proxy resets the stream and when the time budget ends.
    const abort = new AbortController();
    stream.onReset((e) => abort.abort(e));
    const timer = setTimeout(
      () => abort.abort(new GatewayTimeoutError(`inference exceeded its ${call.timeoutMs} ms budget`)),
      call.timeoutMs,
    );
    const finish = (outcome: Outcome, error?: CocoonError, usage?: TokenUsage) =>
      this.tally.finish({
        requestId,
        model: call.model,
        worker: this.opts.name,
        outcome,
        error,
        seconds: (performance.now() - started) / 1000,
        usage,
        attempts: 1,
      });
    let gen: AsyncGenerator<ReplyPart, void, void> | null = null;
    try {
      const opened = await openCall(stream, requestId, call, certificate, this.certificates, this.e2eKey!);
      gen = this.opts.backend.infer(opened.request, abort.signal);
      const final = await this.relayParts(gen, opened.reply, opened.request, started);
      const ending = await opened.reply.end(final.tail);
      const usage = this.signable(final.usage, opened, requestId);
      const trailer: WorkerTrailer = {
        usage,
        worker: this.opts.name,
        workerMs: performance.now() - started,
        ...ending,
        ...(receiptRequired(call)
          ? { receipt: this.receipt(session, requestId, call.model, certificate, opened, usage) }
          : {}),
      };
      stream.end(trailer);
      finish('ok', undefined, usage);
    } catch (err) {
      if (stream.resetError) {
        finish('cancelled', stream.resetError);
        await gen?.return().catch(() => {});
      } else {
        const e = asCocoonError(err);
        this.log.warn({ requestId, err: e.message }, 'inference failed');
        finish('failed', e);
        stream.reset(err);
      }
    } finally {
      clearTimeout(timer);
      this.counters.running--;
    }
  }

  /**
   * The usage this worker reports and signs: the engine's, within what the reply carries as the proxy and
   * the client count it (OutputObserver). A claim beyond it the proxy would cut down in the clear, and a
   * client would dispute when sealed, and have this worker cut off.
   */
  private signable(reported: TokenUsage, opened: OpenedCall, requestId: string): TokenUsage {
    const req = opened.request;
    const usage = boundUsage(reported, {
      callBytes: Number.POSITIVE_INFINITY,
      maxCompletionTokens: maxCompletionTokens(req),
      observedCompletionTokens: opened.reply.output.completionTokens(req.n),
    });
    if (usage.completionTokens !== reported.completionTokens) {
      this.counters.usageClamped++;
      this.log.warn(
        { requestId, reported: reported.completionTokens, carried: usage.completionTokens },
        'engine reported more completion tokens than its reply carries; signing what it carries',
      );
    }
    return usage;
  }

  /** What this worker signs it served: the request, the reply the client will read, the money. */
  private receipt(
    session: Session,
    requestId: string,
    model: string,
    certificate: string | undefined,
    opened: OpenedCall,
    usage: TokenUsage,
  ): Receipt {
    const cert = this.certificates.pick(certificate);
    const coefficient = this.opts.coefficient;
    const terms = this.opts.payments?.receiptTerms(session, usage, coefficient);
    return this.receipts!.sign({
      network: terms?.network ?? null,
      proxyContract: terms?.proxyContract ?? null,
      proxy: this.proxyOf.get(session)?.publicKey ?? '0'.repeat(64),
      requestId,
      requestHash: opened.requestHash,
      replyHash: opened.reply.hasher.digest(),
      model: attestedModel({ models: this.opts.modelIdentities }, model) ?? model,
      image: cert.attestation.imageHash,
      tier: cert.attestation.tier,
      certificate: cert.hash,
      usage,
      coefficient,
      cost: terms?.cost ?? null,
    });
  }

  /**
   * Sends the backend's parts down the stream, in order. A whole reply goes as one part; a stream's usage
   * chunk is kept for the trailer (`tail`), so the client can write the request's cost into it.
   */
  private async relayParts(
    gen: AsyncGenerator<ReplyPart, void, void>,
    reply: ReplyWriter,
    req: InferenceRequest,
    started: number,
  ): Promise<{ usage: TokenUsage; tail: string | null }> {
    let first = true;
    for await (const part of gen) {
      if (first && req.stream) this.metrics.firstToken((performance.now() - started) / 1000);
      first = false;
      if (part.type === 'final') {
        if (!req.stream && part.json !== null) await reply.whole(part.json);
        return { usage: part.usage, tail: req.stream ? part.json : null };
      }
      await reply.chunk(part.json);
    }
    throw new BadGatewayError(`backend ${this.opts.backend.kind} ended without usage`, 'engine_no_usage');
  }

  stats() {
    return {
      role: 'worker',
      name: this.opts.name,
      trust: trustLabel(this.opts.trust.mode),
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      enabled: this.enabled,
      backend: this.opts.backend.kind,
      models: this.opts.backend.models(),
      coefficient: this.opts.coefficient,
      maxConcurrent: this.opts.maxConcurrent,
      requests: { ...this.counters },
      engine: this.opts.backend.guardStats?.() ?? null,
      payments: this.opts.payments?.stats() ?? 'off',
      proxies: this.links.map((l) => ({
        address: l.address,
        connected: !!l.session && !l.session.closed,
        connects: l.connects,
        lastError: l.lastError?.message ?? null,
        refused: l.refusal?.message ?? null,
        retryInMs: l.retryAt === null ? null : Math.max(0, l.retryAt - Date.now()),
      })),
    };
  }

  /** The sessions currently up (tests and diagnostics). */
  sessions(): Session[] {
    return this.links.flatMap((l) => (l.session ? [l.session] : []));
  }

  /**
   * Graceful shutdown, first half: the proxies stop routing here (we announce ourselves disabled), new
   * calls are refused (a proxy re-dispatches them), running ones finish, for at most `timeoutMs`.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    this.broadcastStatus();
    return waitUntil(() => this.counters.running === 0, timeoutMs);
  }

  async stop(): Promise<void> {
    this.stopRotation();
    for (const l of this.links) l.stop();
    await this.statsServer?.close();
    await this.opts.payments?.stop();
    await this.opts.backend.close?.();
  }
}
