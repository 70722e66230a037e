import { Address } from '@ton/core';
import { loadOrCreateNodeKey, rawPublicKeyFromHex } from '../attest/identity.ts';
import { checkPeerPolicy } from '../attest/policy.ts';
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
  CancelledError,
  CocoonError,
  GatewayTimeoutError,
  ProtocolError,
  ServiceUnavailableError,
  toWireError,
} from '../errors.ts';
import type { Session } from '../net/session.ts';
import type { Stream } from '../net/stream.ts';
import { listenForPeers, type PeerListener } from '../net/tls.ts';
import { requestCounters } from '../ops/counters.ts';
import { listenStats } from '../ops/http.ts';
import { type Logger, silentLogger } from '../ops/log.ts';
import { NodeMetrics, tonGauge } from '../ops/metrics.ts';
import { errorFields, type RecentRequest, RecentRequests } from '../ops/recent-requests.ts';
import { waitUntil } from '../ops/wait.ts';
import type { ClientAccount } from '../pay/client-account.ts';
import { type RequestCost, usageBeyondBound } from '../pay/pricing.ts';
import { type InferenceRequest, type TokenUsage, ZERO_USAGE } from '../protocol/inference.ts';
import {
  type Call,
  callSchema,
  clientInfoSchema,
  controlSchema,
  type InferenceTrailer,
  inferenceTrailerSchema,
  type ModelList,
  parseMessage,
  workerInfoSchema,
} from '../protocol/messages.ts';
import type { ProxyBilling } from './billing.ts';
import { chooseWorker } from './router.ts';
import { type WorkerConnection, WorkerRegistry } from './worker-registry.ts';

/** What the proxy knows about a request once it is over: the seam for payments (billing, settlement). */
export interface FinishedRequest {
  requestId: string;
  client: PeerIdentity;
  worker: { name: string; publicKey: string; coefficient: number };
  request: InferenceRequest;
  /** Final token counts; zero when the request failed before the worker reported any. */
  usage: TokenUsage;
  ok: boolean;
  error?: CocoonError;
  durationMs: number;
}

export interface ProxyOptions {
  name: string;
  dataDir: string;
  host: string;
  workerPort: number;
  clientPort: number;
  trust: TrustSetup;
  statsHost?: string;
  statsPort?: number | null;
  logger?: Logger;
  /** Called once per request that reached a worker, with its final token counts. */
  onRequestFinished?: (r: FinishedRequest) => void;
  /** Payments on TON; without it the proxy serves for free (and says so in its stats). */
  billing?: { desk: ProxyBilling; proxyContract: string };
  /** Workers one request may try (re-dispatch before its first token); default 3. */
  maxAttempts?: number;
}

/** Each hop keeps a little of the time budget for itself, as the original does (×0.95). */
const HOP_TIME_SHARE = 0.95;

/** Output-less parts (a stream's role chunk) held back before the first token, at most. */
const MAX_HELD_PARTS = 4;

/** Where a request is in its relay, kept across attempts so a failure knows what the caller already got. */
interface Relay {
  worker?: WorkerConnection;
  coefficient?: number;
  workerStream: Stream | null;
  /** Parts (or the worker's identity) have gone to the caller: no other worker may take over now. */
  committed: boolean;
  /** Output parts relayed to the caller. */
  delivered: number;
  /** When the proxy received the request (performance.now()). */
  started: number;
}

/** Worth another worker: it was lost, broke, was busy, or did not serve the model after all. */
function isRetryable(e: CocoonError): boolean {
  return (e.status >= 500 && e.status !== 504) || e.status === 429 || e.code === 'model_not_found';
}

/** Counts against the worker's health (busy is honest; a timeout may be the caller's short deadline). */
function isWorkerFault(e: CocoonError): boolean {
  return e.status >= 500 && e.status !== 504;
}

function maxCompletionTokens(r: InferenceRequest): number {
  return r.maxTokens * (typeof r.body.n === 'number' ? r.body.n : 1);
}

/** Does a stream part carry generated output (text, reasoning, a tool call), or is it only framing? */
function carriesOutput(part: Buffer): boolean {
  let chunk: { choices?: { text?: string; delta?: Record<string, unknown> }[] };
  try {
    chunk = JSON.parse(part.toString('utf8'));
  } catch {
    return true; // not a chunk we understand: relay it rather than hold it
  }
  for (const c of chunk.choices ?? []) {
    if (c.text) return true;
    const d = c.delta;
    if (d && (d.content || d.reasoning_content || d.tool_calls || d.refusal)) return true;
  }
  return false;
}

