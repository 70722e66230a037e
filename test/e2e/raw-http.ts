import { connect, type Socket } from 'node:net';

/**
 * HTTP/1.x over a bare socket, for requests `fetch` cannot express: no Host or two of them, HTTP/1.0,
 * bytes that are not UTF-8, a body sent a byte at a time, a connection left open.
 */

export interface RawRequest {
  method?: string;
  /** The request target exactly as sent (no normalisation, no percent-encoding). */
  path?: string;
  /** `HTTP/1.1` unless told. */
  version?: string;
  /** Header lines in order; repeat a name to send it twice. No Host is added if `host` is null. */
  headers?: [string, string][];
  /** `127.0.0.1:<port>` unless told; null sends none. */
  host?: string | null;
  body?: Buffer | string;
  /** Adds `Content-Length` for the body (default when there is a body and no such header is given). */
  contentLength?: boolean;
}

export interface RawResponse {
  status: number;
  /** Header names lowercased; repeated headers joined with `, `. */
  headers: Record<string, string>;
  body: Buffer;
  text: string;
  /** The body parsed as JSON, or null. */
  json: unknown;
}

/** The bytes of a request: request line, headers, blank line, body. */
export function encodeRequest(port: number, r: RawRequest): Buffer {
  const body = r.body === undefined ? undefined : Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body);
  const lines = [`${r.method ?? 'GET'} ${r.path ?? '/'} ${r.version ?? 'HTTP/1.1'}`];
  const host = r.host === undefined ? `127.0.0.1:${port}` : r.host;
  if (host !== null) lines.push(`Host: ${host}`);
  const headers = r.headers ?? [];
  for (const [k, v] of headers) lines.push(`${k}: ${v}`);
  const hasLength = headers.some(([k]) => /^(content-length|transfer-encoding)$/i.test(k));
  if (body !== undefined && !hasLength && r.contentLength !== false) {
    lines.push(`Content-Length: ${body.length}`);
  }
  if (!headers.some(([k]) => k.toLowerCase() === 'connection')) lines.push('Connection: close');
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return body === undefined ? head : Buffer.concat([head, body]);
}

/** Sends one request on a new connection and reads one response (the server may keep or close it). */
export async function rawRequest(port: number, r: RawRequest, timeoutMs = 5000): Promise<RawResponse> {
  return rawExchange(port, encodeRequest(port, r), timeoutMs, r.method === 'HEAD');
}

/** Sends `bytes` as they are on a new connection and reads one response. */
export async function rawExchange(
  port: number,
  bytes: Buffer,
  timeoutMs = 5000,
  head = false,
): Promise<RawResponse> {
  const socket = await openSocket(port);
  try {
    const reader = new ResponseReader(socket);
    socket.write(bytes);
    return await reader.next(timeoutMs, head);
  } finally {
    socket.destroy();
  }
}

export function openSocket(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/**
 * Resolves when the server closes the connection (its end or an error such as a reset). Reads the socket
 * to see its end: bytes no `ResponseReader` listens for are dropped.
 */
export function closed(socket: Socket): Promise<void> {
  socket.resume();
  return new Promise((resolve) => {
    if (socket.destroyed || socket.readableEnded) {
      resolve();
      return;
    }
    socket.once('close', () => resolve());
    socket.once('end', () => resolve());
    socket.once('error', () => resolve());
  });
}

/**
 * Reads responses off a socket one at a time (keep-alive), by `Content-Length`, chunked encoding, or the
 * end of the connection.
 */
export class ResponseReader {
  private buf = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | null = null;

  constructor(socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    const end = () => {
      this.ended = true;
      this.wake?.();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  /** Everything the server sent that no `next` consumed. */
  get pending(): Buffer {
    return this.buf;
  }

  /** Whether the server has closed its side. */
  get isEnded(): boolean {
    return this.ended;
  }

  /** The next response; `head`: it answers a HEAD request (no body whatever its headers say). */
  async next(timeoutMs = 5000, head = false): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const parsed = parseResponse(this.buf, this.ended, head);
      if (parsed) {
        this.buf = this.buf.subarray(parsed.consumed);
        return parsed.response;
      }
      if (this.ended) {
        throw new Error(`connection closed before a whole response: ${JSON.stringify(this.buf.toString())}`);
      }
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no response within ${timeoutMs} ms: ${JSON.stringify(this.buf.toString())}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }
}

function parseResponse(
  buf: Buffer,
  ended: boolean,
  head: boolean,
): { response: RawResponse; consumed: number } | null {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(lines[0]!)?.[1] ?? Number.NaN);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const k = line.slice(0, colon).trim().toLowerCase();
    const v = line.slice(colon + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  const start = headEnd + 4;
  let body: Buffer;
  let consumed: number;
  const noBody = head || status === 204 || status === 304 || (status >= 100 && status < 200);
  if (noBody) {
    body = Buffer.alloc(0);
    consumed = start;
  } else if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (buf.length < start + n) return null;
    body = buf.subarray(start, start + n);
    consumed = start + n;
  } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const parts: Buffer[] = [];
    let at = start;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', at);
      if (lineEnd < 0) return null;
      const size = Number.parseInt(buf.subarray(at, lineEnd).toString('latin1'), 16);
      if (buf.length < lineEnd + 2 + size + 2) return null;
      if (size === 0) {
        const trailerEnd = buf.indexOf('\r\n\r\n', lineEnd);
        consumed = trailerEnd < 0 ? lineEnd + 4 : trailerEnd + 4;
        break;
      }
      parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else {
    if (!ended) return null; // read to the end of the connection
    body = buf.subarray(start);
    consumed = buf.length;
  }
  const text = body.toString('utf8');
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { response: { status, headers, body: Buffer.from(body), text, json }, consumed };
}
