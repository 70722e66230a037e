import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { CocoonError, PayloadTooLargeError, toOpenAIError } from '../errors.ts';
import { renderDashboardPage } from './dashboard/dashboard-page.ts';
import { HttpGuard } from './http-guard.ts';
import { type NodeMetrics, serveMetrics } from './metrics.ts';
import { renderStatsPage } from './stats-page.ts';

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** The one place an error becomes an HTTP response. */
export function sendError(res: ServerResponse, err: unknown, headers: Record<string, string> = {}): void {
  const { status, body, retryAfter } = toOpenAIError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const extra = retryAfter === undefined ? headers : { ...headers, 'retry-after': String(retryAfter) };
  // 499 (caller cancelled) has no standard reason phrase; nobody is listening anyway.
  sendJson(res, status === 499 ? 400 : status, body, extra);
}

/** Reads a request body, refusing (413) anything over `limit` bytes without buffering it. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(new PayloadTooLargeError(limit));
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new PayloadTooLargeError(limit));
        return;
      }
      parts.push(chunk);
    });
    req.on('end', () => resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts)));
    req.on('error', reject);
  });
}

/**
 * Serves `/stats` (HTML), `/jsonstats` (JSON) and `/dashboard` (a live page polling `/jsonstats`);
 * returns true when it handled the request.
 */
export function serveStats(
  req: IncomingMessage,
  res: ServerResponse,
  title: string,
  stats: () => unknown,
  headers: Record<string, string> = {},
): boolean {
  const path = req.url?.split('?')[0];
  if (req.method !== 'GET') return false;
  if (path === '/jsonstats') {
    sendJson(res, 200, stats(), headers);
    return true;
  }
  if (path === '/stats') {
    const html = renderStatsPage(title, stats());
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(html),
    });
    res.end(html);
    return true;
  }
  if (path === '/dashboard') {
    const page = renderDashboardPage(title);
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(page.html),
      // Only the page's own script and style run, and it talks to nobody but this node: names shown on
      // it come from remote peers.
      'content-security-policy': page.csp,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-store',
    });
    res.end(page.html);
    return true;
  }
  return false;
}

/**
 * How long a connection may take over each part of a request, and how many may be open. Node's defaults
 * (60 s for headers, 300 s for a request, checked every 30 s) let a caller that sends one byte a second
 * hold a connection for minutes.
 */
export interface HttpLimits {
  /** From connect (or the end of the previous request) to the last header byte. */
  headersTimeoutMs: number;
  /** From connect to the last body byte: a body trickled in slowly is cut off with a 408. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Open connections at most; more are closed as they arrive. */
  maxConnections: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 1024,
};

export async function listenHttp(
  host: string,
  port: number,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
  /** Told of each request Node's parser refused (answered in OpenAI's shape before any handler ran). */
  onRefused?: (e: CocoonError) => void,
): Promise<{ server: Server; port: number; url: string; close: () => Promise<void> }> {
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs),
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Timeouts are enforced when connections are checked: often enough that they hold to about 1/4.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
      // A missing Host is the gate's to refuse, in OpenAI's error shape (HttpGuard), not Node's bare 400.
      requireHostHeader: false,
    },
    handler,
  );
  server.maxConnections = limits.maxConnections;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) =>
    answerClientError(err, socket, onRefused),
  );
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(port, host, () => {
      server.off('error', rej);
      res();
    });
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    server,
    port: actual,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}`,
    close: () =>
      new Promise<void>((res) => {
        server.close(() => res());
        server.closeAllConnections();
      }),
  };
}

/**
 * What a connection gets when Node's parser refuses its request before any handler runs (malformed
 * framing, headers too large, a header or request timeout): the status Node would send, in OpenAI's error
 * shape, then the connection is closed.
 */
function answerClientError(
  err: NodeJS.ErrnoException,
  socket: Socket,
  onRefused: ((e: CocoonError) => void) | undefined,
): void {
  // As Node's own handler: answer only a connection nothing was written to yet, then close it at once.
  if (err.code === 'ECONNRESET' || !socket.writable || socket.bytesWritten > 0) {
    socket.destroy();
    return;
  }
  const [status, reason, code] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'headers_too_large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'request_timeout']
        : [400, 'Bad Request', 'malformed_request'];
  const message =
    status === 408 ? 'The request was not received in time.' : `The request could not be parsed: ${reason}.`;
  const error = new CocoonError(status, 'invalid_request_error', code, message);
  onRefused?.(error);
  const body = JSON.stringify(toOpenAIError(error).body);
  socket.write(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
  socket.destroy();
}

export interface StatsServerOptions {
  host: string;
  port: number;
  title: string;
  stats: () => unknown;
  metrics?: NodeMetrics | null;
  /** More routes (a worker's admin endpoint); returns true when it handled the request. */
  routes?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

/** A small HTTP server beside a proxy or worker: stats pages, Prometheus metrics, extra routes. */
export function listenStats(o: StatsServerOptions) {
  // Web pages get nothing here either: not by rebinding a name to us, not from another origin.
  const guard = new HttpGuard({ listenHost: o.host });
  return listenHttp(o.host, o.port, (req, res) => {
    try {
      guard.check(req);
    } catch (err) {
      sendError(res, err);
      return;
    }
    if (serveMetrics(req, res, o.metrics ?? null)) return;
    if (o.routes?.(req, res)) return;
    if (!serveStats(req, res, o.title, o.stats)) {
      sendJson(res, 404, {
        error: { message: 'not found', type: 'invalid_request_error', param: null, code: null },
      });
    }
  });
}
