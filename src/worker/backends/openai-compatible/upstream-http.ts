import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { BadGatewayError } from '../../../errors.ts';

/**
 * A minimal keep-alive HTTP client for the engine hop. node:http costs a fraction of global fetch per
 * request (no WHATWG streams, no body tee), and this hop runs once per inference request.
 */
export interface UpstreamResponse {
  status: number;
  body: IncomingMessage;
}

// noDelay: a request is one small write; Nagle would hold it back waiting for an ACK.
const agentOptions = { keepAlive: true, maxSockets: 1024, noDelay: true };
const agents = { http: new HttpAgent(agentOptions), https: new HttpsAgent(agentOptions) };

export function upstreamRequest(
  url: URL,
  method: 'GET' | 'POST',
  headers: Record<string, string>,
  body: string | null,
  signal: AbortSignal,
): Promise<UpstreamResponse> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const https = url.protocol === 'https:';
    const req = (https ? httpsRequest : httpRequest)(url, {
      method,
      agent: https ? agents.https : agents.http,
      headers: body === null ? headers : { ...headers, 'content-length': Buffer.byteLength(body) },
    });
    // Aborting destroys the socket, so the engine sees its client go away and stops generating.
    const onAbort = () => req.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    req.once('close', () => signal.removeEventListener('abort', onAbort));
    req.once('error', reject);
    req.once('response', (res) => resolve({ status: res.statusCode ?? 0, body: res }));
    req.end(body ?? undefined);
  });
}

/** Reads a whole body of at most `maxBytes`; a longer one is cut off (the connection closed) and refused. */
export async function readAll(res: IncomingMessage, maxBytes: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const p of res) {
    size += (p as Buffer).length;
    if (size > maxBytes) {
      res.destroy();
      throw new BadGatewayError(
        `engine reply is larger than ${maxBytes} bytes, more than one reply may carry`,
        'engine_reply_too_large',
      );
    }
    parts.push(p as Buffer);
  }
  return Buffer.concat(parts).toString('utf8');
}