function wireCost(cost: RequestCost) {
  return {
    prompt: cost.promptCost.toString(),
    completion: cost.completionCost.toString(),
    total: cost.totalCost.toString(),
  };
}

/**
 * The proxy daemon: accepts workers and clients over mutually verified TLS, routes each inference call to
 * the best eligible worker, relays the stream back, and reports each finished request with its token counts.
 */
export class ProxyNode {
  readonly registry = new WorkerRegistry();
  private readonly log: Logger;
  private readonly startedAt = Date.now();
  private workerListener: PeerListener | null = null;
  private clientListener: PeerListener | null = null;
  private statsServer: Awaited<ReturnType<typeof listenStats>> | null = null;
  private readonly clients = new Set<Session>();
  readonly counters = { ...requestCounters(), redispatched: 0 };
  readonly recent = new RecentRequests();
  readonly refusals: Record<string, number> = {};
  private stopRotation: () => void = () => {};
  private draining = false;

  /** The accounting hook (payments plug in here); may be set after construction. */
  onRequestFinished: ((r: FinishedRequest) => void) | undefined;

  readonly metrics: NodeMetrics;

  constructor(private readonly opts: ProxyOptions) {
    this.log = opts.logger ?? silentLogger;
    this.onRequestFinished = opts.onRequestFinished;
    this.metrics = new NodeMetrics('proxy', opts.name);
    this.describeMetrics();
  }

  /** What `/metrics` reads from this proxy when scraped. */
  private describeMetrics(): void {
    const m = this.metrics;
    const workers = () => this.registry.all();
    m.gauge('cocoon_requests_in_flight', 'Requests being served now.', () => this.counters.inFlight);
    m.gauge(
      'cocoon_connected_peers',
      'Sessions up, by peer role.',
      () => [
        [{ peer: 'worker' }, this.registry.size],
        [{ peer: 'client' }, this.clients.size],
      ],
      ['peer'],
    );
    m.counterFrom(
      'cocoon_redispatches_total',
      'Requests moved to another worker after a failure before their first token.',
      () => this.counters.redispatched,
    );
    m.counterFrom(
      'cocoon_peer_refusals_total',
      'Peers refused or cut off (attestation, policy, protocol violations), by reason.',
      () => Object.entries(this.refusals).map(([code, n]) => [{ code }, n]),
      ['code'],
    );
    m.counterFrom(
      'cocoon_worker_requests_total',
      'Requests routed to each connected worker, by result.',
      () =>
        workers().flatMap((w) => [
          [{ worker: w.name, result: 'ok' }, w.succeeded],
          [{ worker: w.name, result: 'failed' }, w.failed],
        ]),
      ['worker', 'result'],
    );
    m.gauge(
      'cocoon_worker_running',
      'Requests running on each worker.',
      () => workers().map((w) => [{ worker: w.name }, w.running]),
      ['worker'],
    );
    m.gauge(
      'cocoon_worker_failure_rate',
      'Recent share of failed requests of each worker (0..1), as routing weighs it.',
      () => workers().map((w) => [{ worker: w.name }, w.health.failureRate]),
      ['worker'],
    );
    m.gauge(
      'cocoon_worker_cooling',
      '1 while a worker is excluded from routing after failures.',
      () => workers().map((w) => [{ worker: w.name }, w.health.state === 'cooling' ? 1 : 0]),
      ['worker'],
    );
    const desk = this.opts.billing?.desk;
    if (!desk) return;
    const t = desk.totals;
    m.counterFrom('cocoon_billed_ton_total', 'TON billed to clients.', () => tonGauge(t.billed));
    m.counterFrom('cocoon_unpaid_ton_total', 'TON of bills clients left unsigned.', () => tonGauge(t.unpaid));
    m.counterFrom(
      'cocoon_settlements_total',
      'On-chain settlements of client authorisations.',
      () => t.settlements,
    );
    m.counterFrom('cocoon_payouts_signed_total', 'Worker payouts signed.', () => t.payoutsSigned);
    m.gauge('cocoon_unredeemed_ton', 'TON authorised by clients, not yet settled on-chain.', () =>
      tonGauge(desk.unredeemed()),
    );
  }

