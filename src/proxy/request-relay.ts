import type { PeerIdentity } from '../attest/types.ts';
import {
  asCocoonError,
  BadGatewayError,
  BadRequestError,
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
import type { RequestTally } from '../ops/request-tally.ts';
import type { ClientAccount } from '../pay/client-account.ts';
import { boundUsage, type RequestCost, sameUsage, usageBeyondBound } from '../pay/pricing.ts';
import {
  type InferenceCall,
  maxCompletionTokens,
  receiptRequired,
  type TokenUsage,
  ZERO_USAGE,
} from '../protocol/inference.ts';
import { type WorkerTrailer, workerTrailerSchema } from '../protocol/messages.ts';
import { OutputObserver } from '../protocol/observed-output.ts';
import { OfferedCertificates } from '../protocol/offered-certificates.ts';
import { parseReceipt, type Receipt, verifyReceiptSignature } from '../protocol/receipt.ts';
import { sealedRequestEnc } from '../protocol/sealing/index.ts';
import type { BillRequest, ProxyBilling } from './billing.ts';
import { RelayedReply } from './dispute.ts';
import { chooseWorker } from './router.ts';
import type { WorkerConnection, WorkerRegistry } from './worker-registry.ts';

/** After a request's deadline, how long the relay has to end the caller's stream itself. */
const TIMEOUT_BACKSTOP_MS = 2000;

/** What the proxy knows about a request once it is over: the seam for payments (billing, settlement). */

export interface FinishedRequest {
  requestId: string;
  client: PeerIdentity;
  worker: { name: string; publicKey: string; coefficient: number };
  request: InferenceCall;
  /** Final token counts; zero when the request failed before the worker reported any. */
  usage: TokenUsage;
  ok: boolean;
  error?: CocoonError;
  durationMs: number;
}

/** How one admitted request ended. */
interface RelayResult {
  worker: WorkerConnection;
  usage: TokenUsage;
  cost: RequestCost | null;
  error: CocoonError | undefined;
  outcome: 'ok' | 'failed' | 'cancelled';
}

/** What bounds a call's prompt tokens: its OPEN header and the body part that followed the offer. */
function callBytes(clientStream: Stream, call: InferenceCall): number {
  return clientStream.headerBytes + call.bodyBytes;
}

/** Each hop keeps a little of the time budget for itself, as the original does (×0.95). */
const HOP_TIME_SHARE = 0.95;

/** Output-less parts (a stream's role chunk) held back before the first token, at most. */
const MAX_HELD_PARTS = 4;

/** The most a whole (non-stream) reply may carry: one session frame, as the worker's backends bound it. */
const MAX_WHOLE_REPLY_BYTES = 8 * 1024 * 1024;

/** Where a request is in its relay, kept across attempts so a failure knows what the caller already got. */
interface Relay {
  worker?: WorkerConnection;
  coefficient?: number;
  workerStream: Stream | null;
  /** Parts (or the worker's identity) have gone to the caller: no other worker may take over now. */
  committed: boolean;
  /** What reached the caller: bills are bounded by it, as the client bounds what it signs. */
  output: OutputObserver;
  /** Payments are on for this request: every part is counted (otherwise only until the first output). */
  metered: boolean;
  /** The caller asked to stop (`request.cancel`): end with what was delivered, billed. */
  cancelled: boolean;
  /** A sealed, metered reply: what reached the caller, so it may dispute its bill (src/proxy/dispute.ts). */
  relayed: RelayedReply | null;
  /** The sealed request's `enc` as the serving worker got it: its reply's keys derive from it. */
  enc: Buffer | null;
  /** When the proxy received the request (performance.now()). */
  started: number;
  /** Certificates offered whole on the caller's session. */
  offered: OfferedCertificates;
}

/**
 * The calls in flight on one client session, by request id: a second call with the same id is refused,
 * and `request.cancel` finds the one to stop. Also the workers' certificates offered whole on it.
 */
export class SessionCalls extends Map<string, () => void> {
  readonly certificates = new OfferedCertificates();
}

/** Worth another worker: it was lost, broke, was busy, or did not serve the model after all. */
function isRetryable(e: CocoonError): boolean {
  return (e.status >= 500 && e.status !== 504) || e.status === 429 || e.code === 'model_not_found';
}

/** Counts against the worker's health (busy is honest; a timeout may be the caller's short deadline). */
function isWorkerFault(e: CocoonError): boolean {
  return e.status >= 500 && e.status !== 504;
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
  /** Counters by outcome, metrics, log line and recent requests, for every request that ends. */
  tally: RequestTally;
  metrics: NodeMetrics;
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
   * A caller that stops the request (`request.cancel`, or a RESET) is billed for what it received.
   */
  async forward(
    clientStream: Stream,
    client: PeerIdentity,
    account: ClientAccount | null,
    requestId: string,
    request: InferenceCall,
    calls: SessionCalls,
  ): Promise<void> {
    this.ctx.counters.total++;
    const started = performance.now();
    const desk = this.ctx.desk;
    let worker: WorkerConnection;
    let reservation = 0n;
    try {
      if (calls.has(requestId)) {
        throw new BadRequestError(
          `Request id ${requestId} is already in flight.`,
          null,
          'duplicate_request_id',
        );
      }
      worker = this.choose(request, new Set());
      // Refused here, before any worker runs, if the client's credit cannot cover the worst case.
      if (desk && account)
        reservation = desk.admit(account, requestId, request, callBytes(clientStream, request));
    } catch (err) {
      this.refuse(clientStream, requestId, request, asCocoonError(err), started);
      return;
    }
    const relay: Relay = {
      workerStream: null,
      committed: false,
      output: new OutputObserver(),
      metered: desk !== null && account !== null,
      cancelled: false,
      relayed: desk !== null && account !== null && request.sealed ? new RelayedReply() : null,
      enc: null,
      started,
      offered: calls.certificates,
    };
    calls.set(requestId, () => {
      relay.cancelled = true;
      relay.workerStream?.reset(new CancelledError());
    });
    const tried = new Set<WorkerConnection>();
    let result: RelayResult;
    try {
      result = await this.run(clientStream, account, requestId, request, worker, tried, relay, reservation);
    } finally {
      calls.delete(requestId);
      if (desk && account) desk.finish(account, requestId, reservation);
    }
    this.record(client, requestId, request, relay, tried, result, started);
  }

  /** The best worker for a call, but those tried already, and, for a sealed call, those without an E2E key. */
  private choose(call: InferenceCall, tried: ReadonlySet<WorkerConnection>): WorkerConnection {
    let exclude = tried;
    if (call.sealed) {
      const keyless = this.ctx.registry.serving(call.model).filter((w) => !w.peer.claims.e2e);
      if (keyless.length > 0) exclude = new Set([...tried, ...keyless]);
    }
    return chooseWorker(this.ctx.registry, call.model, call.maxCoefficient, call.minTier, exclude);
  }

  /** A request refused before any worker was involved. */
  private refuse(
    clientStream: Stream,
    requestId: string,
    request: InferenceCall,
    e: CocoonError,
    started: number,
  ): void {
    if (e.code === 'duplicate_request_id') this.ctx.refusals[e.code] = (this.ctx.refusals[e.code] ?? 0) + 1;
    this.ctx.tally.finish({
      requestId,
      model: request.model,
      worker: null,
      outcome: 'rejected',
      error: e,
      seconds: (performance.now() - started) / 1000,
      attempts: 0,
    });
    clientStream.reset(e);
  }

  /** Dispatches, relays and bills one admitted request; says how it ended. */
  private async run(
    clientStream: Stream,
    account: ClientAccount | null,
    requestId: string,
    request: InferenceCall,
    first: WorkerConnection,
    tried: Set<WorkerConnection>,
    relay: Relay,
    reservation: bigint,
  ): Promise<RelayResult> {
    const desk = this.ctx.desk;
    let backstop: NodeJS.Timeout | null = null;
    const timer = setTimeout(() => {
      const e = new GatewayTimeoutError(`Request timed out after ${request.timeoutMs} ms.`);
      if (!relay.workerStream) return clientStream.reset(e);
      // The relay then ends the caller's stream saying what was delivered (and charged); resetting it here
      // at once would race that message away. The reset stays as a backstop.
      relay.workerStream.reset(e);
      backstop = setTimeout(() => clientStream.reset(e), TIMEOUT_BACKSTOP_MS);
      backstop.unref();
    }, request.timeoutMs);
    clientStream.onReset(() => relay.workerStream?.reset(new CancelledError()));
    this.ctx.counters.inFlight++;
    let worker = first;
    let served = false; // the worker's part is done: what fails now is billing, not the worker
    try {
      const reply = await this.dispatch(clientStream, requestId, request, first, tried, relay);
      served = true;
      worker = relay.worker!;
      const usage = this.billable(worker, reply.usage, request, clientStream, relay);
      let cost: RequestCost | null = null;
      // The reply went to the caller before its bill (a stream's parts and a whole reply alike): the client
      // signs for what it has seen, and the stream ends, with the worker's trailer, once it has signed.
      if (desk && account) {
        cost = await desk.bill(account, {
          requestId,
          usage,
          coefficient: relay.coefficient!,
          reservation,
          worker: worker.account!,
          receipt: reply.receipt,
          ...(reply.end !== undefined ? { end: reply.end } : {}),
          dispute: this.disputeTerms(relay, request, usage, reply.end),
        });
        clientStream.end({ usage, cost: wireCost(cost), reply });
      } else {
        clientStream.end({ usage, reply });
      }
      return { worker, usage, cost, error: undefined, outcome: 'ok' };
    } catch (err) {
      worker = relay.worker ?? worker;
      let error = asCocoonError(err);
      if (!(err instanceof CocoonError))
        this.ctx.log.error({ err: toWireError(err), requestId }, 'relay failed');
      // Decided before we reset the client's stream ourselves: was it the caller who stopped?
      const stopped = relay.cancelled || (clientStream.resetError !== null && error.status !== 504);
      let usage: TokenUsage = ZERO_USAGE;
      let cost: RequestCost | null = null;
      if (relay.committed && !served) {
        ({ usage, cost, error } = await this.settlePartial(
          relay,
          request,
          requestId,
          stopped ? new CancelledError() : error,
          account,
          reservation,
        ));
      }
      if (stopped) {
        // A caller that asked politely learns what it was billed; one that reset has gone already.
        if (clientStream.resetError === null)
          clientStream.end({ usage, ...(cost ? { cost: wireCost(cost) } : {}) });
        return { worker, usage, cost, error, outcome: 'cancelled' };
      }
      clientStream.reset(error);
      return { worker, usage, cost, error, outcome: 'failed' };
    } finally {
      clearTimeout(timer);
      if (backstop) clearTimeout(backstop);
      this.ctx.counters.inFlight--;
    }
  }

  /**
   * The usage the request is billed for: the worker's report, within what the call and what reached the
   * caller allow (the client checks the same bound). A report beyond the request's own worst case is a
   * protocol violation (checked in relayFrom); one beyond what was delivered is cut down and counted.
   */
  private billable(
    worker: WorkerConnection,
    reported: TokenUsage,
    request: InferenceCall,
    clientStream: Stream,
    relay: Relay,
  ): TokenUsage {
    const usage = boundUsage(reported, {
      callBytes: callBytes(clientStream, request),
      maxCompletionTokens: maxCompletionTokens(request),
      observedCompletionTokens: relay.metered
        ? relay.output.completionTokens(request.n)
        : Number.POSITIVE_INFINITY,
    });
    if (
      usage.completionTokens !== reported.completionTokens ||
      usage.promptTokens !== reported.promptTokens
    ) {
      this.ctx.refusals.usage_clamped = (this.ctx.refusals.usage_clamped ?? 0) + 1;
      this.ctx.log.warn(
        { worker: worker.name, reported, billed: usage },
        'worker reported more than it delivered; billing what was delivered',
      );
    }
    return usage;
  }

  /** Counters, metrics, logs and the accounting hook for a request that reached a worker. */
  private record(
    client: PeerIdentity,
    requestId: string,
    request: InferenceCall,
    relay: Relay,
    tried: Set<WorkerConnection>,
    r: RelayResult,
    started: number,
  ): void {
    this.ctx.tally.finish({
      requestId,
      model: request.model,
      worker: r.worker.name,
      outcome: r.outcome,
      error: r.error,
      seconds: (performance.now() - started) / 1000,
      usage: r.usage,
      costNanoton: r.cost ? r.cost.totalCost.toString() : null,
      attempts: tried.size,
    });
    this.ctx.onFinished({
      requestId,
      client,
      worker: {
        name: r.worker.name,
        publicKey: r.worker.peer.publicKey,
        coefficient: relay.coefficient ?? 0,
      },
      request,
      usage: r.usage,
      ok: r.outcome === 'ok',
      ...(r.error ? { error: r.error } : {}),
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
    request: InferenceCall,
    first: WorkerConnection,
    tried: Set<WorkerConnection>,
    relay: Relay,
  ): Promise<WorkerTrailer> {
    let worker = first;
    for (let attempt = 1; ; attempt++) {
      tried.add(worker);
      relay.worker = worker;
      relay.coefficient = worker.model(request.model)!.coefficient;
      const attemptStarted = performance.now();
      worker.running++;
      worker.total++;
      let e: CocoonError;
      try {
        const trailer = await this.relayFrom(worker, clientStream, requestId, request, relay);
        worker.recordSuccess(performance.now() - attemptStarted);
        return trailer;
      } catch (err) {
        e = asCocoonError(err);
      } finally {
        worker.running--;
      }
      // The caller went away or stopped the request, or the deadline passed: not the worker's doing.
      if (clientStream.resetError || relay.cancelled) throw e;
      worker.recordFailure(isWorkerFault(e));
      if (relay.committed || !isRetryable(e) || attempt >= this.ctx.maxAttempts) throw e;
      let next: WorkerConnection;
      try {
        next = this.choose(request, tried);
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
   * worker failing before its first token can still be replaced without the caller seeing anything; a
   * whole reply is held until the worker ends it, so it reaches the caller whole or not at all.
   */
  private async relayFrom(
    worker: WorkerConnection,
    clientStream: Stream,
    requestId: string,
    call: InferenceCall,
    relay: Relay,
  ): Promise<WorkerTrailer> {
    const body = await this.offer(clientStream, requestId, call, worker, relay.offered);
    if (relay.relayed) relay.enc = sealedRequestEnc(body);
    // The worker's budget starts when it gets the call, after the client answered the offer: each hop
    // keeps a little of what is left for itself, as the original does.
    const remaining = call.timeoutMs - (performance.now() - relay.started);
    const forwarded = { ...call, timeoutMs: Math.max(1, Math.floor(remaining * HOP_TIME_SHARE)) };
    const ws = worker.session.openStream({
      method: 'inference',
      requestId,
      request: forwarded,
      certificate: worker.certificateHash,
    });
    relay.workerStream = ws;
    const sent = ws.write(body);
    if (sent) await sent;
    ws.end();
    const held: Buffer[] = [];
    let heldBytes = 0;
    for await (const part of ws) {
      if (!forwarded.stream) {
        heldBytes += part.length;
        if (heldBytes > MAX_WHOLE_REPLY_BYTES) {
          throw this.misbehaved(
            worker,
            `a reply of more than ${MAX_WHOLE_REPLY_BYTES} bytes`,
            'reply_too_large',
          );
        }
        held.push(part);
        continue;
      }
      const carries =
        (relay.committed && !relay.metered) || relay.output.observeStreamPart(part, forwarded.sealed);
      if (!relay.committed) {
        if (held.length < MAX_HELD_PARTS && !carries) {
          held.push(part);
          continue;
        }
        await this.commit(clientStream, forwarded, relay, held);
      }
      await this.toCaller(clientStream, relay, part);
    }
    const parsed = workerTrailerSchema.safeParse(ws.trailer);
    if (!parsed.success) throw this.misbehaved(worker, 'worker sent a malformed trailer', 'bad_message');
    const over = usageBeyondBound(
      parsed.data.usage,
      callBytes(clientStream, forwarded),
      maxCompletionTokens(forwarded),
    );
    if (over) throw this.misbehaved(worker, over, 'usage_over_bound');
    if (!forwarded.stream) {
      if (held.length === 0)
        throw this.misbehaved(worker, 'worker ended a reply without a body', 'empty_reply');
      if (relay.metered) for (const part of held) relay.output.collect(part, forwarded.sealed);
    }
    if (receiptRequired(forwarded)) this.checkReceipt(worker, requestId, parsed.data);
    if (forwarded.sealed && parsed.data.end === undefined) {
      throw this.misbehaved(worker, 'a sealed reply without its sealed end', 'bad_message');
    }
    if (!relay.committed) await this.commit(clientStream, forwarded, relay, held);
    return parsed.data;
  }

  /**
   * Offers the worker to the caller and waits for the request's body, which the caller sends only once it
   * has checked the worker's certificate itself (sealed to that worker's key, unless E2E is off).
   */
  private async offer(
    clientStream: Stream,
    requestId: string,
    call: InferenceCall,
    worker: WorkerConnection,
    offered: OfferedCertificates,
  ): Promise<Buffer> {
    clientStream.sessionControl(worker.offer(requestId, call.model, offered));
    const r = await clientStream.next();
    if (r.done) throw new BadRequestError('The call ended without its body.', null, 'missing_body');
    if (r.value.length !== call.bodyBytes) {
      throw new BadRequestError(
        `A body of ${r.value.length} bytes, but the call declared ${call.bodyBytes}.`,
        null,
        'body_size_mismatch',
      );
    }
    return r.value;
  }

  /** Parts start reaching the caller: no other worker may take over now. */
  private async commit(
    clientStream: Stream,
    call: InferenceCall,
    relay: Relay,
    held: Buffer[],
  ): Promise<void> {
    relay.committed = true;
    if (call.stream) this.ctx.metrics.firstToken((performance.now() - relay.started) / 1000);
    for (const part of held) await this.toCaller(clientStream, relay, part);
  }

  /** One part of the reply to the caller, kept on record when the caller may dispute its bill. */
  private async toCaller(clientStream: Stream, relay: Relay, part: Buffer): Promise<void> {
    relay.relayed?.add(part);
    const p = clientStream.write(part);
    if (p) await p;
  }

  /**
   * What the caller may dispute its bill for a sealed reply on: the parts it got (the sealed end too,
   * which goes in the bill), the request's shape, the completion tokens billed. If it is right, the worker
   * claimed more than it sent: it is cut off.
   */
  private disputeTerms(
    relay: Relay,
    call: InferenceCall,
    usage: TokenUsage,
    end: string | undefined,
  ): BillRequest['dispute'] {
    const worker = relay.worker;
    if (!relay.relayed || !relay.enc || !worker) return undefined;
    if (end !== undefined) relay.relayed.add(Buffer.from(end, 'base64'));
    return {
      relayed: relay.relayed.seal(),
      enc: relay.enc,
      stream: call.stream,
      choices: call.n,
      billed: usage.completionTokens,
      onUpheld: (why) => void this.misbehaved(worker, why, 'usage_disputed'),
    };
  }

  /**
   * The worker's signed receipt must be well formed, signed by this worker, for this request and the usage
   * it reports: it goes to the client inside the bill, so a bad one would have the client refuse us.
   */
  private checkReceipt(worker: WorkerConnection, requestId: string, reply: WorkerTrailer): void {
    let receipt: Receipt;
    try {
      receipt = parseReceipt(reply.receipt);
    } catch (err) {
      throw this.misbehaved(worker, (err as Error).message, 'bad_receipt');
    }
    const why =
      receipt.requestId !== requestId
        ? 'a receipt for another request'
        : !sameUsage(receipt.usage, reply.usage)
          ? 'a receipt for other usage than it reports'
          : !verifyReceiptSignature(receipt, worker.peer.publicKey)
            ? 'a receipt it did not sign'
            : null;
    if (why) throw this.misbehaved(worker, why, 'bad_receipt');
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
    request: InferenceCall,
    requestId: string,
    cause: CocoonError,
    account: ClientAccount | null,
    reservation: bigint,
  ): Promise<{ usage: TokenUsage; cost: RequestCost | null; error: CocoonError }> {
    const delivered = Math.min(relay.output.outputParts, maxCompletionTokens(request));
    const usage: TokenUsage = { ...ZERO_USAGE, completionTokens: delivered };
    const desk = this.ctx.desk;
    const workerAccount = relay.worker?.account;
    let cost: RequestCost | null = null;
    let charged = '';
    if (desk && account && workerAccount) {
      charged = ' Nothing is charged for it.';
      if (delivered > 0) {
        try {
          cost = await desk.bill(account, {
            requestId,
            usage,
            coefficient: relay.coefficient!,
            reservation,
            worker: workerAccount,
            dispute: this.disputeTerms(relay, request, usage, undefined),
          });
          charged = ` Only the ${delivered} delivered tokens are charged (${cost.totalCost} nanoton).`;
        } catch (err) {
          this.ctx.log.warn({ requestId, err: String(err) }, 'bill for the delivered tokens failed');
        }
      }
    }
    const error =
      cause instanceof CancelledError
        ? new CancelledError(
            `Request cancelled by the caller after ${delivered} tokens were delivered.${charged}`,
          )
        : cause.status === 504
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
