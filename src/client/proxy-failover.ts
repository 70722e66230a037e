import type { ServerResponse } from 'node:http';
import {
  asCocoonError,
  CancelledError,
  type CocoonError,
  GatewayTimeoutError,
  ServiceUnavailableError,
} from '../errors.ts';
import type { Stream } from '../net/stream.ts';
import type { Logger } from '../ops/log.ts';
import type { RequestBound } from '../pay/payer.ts';
import { type InferenceRequest, maxCompletionTokens } from '../protocol/inference.ts';
import type { Serving } from '../protocol/messages.ts';
import { OutputObserver } from '../protocol/observed-output.ts';
import { sealedRequestBytes } from '../protocol/sealing/index.ts';
import { OfferAnswer, type OfferDesk } from './offer-answer.ts';
import type { ProxyConnection, ProxyPool } from './proxy-pool.ts';
import type { ReplyReader } from './reply-reader.ts';
import type { CheckedWorker, WorkerCheck } from './worker-check.ts';

/** A request under way on one proxy: its first part (a stream) or its whole body (JSON) is in. */
export interface Opened {
  conn: ProxyConnection;
  stream: Stream;
  /** The first part's events or the whole body, opened (when sealed). */
  head: { first?: IteratorResult<Buffer[]>; body?: Buffer };
  /** The worker serving it, as the client checked it itself. */
  serving: Serving;
  worker: CheckedWorker;
  /** SHA-256 of the body as sent to that worker: its receipt must name it. */
  requestHash: string;
  /** The Ed25519 key of the proxy it went through (its receipt names it). */
  proxyKey: string;
  /** Opens each further part of the reply. */
  reply: ReplyReader;
  onClose: () => void;
  /** Proxies tried. */
  attempts: number;
}

export interface FailoverOptions {
  pool: ProxyPool;
  /** Proxies one request may try before its first part reaches the caller. */
  maxAttempts: number;
  log: Logger;
  /** Where the proxies' worker offers for our requests arrive. */
  offers: OfferDesk;
  /** Checks each offered worker with the client's own verifiers and policy. */
  workers: WorkerCheck;
  /** Seal request bodies to the serving worker (end-to-end encryption); off only by explicit choice. */
  e2e: boolean;
  /** Ask for the worker's receipt; off only by explicit choice (with E2E off). */
  receipts: boolean;
  /** A request moved on to another proxy. */
  onFailover: () => void;
  /** A stream's first part arrived, `seconds` after the request started. */
  onFirstPart: (seconds: number) => void;
}

/** How long a cancelled request may take to end before we reset it. */
const CANCEL_GRACE_MS = 10_000;

/**
 * Sends a request through the best proxy and waits for its first part (a stream) or its whole reply
 * (JSON): until then nothing has reached the caller, so a proxy that fails, goes away or cannot serve it
 * is replaced by another (bounded attempts, within the request's time budget).
 */
export async function openThroughProxies(
  o: FailoverOptions,
  request: InferenceRequest,
  requestId: string,
  res: ServerResponse,
  started: number,
): Promise<Opened> {
  const tried = new Set<ProxyConnection>();
  let lastError: CocoonError | null = null;
  for (let attempt = 1; ; attempt++) {
    let conn: ProxyConnection;
    try {
      conn = o.pool.choose(tried);
    } catch (err) {
      throw lastError ?? err;
    }
    tried.add(conn);
    if (attempt > 1) {
      o.onFailover();
      o.log.warn(
        { requestId, proxy: conn.address, code: lastError?.code, reason: lastError?.message },
        'proxy failed before the first part; failing over',
      );
    }
    try {
      return await attemptOn(o, conn, request, requestId, res, started, attempt);
    } catch (err) {
      const e = asCocoonError(err);
      if (res.destroyed || e instanceof CancelledError || e.status === 504) throw e;
      // The proxy relayed a worker's padded claim and upheld our dispute: it did its part.
      if (e.code === 'usage_disputed') throw e;
      if (e.status === 500 || e.status === 502) conn.recordFailure();
      if (!isRetryable(e) || attempt >= o.maxAttempts) throw e;
      lastError = e;
    }
  }
}