  private get maxAttempts(): number {
    return this.opts.maxAttempts ?? 3;
  }

  get workerPort(): number {
    return this.workerListener!.port;
  }
  get clientPort(): number {
    return this.clientListener!.port;
  }
  get statsUrl(): string | null {
    return this.statsServer?.url ?? null;
  }

  /** The client sessions up now (tests and diagnostics). */
  clientSessions(): Session[] {
    return [...this.clients];
  }

  /** The money desk and the proxy contract, when this proxy takes payments. */
  get billing(): ProxyOptions['billing'] | null {
    return this.opts.billing ?? null;
  }

  async start(): Promise<this> {
    this.opts.trust.policy.onChange(() => this.recheckWorkers());
    const key = await loadOrCreateNodeKey(this.opts.dataDir);
    const validity = this.opts.trust.certValidityMs ?? CERT_VALIDITY_MS;
    const issue = async () =>
      (await makeCredentials(key, 'proxy', this.opts.trust.provider, undefined, validity)).credentials;
    const credentials = await issue();
    const onRefused = (err: CocoonError, remote: string) => {
      const code = err.code ?? 'refused';
      this.refusals[code] = (this.refusals[code] ?? 0) + 1;
      this.log.warn({ remote, code, reason: err.message }, 'peer refused');
    };
    this.workerListener = await listenForPeers({
      host: this.opts.host,
      port: this.opts.workerPort,
      credentials,
      trust: peerTrust(this.opts.trust, ['worker']),
      session: {
        hello: { role: 'proxy', name: this.opts.name, info: this.helloInfo() },
        acceptHello: (hello) => {
          const info = workerInfoSchema.parse(hello.info); // refuse a worker that does not say what it serves
          if (this.opts.billing && !info.payoutAddress) {
            throw new ProtocolError(
              'this proxy pays workers on TON: announce a payoutAddress',
              'payout_address_required',
            );
          }
        },
      },
      onSession: (session, peer) => this.addWorker(session, peer),
      onRefused,
    });
    this.clientListener = await listenForPeers({
      host: this.opts.host,
      port: this.opts.clientPort,
      credentials,
      trust: peerTrust(this.opts.trust, ['client']),
      session: {
        hello: { role: 'proxy', name: this.opts.name, info: this.helloInfo() },
        acceptHello: (hello) => {
          if (this.opts.billing) clientInfoSchema.parse(hello.info);
        },
      },
      onSession: (session, peer) => this.addClient(session, peer),
      onRefused,
    });
    this.stopRotation = rotateCredentials(
      issue,
      (c) => {
        this.workerListener?.setCredentials(c);
        this.clientListener?.setCredentials(c);
      },
      validity,
      (err) => this.log.error({ err: String(err) }, 'certificate rotation failed'),
    );
    if (this.opts.statsPort !== null && this.opts.statsPort !== undefined) {
      this.statsServer = await listenStats({
        host: this.opts.statsHost ?? '127.0.0.1',
        port: this.opts.statsPort,
        title: `Cocoon proxy ${this.opts.name}`,
        stats: () => this.stats(),
        metrics: this.metrics,
      });
    }
    return this;
  }

  private checkPolicy(peer: PeerIdentity): void {
    checkPeerPolicy(peer, this.opts.trust.policy.current());
  }

  /** The allow-lists changed (root contract or config): workers no longer on them are dropped. */
  private recheckWorkers(): void {
    for (const w of this.registry.all()) {
      try {
        this.checkPolicy(w.peer);
      } catch (err) {
        const e = err as CocoonError;
        this.refusals[e.code ?? 'refused'] = (this.refusals[e.code ?? 'refused'] ?? 0) + 1;
        this.log.warn({ worker: w.name, code: e.code, reason: e.message }, 'worker dropped by policy');
        w.session.close(e);
      }
    }
  }

