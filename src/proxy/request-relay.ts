import type { PeerIdentity } from '../attest/types.ts';
import {
  asCocoonError,
  BadGatewayError,
  CancelledError,
  CocoonError,
  GatewayTimeoutError,
  ProtocolError,
  toWireError,
} from '../errors.ts';
import type { Stream } from '../net/stream.ts';
import type { requestCounters } from '../ops/counters.ts';
import type { Logger } from '../ops/log.ts';
import type { NodeMetrics } from '../ops/metrics.ts';
import type { RecentRequests } from '../ops/recent-requests.ts';
import type { ClientAccount } from '../pay/client-account.ts';
import { type RequestCost, usageBeyondBound } from '../pay/pricing.ts';
import {
  type InferenceRequest,
  maxCompletionTokens,
  type TokenUsage,
  ZERO_USAGE,
} from '../protocol/inference.ts';
import { type InferenceTrailer, inferenceTrailerSchema } from '../protocol/messages.ts';
import type { ProxyBilling } from './billing.ts';
import { chooseWorker } from './router.ts';
import type { WorkerConnection, WorkerRegistry } from './worker-registry.ts';

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

/** What the relay uses of its proxy: the workers, the figures it keeps, the money desk. */
export interface RelayContext {
  registry: WorkerRegistry;
  counters: ReturnType<typeof requestCounters> & { redispatched: number };
  metrics: NodeMetrics;
  recent: RecentRequests;
  refusals: Record<string, number>;
  log: Logger;
  /** Payments on TON, when this proxy takes them. */
  desk: ProxyBilling | null;
  /** Workers one request may try. */
  maxAttempts: number;
  onFinished: (r: FinishedRequest) => void;
}

/**
 * The proxy's handling of one inference call: choose a worker, relay its stream to the caller, replace
 * it if it fails before anything reached the caller, bill the result. One instance per proxy.
 */
export class RequestRelay {
  constructor(private readonly ctx: RelayContext) {}

  /**
   * Relays one inference call to a worker and its stream back, with cancellation both ways. A worker that
   * fails before anything reached the caller is replaced by another (bounded attempts, within the
   * deadline); one that fails after ends the stream with an error, and only what was delivered is billed.
   */
  async forward(
    clientStream: Stream,
    client: PeerIdentity,
    account: ClientAccount | null,
    requestId: string,
    request: InferenceRequest,
  ): Promise<void> {
    this.ctx.counters.total++;
    const started = performance.now();
    const desk = this.ctx.desk;
    const tried = new Set<WorkerConnection>();
    let worker: WorkerConnection;
    let reservation = 0n;
    try {
      worker = chooseWorker(this.ctx.registry, request.model, request.maxCoefficient, request.minTier);
      // Refused here, before any worker runs, if the client's credit cannot cover the worst case.
      if (desk && account) reservation = desk.reserve(account, request, clientStream.headerBytes);
    } catch (err) {
      this.ctx.counters.rejected++;
      const e = asCocoonError(err);
      const seconds = (performance.now() - started) / 1000;
      this.ctx.metrics.finished('rejected', e.code, seconds);
      this.ctx.recent.record({
        requestId,
        model: request.model,
        worker: null,
        outcome: 'rejected',
        error: e,
        seconds,
        usage: null,
        costNanoton: null,
        attempts: 0,
      });
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
    this.ctx.counters.inFlight++;
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
        this.ctx.counters.cancelled++;
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
      if (!(err instanceof CocoonError))
        this.ctx.log.error({ err: toWireError(err), requestId }, 'relay failed');
    } finally {
      clearTimeout(timer);
      if (account && reservation > 0n) account.release(reservation);
      this.ctx.counters.inFlight--;
    }
    const ok = error === undefined;
    if (ok) {
      this.ctx.counters.succeeded++;
      this.ctx.counters.promptTokens += usage.promptTokens;
      this.ctx.counters.completionTokens += usage.completionTokens;
    } else if (!callerCancelled) {
      this.ctx.counters.failed++;
    }
    const outcome = ok ? 'ok' : callerCancelled ? 'cancelled' : 'failed';
    const seconds = (performance.now() - started) / 1000;
    this.ctx.metrics.finished(
      outcome,
      error?.code ?? null,
      seconds,
      usage.promptTokens,
      usage.completionTokens,
    );
    this.ctx.log.debug(
      { requestId, worker: worker.name, outcome, code: error?.code, seconds },
      'request finished',
    );
    this.ctx.recent.record({
      requestId,
      model: request.model,
      worker: worker.name,
      outcome,
      error,
      seconds,
      usage,
      costNanoton: cost ? cost.totalCost.toString() : null,
      attempts: tried.size,
    });
    this.ctx.onFinished({
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
      if (relay.committed || !isRetryable(e) || attempt >= this.ctx.maxAttempts) throw e;
      let next: WorkerConnection;
      try {
        next = chooseWorker(this.ctx.registry, request.model, request.maxCoefficient, request.minTier, tried);
      } catch {
        throw e; // nobody else can take it: the caller learns what went wrong with the one that tried
      }
      this.ctx.counters.redispatched++;
      this.ctx.log.warn(
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
      if (forwarded.stream) this.ctx.metrics.firstToken((performance.now() - relay.started) / 1000);
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
    this.ctx.refusals[code] = (this.ctx.refusals[code] ?? 0) + 1;
    this.ctx.log.warn({ worker: worker.name, code, reason: message }, 'worker misbehaved; disconnecting it');
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
    const desk = this.ctx.desk;
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
          this.ctx.log.warn({ requestId, err: String(err) }, 'bill for the delivered tokens failed');
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
}