/** One attempt on one proxy; on failure it leaves the connection's books as they were. */
async function attemptOn(
  o: FailoverOptions,
  conn: ProxyConnection,
  request: InferenceRequest,
  requestId: string,
  res: ServerResponse,
  started: number,
  attempt: number,
): Promise<Opened> {
  const attemptStarted = performance.now();
  const timeoutMs = Math.floor(request.timeoutMs - (attemptStarted - started));
  conn.inFlight++;
  conn.total++;
  let stream: Stream | null = null;
  // The caller hanging up cancels the request all the way to the engine.
  const onClose = () => {
    if (!res.writableFinished && stream) cancel(conn, stream, requestId);
  };
  res.once('close', onClose);
  try {
    if (timeoutMs <= 0) throw new GatewayTimeoutError(`Request timed out after ${request.timeoutMs} ms.`);
    const bound = requestBound(request, o);
    if (conn.payments) {
      await conn.payments.ready();
      conn.payments.expect(requestId, bound);
    }
    const session = conn.session;
    if (!session) throw new ServiceUnavailableError('The proxy went away.', 'peer_lost');
    const { body: _, ...meta } = request;
    const body = Buffer.from(JSON.stringify(request.body));
    const bodyBytes = o.e2e ? sealedRequestBytes(body.length) : body.length;
    const call = { ...meta, timeoutMs, bodyBytes, sealed: o.e2e, receipt: o.receipts };
    const proxyKey = conn.link.peer?.publicKey ?? '';
    const s = session.openStream({ method: 'inference', requestId, request: call });
    stream = s;
    bound.callBytes = s.headerBytes + bodyBytes;
    const answer = new OfferAnswer(o, conn, s, request, requestId, body, () => cancel(conn, s, requestId));
    // Everything received is opened and counted as it arrives: a bill, which comes before the reply's
    // end, is checked against all of it.
    const observed = bound.observed as OutputObserver;
    const paying = conn.payments !== null;
    s.onData = (p) => {
      if (paying && request.stream) observed.observeStreamPart(p, o.e2e);
      else if (paying) observed.collect(p, o.e2e);
      answer.arrive(p);
    };
    o.offers.expect(requestId, conn, (offer) => answer.offered(offer));
    let first: IteratorResult<Buffer> | undefined;
    try {
      if (request.stream) first = await s.next();
      else await s.readAll(); // the reader has it, opened
    } finally {
      o.offers.forget(requestId);
    }
    s.end(); // no other worker can be offered now: our half of the call is done
    const { worker, reply, requestHash } = answer.accepted();
    const head: Opened['head'] = request.stream
      ? {
          first: first!.done ? { done: true, value: undefined } : { done: false, value: reply.next() },
        }
      : { body: reply.whole() };
    if (request.stream) o.onFirstPart((performance.now() - started) / 1000);
    conn.recordSuccess(performance.now() - attemptStarted);
    return {
      conn,
      stream: s,
      head,
      serving: worker.serving,
      worker,
      requestHash,
      proxyKey,
      reply,
      onClose,
      attempts: attempt,
    };
  } catch (err) {
    res.off('close', onClose);
    conn.inFlight--;
    conn.payments?.forget(requestId);
    throw err;
  }
}

/**
 * The caller went away: ask the proxy to stop the request and keep reading what is already on its way,
 * so the bill for what was delivered is checked against all of it and paid. A proxy that does not end
 * the stream in time gets a RESET.
 */
function cancel(conn: ProxyConnection, stream: Stream, requestId: string): void {
  const session = conn.session;
  if (!session || session.closed) {
    stream.reset(new CancelledError());
    return;
  }
  session.sendControl({ type: 'request.cancel', requestId });
  setTimeout(() => stream.reset(new CancelledError()), CANCEL_GRACE_MS).unref();
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

/** What we will pay one attempt of a request for at most: filled in as it is sent and received. */
function requestBound(request: InferenceRequest, o: FailoverOptions): RequestBound {
  return {
    maxCoefficient: request.maxCoefficient,
    maxCompletionTokens: maxCompletionTokens(request),
    choices: request.n,
    callBytes: 0,
    coefficient: null,
    receiptRequired: o.receipts,
    observed: new OutputObserver(),
  };
}