  private addWorker(session: Session, peer: PeerIdentity): void {
    const hello = session.peerHello!;
    const info = workerInfoSchema.parse(hello.info);
    const w = this.registry.add(session, peer, hello.name, info);
    if (this.opts.billing && info.payoutAddress) {
      w.account = this.opts.billing.desk.attachWorker(session, Address.parse(info.payoutAddress));
    }
    this.log.info(
      { worker: w.name, models: info.models.map((m) => m.name), tier: peer.attestation.tier },
      'worker joined',
    );
    session.on('control', (payload) => {
      try {
        const msg = parseMessage(controlSchema, payload, 'control');
        if (msg.type === 'worker.status') w.info = msg.info;
      } catch (err) {
        session.fail(err);
      }
    });
    session.on('stream', (s) =>
      s.reset(new BadRequestError('workers may not open calls', null, 'unsupported_call')),
    );
    session.once('close', (err) => {
      this.registry.remove(w);
      this.countViolation(session, `worker ${w.name}`);
      this.log.info({ worker: w.name, reason: err?.message }, 'worker left');
    });
  }

  private addClient(session: Session, peer: PeerIdentity): void {
    this.clients.add(session);
    session.once('close', () => {
      this.clients.delete(session);
      this.countViolation(session, 'client');
    });
    const billing = this.opts.billing;
    if (!billing) {
      session.on('stream', (stream) => void this.onClientCall(stream, peer, null));
      return;
    }
    // Calls wait for the account (one chain read); control messages are taken in order once it is known.
    const { wallet } = clientInfoSchema.parse(session.peerHello!.info);
    const account = billing.desk.attachClient(
      session,
      Address.parse(wallet),
      rawPublicKeyFromHex(peer.publicKey),
    );
    account.catch((err) => {
      this.log.warn({ err: String(err) }, 'client account unavailable');
      session.close(
        new ServiceUnavailableError('the proxy cannot read your client contract now', 'chain_unavailable'),
      );
    });
    session.on('stream', (stream) => {
      account.then((a) => this.onClientCall(stream, peer, a)).catch((err) => stream.reset(err));
    });
    // In arrival order (callbacks on one promise run in order, and each checks its authorisation before
    // its first await), while ledger commits of consecutive messages overlap.
    session.on('control', (payload) => {
      account
        .then((a) =>
          billing.desk.onClientControl(a, session, parseMessage(controlSchema, payload, 'control')),
        )
        .catch((err) => session.fail(err));
    });
  }

  /** A peer we hung up on for breaking the protocol: counted by reason (`/jsonstats`, `/metrics`) and logged. */
  private countViolation(session: Session, who: string): void {
    const v = session.violation;
    if (!v) return;
    const code = v.code ?? 'protocol_error';
    this.refusals[code] = (this.refusals[code] ?? 0) + 1;
    this.log.warn(
      { peer: who, remote: session.socket.remoteAddress, code, reason: v.message },
      'peer broke the protocol; disconnected',
    );
  }

  private helloInfo(): Record<string, string> | undefined {
    return this.opts.billing ? { proxyContract: this.opts.billing.proxyContract } : undefined;
  }

  private async onClientCall(
    stream: Stream,
    client: PeerIdentity,
    account: ClientAccount | null,
  ): Promise<void> {
    const parsed = callSchema.safeParse(stream.header);
    if (!parsed.success) {
      stream.reset(new ProtocolError(`malformed call: ${parsed.error.issues[0]?.message}`, 'bad_message'));
      return;
    }
    const call: Call = parsed.data;
    if (this.draining && call.method === 'inference') {
      this.counters.rejected++;
      stream.reset(
        new ServiceUnavailableError(
          'This proxy is shutting down; retry shortly.',
          'proxy_draining',
        ).retryAfterSeconds(1),
      );
      return;
    }
    if (call.method === 'models') {
      void stream.write(JSON.stringify(this.modelList()));
      stream.end();
      return;
    }
    await this.forwardInference(stream, client, account, call.requestId, call.request as InferenceRequest);
  }

