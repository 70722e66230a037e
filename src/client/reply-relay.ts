import type { ServerResponse } from 'node:http';
import { asCocoonError, CancelledError, type CocoonError, toOpenAIError } from '../errors.ts';
import type { Logger } from '../ops/log.ts';
import { addCostToUsage } from '../pay/usage-cost.ts';
import {
  type InferenceTrailer,
  inferenceTrailerSchema,
  type Serving,
  type WorkerTrailer,
} from '../protocol/messages.ts';
import type { Receipt } from '../protocol/receipt.ts';
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
  /** The reply has a receipt (the client did not turn them off): its id goes in `x-cocoon-receipt`. */
  receipts: boolean;
  /**
   * Checks and keeps the worker's receipt of the reply as read (its hash); throws if it does not hold.
   * Undefined when the client chose no receipts.
   */
  receipt: (reply: WorkerTrailer | undefined, replyHash: string) => Promise<Receipt | undefined>;
}

/** Relays a whole JSON reply (already read); returns the stream's trailer (null if malformed). */
export async function relayJson(
  { stream, head, conn, reply }: Opened,
  res: ServerResponse,
  ctx: ReplyContext,
): Promise<Relayed> {
  const parts = head.body ?? Buffer.alloc(0);
  const trailer = parseTrailer(stream.trailer);
  reply.tail(trailer?.reply); // a sealed reply is whole only with its sealed end
  const receipt = await ctx.receipt(trailer?.reply, reply.digest());
  // The reply came whole before its bill; the cost just signed for goes into its usage.
  const text = parts.toString('utf8');
  const body = Buffer.from(
    addServing(trailer?.cost ? addCostToUsage(text, trailer.cost) : text, ctx.serving, receipt),
  );
  res.writeHead(200, {
    ...ctx.headers,
    'content-type': 'application/json',
    'content-length': body.length,
    ...replyHeaders(ctx, conn.address),
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
    ...replyHeaders(ctx, conn.address),
  });
  try {
    let lastEvent: Buffer | null = null;
    const relay = async (events: Buffer[]) => {
      for (const event of events) await writeEvent(res, event);
      lastEvent = events.at(-1) ?? lastEvent;
    };
    if (!first.done) {
      await relay(first.value);
      for await (const _ of stream) await relay(reply.next());
    }
    const trailer = parseTrailer(stream.trailer);
    const tail = finalPart(trailer, reply.tail(trailer?.reply));
    const receipt = await ctx.receipt(trailer?.reply, reply.digest());
    // Who served and the receipt go in the usage chunk; without one (not asked for), in a last chunk of
    // the same shape (no choices), so a stream always ends with its receipt.
    const last = tail ?? (receipt ? receiptChunk(lastEvent) : null);
    if (last !== null) await writeEvent(res, Buffer.from(addServing(last, ctx.serving, receipt)));
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

function replyHeaders(ctx: ReplyContext, proxy: string): Record<string, string> {
  return {
    'x-request-id': ctx.requestId,
    ...(ctx.receipts ? { 'x-cocoon-receipt': ctx.requestId } : {}),
    'x-cocoon-proxy': proxy,
    ...servingHeaders(ctx.serving),
  };
}

/** A chunk without choices in the envelope (id, object, created, model) of the stream's last event. */
function receiptChunk(last: Buffer | null): string {
  let e: Record<string, unknown> = {};
  try {
    e = last ? JSON.parse(last.toString('utf8')) : {};
  } catch {}
  return JSON.stringify({
    id: e.id ?? '',
    object: e.object ?? 'chat.completion.chunk',
    created: e.created ?? 0,
    model: e.model ?? '',
    choices: [],
  });
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
