import { Address } from '@ton/core';
import { loadOrCreateNodeKey, rawPublicKeyFromHex } from '../attest/identity.ts';
import { checkPeerPolicy } from '../attest/policy.ts';
import {
  CERT_VALIDITY_MS,
  makeCredentials,
  rotateCredentials,
  type TrustSetup,
  trustLabel,
} from '../attest/trust-setup.ts';
import type { PeerIdentity } from '../attest/types.ts';
import {
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
import type { ClientAccount } from '../pay/client-account.ts';
import type { InferenceRequest, TokenUsage } from '../protocol/inference.ts';
import {
  type Call,
  callSchema,
  clientInfoSchema,
  controlSchema,
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
}

/** Each hop keeps a little of the time budget for itself, as the original does (×0.95). */
const HOP_TIME_SHARE = 0.95;

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
  readonly counters = requestCounters();
  readonly refusals: Record<string, number> = {};
  private stopRotation: () => void = () => {};

  /** The accounting hook (payments plug in here); may be set after construction. */
  onRequestFinished: ((r: FinishedRequest) => void) | undefined;

  constructor(private readonly opts: ProxyOptions) {
    this.log = opts.logger ?? silentLogger;
    this.onRequestFinished = opts.onRequestFinished;
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
    const { verifiers, minPeerTier } = this.opts.trust;
    const onRefused = (err: CocoonError, remote: string) => {
      const code = err.code ?? 'refused';
      this.refusals[code] = (this.refusals[code] ?? 0) + 1;
      this.log.warn({ remote, code, reason: err.message }, 'peer refused');
    };
    this.workerListener = await listenForPeers({
      host: this.opts.host,
      port: this.opts.workerPort,
      credentials,
      trust: { verifiers, roles: ['worker'], minTier: minPeerTier, policy: (p) => this.checkPolicy(p) },
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
      trust: { verifiers, roles: ['client'], minTier: minPeerTier, policy: (p) => this.checkPolicy(p) },
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
      this.statsServer = await listenStats(
        this.opts.statsHost ?? '127.0.0.1',
        this.opts.statsPort,
        `Cocoon proxy ${this.opts.name}`,
        () => this.stats(),
      );
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
        session.close(err as CocoonError);
      }
    });
    session.on('stream', (s) =>
      s.reset(new BadRequestError('workers may not open calls', null, 'unsupported_call')),
    );
    session.once('close', (err) => {
      this.registry.remove(w);
      this.log.info({ worker: w.name, reason: err?.message }, 'worker left');
    });
  }

  private addClient(session: Session, peer: PeerIdentity): void {
    this.clients.add(session);
    session.once('close', () => this.clients.delete(session));
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
        .catch((err) => session.close(err as CocoonError));
    });
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
    if (call.method === 'models') {
      void stream.write(JSON.stringify(this.modelList()));
      stream.end();
      return;
    }
    await this.forwardInference(stream, client, account, call.requestId, call.request as InferenceRequest);
  }

  /** Relays one inference call to a worker and its stream back, with cancellation both ways. */
  private async forwardInference(
    clientStream: Stream,
    client: PeerIdentity,
    account: ClientAccount | null,
    requestId: string,
    request: InferenceRequest,
  ): Promise<void> {
    this.counters.total++;
    let worker: WorkerConnection;
    const desk = this.opts.billing?.desk;
    let reservation = 0n;
    try {
      worker = chooseWorker(this.registry, request.model, request.maxCoefficient, request.minTier);
      // Refused here, before any worker runs, if the client's credit cannot cover the worst case.
      if (desk && account) reservation = desk.reserve(account, request, clientStream.headerBytes);
    } catch (err) {
      this.counters.rejected++;
      clientStream.reset(err);
      return;
    }
    const started = performance.now();
    const forwarded: InferenceRequest = {
      ...request,
      timeoutMs: Math.max(1, Math.floor(request.timeoutMs * HOP_TIME_SHARE)),
    };
    const coefficient = worker.model(request.model)!.coefficient;
    worker.running++;
    worker.total++;
    this.counters.inFlight++;
    let workerStream: Stream | null = null;
    const timer = setTimeout(() => {
      const e = new GatewayTimeoutError(`Request timed out after ${request.timeoutMs} ms.`);
      workerStream?.reset(e);
      clientStream.reset(e);
    }, request.timeoutMs);
    clientStream.onReset(() => workerStream?.reset(new CancelledError()));
    let usage: TokenUsage = { promptTokens: 0, cachedTokens: 0, completionTokens: 0, reasoningTokens: 0 };
    let error: CocoonError | undefined;
    let callerCancelled = false;
    // The caller learns who serves it (tier, image, model identity) before the first token.
    clientStream.sessionControl({
      type: 'request.serving',
      requestId,
      serving: worker.serving(request.model),
    });
    try {
      workerStream = worker.session.openStream({ method: 'inference', requestId, request: forwarded });
      workerStream.end(); // the call is all in OPEN; no request body follows
      for await (const part of workerStream) {
        const p = clientStream.write(part);
        if (p) await p;
      }
      const trailer = inferenceTrailerSchema.safeParse(workerStream.trailer);
      if (!trailer.success) throw new ProtocolError('worker sent a malformed trailer', 'bad_message');
      usage = trailer.data.usage;
      const { tail } = trailer.data;
      if (desk && account) {
        // The reply is released only once the client's signature for it is in the ledger.
        const cost = await desk.bill(account, requestId, usage, coefficient, reservation, worker.account!);
        clientStream.end({
          usage,
          cost: {
            prompt: cost.promptCost.toString(),
            completion: cost.completionCost.toString(),
            total: cost.totalCost.toString(),
          },
          ...(tail !== undefined ? { tail } : {}),
        });
      } else {
        clientStream.end({ usage, ...(tail !== undefined ? { tail } : {}) });
      }
    } catch (err) {
      error =
        err instanceof CocoonError
          ? err
          : new CocoonError(500, 'server_error', 'internal_error', String(err));
      // Decided before we reset the client's stream ourselves: was it the caller who went away?
      callerCancelled = clientStream.resetError !== null && error.status !== 504;
      if (callerCancelled) {
        this.counters.cancelled++;
      } else {
        clientStream.reset(error);
      }
      if (!(err instanceof CocoonError)) this.log.error({ err: toWireError(err), requestId }, 'relay failed');
    } finally {
      clearTimeout(timer);
      if (account && reservation > 0n) account.release(reservation);
      worker.running--;
      this.counters.inFlight--;
    }
    const durationMs = performance.now() - started;
    const ok = error === undefined;
    // A cancelled request says nothing about the worker's health.
    if (!callerCancelled) worker.recordFinish(ok, durationMs);
    if (ok) {
      this.counters.succeeded++;
      this.counters.promptTokens += usage.promptTokens;
      this.counters.completionTokens += usage.completionTokens;
    } else if (!callerCancelled) {
      this.counters.failed++;
    }
    this.onRequestFinished?.({
      requestId,
      client,
      worker: { name: worker.name, publicKey: worker.peer.publicKey, coefficient },
      request,
      usage,
      ok,
      ...(error ? { error } : {}),
      durationMs,
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
      })),
    };
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