  /**
   * Relays one inference call to a worker and its stream back, with cancellation both ways. A worker that
   * fails before anything reached the caller is replaced by another (bounded attempts, within the
   * deadline); one that fails after ends the stream with an error, and only what was delivered is billed.
   */
  private async forwardInference(
    clientStream: Stream,
    client: PeerIdentity,
    account: ClientAccount | null,
    requestId: string,
    request: InferenceRequest,
  ): Promise<void> {
    this.counters.total++;
    const started = performance.now();
    const desk = this.opts.billing?.desk;
    const tried = new Set<WorkerConnection>();
    let worker: WorkerConnection;
    let reservation = 0n;
    try {
      worker = chooseWorker(this.registry, request.model, request.maxCoefficient, request.minTier);
      // Refused here, before any worker runs, if the client's credit cannot cover the worst case.
      if (desk && account) reservation = desk.reserve(account, request, clientStream.headerBytes);
    } catch (err) {
      this.counters.rejected++;
      const e = asCocoonError(err);
      this.metrics.finished('rejected', e.code, (performance.now() - started) / 1000);
      this.remember(requestId, request, null, e, started, ZERO_USAGE, null, 0);
      clientStream.reset(err);
      return;
    }
    const relay: Relay = { workerStream: null, committed: false, delivered: 0, started };
    const timer = setTimeout(() => {
      const e = new GatewayTimeoutError(`Request timed out after ${request.timeoutMs} ms.`);
      relay.workerStream?.reset(e);
      clientStream.reset(e);
    }, request.timeoutMs);
    clientStream.onReset(() => relay.workerStream?.reset(new CancelledError()));
    this.counters.inFlight++;
    let usage: TokenUsage = ZERO_USAGE;
    let cost: RequestCost | null = null;
    let error: CocoonError | undefined;
    let callerCancelled = false;
    let served = false; // the worker's part is done: what fails now is billing, not the worker
    try {
      const trailer = await this.dispatch(clientStream, requestId, request, worker, tried, relay, started);
      served = true;
      worker = relay.worker!;
      usage = trailer.usage;
      const { tail } = trailer;
      const tailPart = tail !== undefined ? { tail } : {};
      if (desk && account) {
        // The reply is released only once the client's signature for it is in the ledger.
        cost = await desk.bill(account, requestId, usage, relay.coefficient!, reservation, worker.account!);
        clientStream.end({ usage, cost: wireCost(cost), ...tailPart });
      } else {
        clientStream.end({ usage, ...tailPart });
      }
    } catch (err) {
      worker = relay.worker ?? worker;
      error = asCocoonError(err);
      // Decided before we reset the client's stream ourselves: was it the caller who went away?
      callerCancelled = clientStream.resetError !== null && error.status !== 504;
      if (callerCancelled) {
        this.counters.cancelled++;
      } else {
        if (relay.committed && !served) {
          ({ usage, cost, error } = await this.settlePartial(
            relay,
            request,
            requestId,
            error,
            account,
            reservation,
          ));
        }
        clientStream.reset(error);
      }
      if (!(err instanceof CocoonError)) this.log.error({ err: toWireError(err), requestId }, 'relay failed');
    } finally {
      clearTimeout(timer);
      if (account && reservation > 0n) account.release(reservation);
      this.counters.inFlight--;
    }
    const ok = error === undefined;
    if (ok) {
      this.counters.succeeded++;
      this.counters.promptTokens += usage.promptTokens;
      this.counters.completionTokens += usage.completionTokens;
    } else if (!callerCancelled) {
      this.counters.failed++;
    }
    const outcome = ok ? 'ok' : callerCancelled ? 'cancelled' : 'failed';
    const seconds = (performance.now() - started) / 1000;
    this.metrics.finished(outcome, error?.code ?? null, seconds, usage.promptTokens, usage.completionTokens);
    this.log.debug(
      { requestId, worker: worker.name, outcome, code: error?.code, seconds },
      'request finished',
    );
    this.remember(requestId, request, worker, error, started, usage, cost, tried.size, outcome);
    this.onRequestFinished?.({
      requestId,
      client,
      worker: { name: worker.name, publicKey: worker.peer.publicKey, coefficient: relay.coefficient ?? 0 },
      request,
      usage,
      ok,
      ...(error ? { error } : {}),
      durationMs: performance.now() - started,
    });
  }

