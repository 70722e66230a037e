import type { ServerResponse } from 'node:http';
import { asCocoonError, CancelledError, type CocoonError, toOpenAIError } from '../errors.ts';
import type { Logger } from '../ops/log.ts';
import { addCostToUsage } from '../pay/usage-cost.ts';
import { type InferenceTrailer, inferenceTrailerSchema, type Serving } from '../protocol/messages.ts';
import type { Opened } from './proxy-failover.ts';
import { addServing, servingHeaders } from './serving.ts';

/** What a relay ended with: the trailer, or the error that cut a stream after its first part. */
export interface Relayed {
  trailer: InferenceTrailer | null;
  error: CocoonError | null;
}

/** Who served a reply and what its response must carry besides (CORS). */
export interface ReplyContext {
  requestId: string;
  serving: Serving | null | undefined;
  headers: Record<string, string>;
}

/** Relays a whole JSON reply (already read); returns the stream's trailer (null if malformed). */
export function relayJson(
  { stream, head, conn, reply }: Opened,
  res: ServerResponse,
  ctx: ReplyContext,
): Relayed {
  const parts = head.body ?? Buffer.alloc(0);
  const trailer = parseTrailer(stream.trailer);
  reply.tail(trailer?.reply); // a sealed reply is whole only with its sealed end
  // The reply came whole before its bill; the cost just signed for goes into its usage.
  const text = parts.toString('utf8');
  const body = Buffer.from(
    addServing(trailer?.cost ? addCostToUsage(text, trailer.cost) : text, ctx.serving),
  );
  res.writeHead(200, {
    ...ctx.headers,
    'content-type': 'application/json',
    'content-length': body.length,
    'x-request-id': ctx.requestId,
    'x-cocoon-proxy': conn.address,
    ...servingHeaders(ctx.serving),
  });
  res.end(body);
  return { trailer, error: null };
}

/** Server-sent events exactly as OpenAI sends them: `data: <chunk>\n\n` …, then `data: [DONE]\n\n`. */
export async function relaySse(
  { stream, head, conn, reply }: Opened,
  res: ServerResponse,
  ctx: ReplyContext,
  log: Logger,
): Promise<Relayed> {
  // The first part arrived before we commit to 200 (see openThroughProxies), so a refusal still gets its
  // status.
  const first = head.first!;
  res.writeHead(200, {
    ...ctx.headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-request-id': ctx.requestId,
    'x-cocoon-proxy': conn.address,
    ...servingHeaders(ctx.serving),
  });
  try {
    if (!first.done) {
      for (const event of first.value) await writeEvent(res, event);
      for await (const part of stream) for (const event of reply.open(part)) await writeEvent(res, event);
    }
    const trailer = parseTrailer(stream.trailer);
    const tail = finalPart(trailer, reply.tail(trailer?.reply));
    // Without a usage chunk (not asked for), the headers alone say who served: OpenAI streams end with
    // content chunks, and an extra chunk without choices would surprise clients.
    if (tail !== null) await writeEvent(res, Buffer.from(addServing(tail, ctx.serving)));
    endEvents(res, 'data: [DONE]\n\n');
    return { trailer, error: null };
  } catch (err) {
    if (err instanceof CancelledError || res.destroyed) throw err;
    // Headers are gone; the error travels as an SSE event the OpenAI SDKs raise as an APIError.
    const { body } = toOpenAIError(err);
    endEvents(res, `data: ${JSON.stringify(body)}\n\ndata: [DONE]\n\n`);
    log.warn(
      { requestId: ctx.requestId, err: (err as CocoonError).message },
      'stream failed after first token',
    );
    return { trailer: null, error: asCocoonError(err) };
  }
}

function writeEvent(res: ServerResponse, part: Buffer): Promise<void> | undefined {
  // Events that arrive in one tick leave in one write (one syscall), not one each.
  if (res.writableCorked === 0) {
    res.cork();
    process.nextTick(() => res.uncork());
  }
  const ok = res.write(Buffer.concat([DATA_PREFIX, part, EVENT_END]));
  if (ok || res.destroyed) return undefined;
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * Ends an event stream. Events still corked are flushed first: Node 22 writes the chunked terminator ahead
 * of corked data when `end` comes while corked, which cuts the stream after its first event.
 */
function endEvents(res: ServerResponse, last: string): void {
  while (res.writableCorked > 0) res.uncork();
  res.end(last);
}

/** The usage-bearing last part, with the request's cost added to its `usage`. */
function finalPart(t: InferenceTrailer | null, tail: string | null): string | null {
  if (tail === null) return null;
  return t?.cost ? addCostToUsage(tail, t.cost) : tail;
}

function parseTrailer(trailer: unknown): InferenceTrailer | null {
  const t = inferenceTrailerSchema.safeParse(trailer);
  return t.success ? t.data : null;
}

const DATA_PREFIX = Buffer.from('data: ');
const EVENT_END = Buffer.from('\n\n');
