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
import { BadRequestError, type CocoonError, ProtocolError, ServiceUnavailableError } from '../errors.ts';
import type { Session } from '../net/session.ts';
import type { Stream } from '../net/stream.ts';
import { listenForPeers, type PeerListener } from '../net/tls.ts';
import { requestCounters } from '../ops/counters.ts';
import { listenStats } from '../ops/http.ts';
import { type Logger, silentLogger } from '../ops/log.ts';
import { LogThrottle } from '../ops/log-throttle.ts';
import { NodeMetrics, tonGauge } from '../ops/metrics.ts';
import { RecentRequests } from '../ops/recent-requests.ts';
import { RequestTally } from '../ops/request-tally.ts';
import { waitUntil } from '../ops/wait.ts';
import type { ClientAccount } from '../pay/client-account.ts';
import {
  type Call,
  callSchema,
  clientInfoSchema,
  controlSchema,
  type ModelList,
  parseMessage,
  workerInfoSchema,
} from '../protocol/messages.ts';
import type { ProxyBilling } from './billing.ts';

export type { FinishedRequest } from './request-relay.ts';

import { type FinishedRequest, RequestRelay, SessionCalls } from './request-relay.ts';
import { checkAnnouncedModels, WorkerRegistry } from './worker-registry.ts';

/** Control messages a client may send while the proxy is still reading its account from the chain. */
const MAX_CONTROL_BEFORE_ACCOUNT = 64;

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

  private readonly relay: RequestRelay;
  private readonly tally: RequestTally;

  constructor(private readonly opts: ProxyOptions) {
    this.log = opts.logger ?? silentLogger;
    this.onRequestFinished = opts.onRequestFinished;
    this.metrics = new NodeMetrics('proxy', opts.name);
    this.describeMetrics();
    this.tally = new RequestTally(this.counters, this.metrics, this.log, this.recent);
    this.relay = new RequestRelay({
      registry: this.registry,
      counters: this.counters,
      tally: this.tally,
      metrics: this.metrics,
      refusals: this.refusals,
      log: this.log,
      desk: opts.billing?.desk ?? null,
      maxAttempts: opts.maxAttempts ?? 3,
      onFinished: (r) => this.onRequestFinished?.(r),
    });
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
    m.counterFrom(
      'cocoon_payment_refusals_total',
      'Payment messages refused and bills left unpaid, by reason.',
      () => Object.entries(t.refusals).map(([code, n]) => [{ code }, n]),
      ['code'],
    );
    m.counterFrom(
      'cocoon_charges_failed_total',
      'On-chain charges that took nothing (backed off before the next try).',
      () => t.chargesFailed,
    );
    m.gauge('cocoon_unredeemed_ton', 'TON authorised by clients, not yet settled on-chain.', () =>
      tonGauge(desk.unredeemed()),
    );
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
  /** This proxy's contract on-chain (clients deposit into it), or null when it runs unpaid. */
  get contractAddress(): string | null {
    return this.opts.billing?.proxyContract ?? null;
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
    const throttle = new LogThrottle();
    const onRefused = (err: CocoonError, remote: string) => {
      const code = err.code ?? 'refused';
      this.refusals[code] = (this.refusals[code] ?? 0) + 1;
      const { log, suppressed } = throttle.admit(code);
      if (log) this.log.warn({ remote, code, reason: err.message, suppressed }, 'peer refused');
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
    try {
      checkAnnouncedModels(peer, info);
    } catch (err) {
      session.once('close', () => this.countViolation(session, `worker ${hello.name}`));
      session.fail(err);
      return;
    }
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
        if (msg.type === 'worker.status') {
          checkAnnouncedModels(peer, msg.info);
          w.info = msg.info;
        }
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
    const calls = new SessionCalls();
    const billing = this.opts.billing;
    if (!billing) {
      session.on('stream', (stream) => void this.onClientCall(stream, peer, null, calls));
      session.on('control', (payload) => {
        try {
          const msg = parseMessage(controlSchema, payload, 'control');
          if (msg.type === 'request.cancel') calls.get(msg.requestId)?.();
        } catch (err) {
          session.fail(err);
        }
      });
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
      account.then((a) => this.onClientCall(stream, peer, a, calls)).catch((err) => stream.reset(err));
    });
    // In arrival order (callbacks on one promise run in order, and each checks its authorisation before
    // its first await), while ledger commits of consecutive messages overlap.
    // Messages wait for the account's chain read; a client may not pile them up meanwhile.
    let known = false;
    let waiting = 0;
    account.then(
      () => (known = true),
      () => {},
    );
    session.on('control', (payload) => {
      if (!known && ++waiting > MAX_CONTROL_BEFORE_ACCOUNT) {
        session.fail(new ProtocolError('too many messages before the account is known', 'too_many_pending'));
        return;
      }
      account
        .then((a) => {
          const msg = parseMessage(controlSchema, payload, 'control');
          if (msg.type === 'request.cancel') calls.get(msg.requestId)?.();
          else return billing.desk.onClientControl(a, session, msg);
        })
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
    calls: SessionCalls,
  ): Promise<void> {
    const parsed = callSchema.safeParse(stream.header);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.refusals.bad_call = (this.refusals.bad_call ?? 0) + 1;
      stream.reset(
        new ProtocolError(`malformed call: ${issue?.path.join('.')}: ${issue?.message}`, 'bad_message'),
      );
      return;
    }
    const call: Call = parsed.data;
    if (this.draining && call.method === 'inference') {
      const e = new ServiceUnavailableError('This proxy is shutting down; retry shortly.', 'proxy_draining');
      this.tally.refused(e.retryAfterSeconds(1));
      stream.reset(e);
      return;
    }
    if (call.method === 'models') {
      void stream.write(JSON.stringify(this.modelList()));
      stream.end();
      return;
    }
    if (call.method === 'dispute') {
      const desk = this.opts.billing?.desk;
      if (!desk || !account) {
        stream.reset(new BadRequestError('This proxy takes no payments.', null, 'no_payments'));
        return;
      }
      await desk.dispute(account, call.requestId, stream);
      return;
    }
    await this.relay.forward(stream, client, account, call.requestId, call.request, calls);
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