  /**
   * Tries workers until one answers. Before anything reached the caller a failed worker is replaced;
   * `relay` says, when this throws, whether the caller got parts already and from which worker.
   */
  private async dispatch(
    clientStream: Stream,
    requestId: string,
    request: InferenceRequest,
    first: WorkerConnection,
    tried: Set<WorkerConnection>,
    relay: Relay,
    started: number,
  ): Promise<InferenceTrailer> {
    let worker = first;
    for (let attempt = 1; ; attempt++) {
      tried.add(worker);
      relay.worker = worker;
      relay.coefficient = worker.model(request.model)!.coefficient;
      const attemptStarted = performance.now();
      const remaining = request.timeoutMs - (attemptStarted - started);
      // Each hop keeps a little of the time budget for itself, as the original does.
      const forwarded = { ...request, timeoutMs: Math.max(1, Math.floor(remaining * HOP_TIME_SHARE)) };
      worker.running++;
      worker.total++;
      let e: CocoonError;
      try {
        const trailer = await this.relayFrom(worker, clientStream, requestId, forwarded, relay);
        worker.recordSuccess(performance.now() - attemptStarted);
        return trailer;
      } catch (err) {
        e = asCocoonError(err);
      } finally {
        worker.running--;
      }
      if (clientStream.resetError) throw e; // the caller went away, or the deadline passed
      worker.recordFailure(isWorkerFault(e));
      if (relay.committed || !isRetryable(e) || attempt >= this.maxAttempts) throw e;
      let next: WorkerConnection;
      try {
        next = chooseWorker(this.registry, request.model, request.maxCoefficient, request.minTier, tried);
      } catch {
        throw e; // nobody else can take it: the caller learns what went wrong with the one that tried
      }
      this.counters.redispatched++;
      this.log.warn(
        { requestId, worker: worker.name, next: next.name, code: e.code, reason: e.message },
        'worker failed before the first token; re-dispatching',
      );
      worker = next;
    }
  }

  /**
   * One try on one worker. Parts that carry no output yet (a stream's role chunk) are held back, so a
   * worker failing before its first token can still be replaced without the caller seeing anything.
   */
  private async relayFrom(
    worker: WorkerConnection,
    clientStream: Stream,
    requestId: string,
    forwarded: InferenceRequest,
    relay: Relay,
  ): Promise<InferenceTrailer> {
    const ws = worker.session.openStream({ method: 'inference', requestId, request: forwarded });
    relay.workerStream = ws;
    ws.end(); // the call is all in OPEN; no request body follows
    const held: Buffer[] = [];
    const commit = async () => {
      relay.committed = true;
      if (forwarded.stream) this.metrics.firstToken((performance.now() - relay.started) / 1000);
      // The caller learns who serves it (tier, image, model identity) before the first token.
      clientStream.sessionControl({
        type: 'request.serving',
        requestId,
        serving: worker.serving(forwarded.model),
      });
      for (const part of held) {
        const p = clientStream.write(part);
        if (p) await p;
      }
    };
    for await (const part of ws) {
      if (!relay.committed) {
        if (held.length < MAX_HELD_PARTS && !carriesOutput(part)) {
          held.push(part);
          continue;
        }
        await commit();
      }
      relay.delivered++;
      const p = clientStream.write(part);
      if (p) await p;
    }
    const parsed = inferenceTrailerSchema.safeParse(ws.trailer);
    if (!parsed.success) throw this.misbehaved(worker, 'worker sent a malformed trailer', 'bad_message');
    const over = usageBeyondBound(
      parsed.data.usage,
      clientStream.headerBytes,
      maxCompletionTokens(forwarded),
    );
    if (over) throw this.misbehaved(worker, over, 'usage_over_bound');
    if (!forwarded.stream && relay.delivered === 0 && held.length === 0 && parsed.data.tail === undefined) {
      throw this.misbehaved(worker, 'worker ended a reply without a body', 'empty_reply');
    }
    if (!relay.committed) await commit();
    return parsed.data;
  }

  /** A worker broke the protocol: it is disconnected (its other calls fail over) and the request fails. */
  private misbehaved(worker: WorkerConnection, message: string, code: string): ProtocolError {
    const e = new ProtocolError(`worker ${worker.name}: ${message}`, code);
    this.refusals[code] = (this.refusals[code] ?? 0) + 1;
    this.log.warn({ worker: worker.name, code, reason: message }, 'worker misbehaved; disconnecting it');
    worker.session.close(e);
    return e;
  }

  /**
   * A stream that failed after parts reached the caller: bill what was delivered (engines stream one
   * token per part; prompt tokens are not billed, the caller did not get its answer) and say so.
   */
  private async settlePartial(
    relay: Relay,
    request: InferenceRequest,
    requestId: string,
    cause: CocoonError,
    account: ClientAccount | null,
    reservation: bigint,
  ): Promise<{ usage: TokenUsage; cost: RequestCost | null; error: CocoonError }> {
    const delivered = Math.min(relay.delivered, maxCompletionTokens(request));
    const usage: TokenUsage = { ...ZERO_USAGE, completionTokens: delivered };
    const desk = this.opts.billing?.desk;
    const workerAccount = relay.worker?.account;
    let cost: RequestCost | null = null;
    let charged = '';
    if (desk && account && workerAccount) {
      charged = ' Nothing is charged for it.';
      if (delivered > 0) {
        try {
          cost = await desk.bill(account, requestId, usage, relay.coefficient!, reservation, workerAccount);
          charged = ` Only the ${delivered} delivered tokens are charged (${cost.totalCost} nanoton).`;
        } catch (err) {
          this.log.warn({ requestId, err: String(err) }, 'bill for the delivered tokens failed');
        }
      }
    }
    const error =
      cause.status === 504
        ? new GatewayTimeoutError(
            `${cause.message.replace(/\.?$/, '.')} ${delivered} tokens were delivered.${charged}`,
          )
        : new BadGatewayError(
            `The worker serving this request failed after ${delivered} tokens were delivered (${cause.message}).${charged}`,
            'worker_failed_mid_stream',
          );
    return { usage, cost, error };
  }

  private remember(
    requestId: string,
    request: InferenceRequest,
    worker: WorkerConnection | null,
    error: CocoonError | undefined,
    started: number,
    usage: TokenUsage,
    cost: RequestCost | null,
    attempts: number,
    outcome: RecentRequest['outcome'] = 'rejected',
  ): void {
    this.recent.add({
      at: Date.now(),
      requestId,
      model: request.model,
      worker: worker?.name ?? null,
      outcome,
      ...errorFields(error),
      durationMs: Math.round((performance.now() - started) * 100) / 100,
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      costNanoton: cost ? cost.totalCost.toString() : null,
      attempts,
    });
  }

  modelList(): ModelList {
    return {
      models: this.registry.models().map((id) => ({
        id,
        workers: this.registry
          .serving(id)
          .filter((w) => w.info.enabled)
          .map((w) => {
            const m = w.model(id)!;
            return {
              coefficient: m.coefficient,
              running: w.running,
              maxConcurrent: m.maxConcurrent,
              tier: w.peer.attestation.tier,
            };
          })
          .sort((a, b) => a.coefficient - b.coefficient),
      })),
    };
  }

  stats() {
    return {
      role: 'proxy',
      name: this.opts.name,
      trust: trustLabel(this.opts.trust.mode),
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      connections: { workers: this.registry.size, clients: this.clients.size },
      requests: { ...this.counters },
      refusals: { ...this.refusals },
      payments: this.opts.billing
        ? { contract: this.opts.billing.proxyContract, ...this.opts.billing.desk.stats() }
        : 'off (free service)',
      workers: this.registry.all().map((w) => ({
        name: w.name,
        models: w.info.models.map((m) => m.name).join(', '),
        tier: w.peer.attestation.tier,
        enabled: w.info.enabled,
        coefficient: w.info.models[0]?.coefficient ?? null,
        running: w.running,
        maxConcurrent: w.info.models[0]?.maxConcurrent ?? null,
        total: w.total,
        succeeded: w.succeeded,
        failed: w.failed,
        avgQueryMs: w.avgQueryMs === null ? null : Math.round(w.avgQueryMs * 100) / 100,
        health: w.health.snapshot(),
      })),
      recent: this.recent.list(),
    };
  }

  /**
   * Graceful shutdown, first half: new requests are refused (clients are told, so they go elsewhere),
   * requests in flight finish and their bills are signed, for at most `timeoutMs`. True if all finished.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    for (const s of this.clients) s.sendControl({ type: 'proxy.draining' });
    const idle = () => this.counters.inFlight === 0;
    return waitUntil(idle, timeoutMs);
  }

  async stop(): Promise<void> {
    this.stopRotation();
    await Promise.all([
      this.workerListener?.close(),
      this.clientListener?.close(),
      this.statsServer?.close(),
    ]);
    await this.opts.billing?.desk.stop();
  }
}
