import type { E2EKey } from '../attest/e2e-key.ts';
import type { VerifiedAttestation } from '../attest/types.ts';
import { BadGatewayError, BadRequestError, ProtocolError } from '../errors.ts';
import type { Stream } from '../net/stream.ts';
import type { InferenceCall, InferenceRequest } from '../protocol/inference.ts';
import { jsonNestsDeeperThan, MAX_JSON_DEPTH } from '../protocol/limits.ts';
import { OutputObserver } from '../protocol/observed-output.ts';
import { ReplyHasher, sha256Hex } from '../protocol/receipt.ts';
import {
  openRequest,
  type ReplySealer,
  requestAad,
  SEALED_EVENT_SEPARATOR,
} from '../protocol/sealing/index.ts';

/** Output-less stream parts (role chunks) held back until the first that carries output, at most. */
const MAX_HELD_PARTS = 4;

/**
 * The certificates a worker presents, newest first: a client may have sealed to the one before a rotation,
 * so the last two are accepted; an older one, or another worker's, is refused before anything is opened.
 */
export class OwnCertificates {
  private readonly certs: { hash: string; attestation: VerifiedAttestation }[] = [];

  /** A new certificate, with what its quote proves (the worker verified it as a peer would). */
  add(hash: string, attestation: VerifiedAttestation): void {
    this.certs.unshift({ hash, attestation });
    this.certs.length = Math.min(this.certs.length, 2);
  }

  has(hash: string | undefined): hash is string {
    return hash !== undefined && this.certs.some((c) => c.hash === hash);
  }

  /** The certificate a request names (when it is ours), or else the newest: what its receipt names. */
  pick(hash: string | undefined): { hash: string; attestation: VerifiedAttestation } {
    return this.certs.find((c) => c.hash === hash) ?? this.certs[0]!;
  }
}

/** A call's body and what writes its reply (sealed to the client, or in the clear when it chose so). */
export interface OpenedCall {
  request: InferenceRequest;
  reply: ReplyWriter;
  /** SHA-256 (hex) of the body exactly as the client sent it (sealed or not): its receipt names it. */
  requestHash: string;
}

/**
 * Reads the body that follows a call's OPEN (exactly `bodyBytes`, never more), opens it when sealed to our
 * E2E key for this request and certificate, and parses it. Anything wrong is the sender's: a 400 or 502
 * that ends this call only.
 */
export async function openCall(
  stream: Stream,
  requestId: string,
  call: InferenceCall,
  certificate: string | undefined,
  own: OwnCertificates,
  key: E2EKey,
): Promise<OpenedCall> {
  const body = await readBody(stream, call.bodyBytes);
  const { bodyBytes: _, sealed: __, ...meta } = call;
  const requestHash = sha256Hex(body);
  if (!call.sealed) {
    return { request: { ...meta, body: parseBody(body) }, reply: new ReplyWriter(stream, null), requestHash };
  }
  if (!own.has(certificate)) {
    throw new BadGatewayError(
      'The request was sealed for a certificate this worker does not hold now.',
      'worker_certificate_unknown',
    );
  }
  const aad = requestAad({ requestId, model: call.model, workerCertHash: Buffer.from(certificate, 'hex') });
  const opened = await openRequest({ key: key.keyPair, sealed: body, aad, maxBytes: call.bodyBytes });
  return {
    request: { ...meta, body: parseBody(opened.plaintext) },
    reply: new ReplyWriter(stream, opened.reply),
    requestHash,
  };
}

async function readBody(stream: Stream, bytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  for await (const part of stream) {
    got += part.length;
    if (got > bytes) throw new ProtocolError(`call body over its declared ${bytes} bytes`, 'bad_message');
    parts.push(part);
  }
  if (got !== bytes) throw new ProtocolError(`call body of ${got} bytes, declared ${bytes}`, 'bad_message');
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** The OpenAI body: a JSON object within the nesting every hop accepts. */
function parseBody(bytes: Buffer): Record<string, unknown> {
  if (jsonNestsDeeperThan(bytes)) {
    throw new BadRequestError(`The request body nests deeper than ${MAX_JSON_DEPTH}.`, null, 'invalid_json');
  }
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new BadRequestError('The request body is not valid JSON.', null, 'invalid_json');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new BadRequestError('The request body must be a JSON object.', null, 'invalid_json');
  }
  return body as Record<string, unknown>;
}

/**
 * Writes a reply's parts, each sealed when the request was. Parts that carry no output (a stream's role
 * and finish chunks) are held back: in the clear only until the first token (the proxy counts output
 * parts itself); sealed, the proxy cannot read parts and counts each as one token, so every run of them
 * travels inside the next part that carries output (or as one part at the end), newline-separated. Before
 * the first token nothing leaves either way, so the proxy can still hand a failing worker's call to another.
 */
export class ReplyWriter {
  private held: Buffer[] = [];
  private started = false;
  /** Every event as the client will read it, in order (the tail last): the receipt's `replyHash`. */
  readonly hasher = new ReplyHasher();
  /** What the reply carries, counted as the proxy and the client count it: the most this worker may claim. */
  readonly output = new OutputObserver();

  constructor(
    private readonly stream: Stream,
    private readonly sealer: ReplySealer | null,
  ) {}

  /** One stream chunk. */
  async chunk(json: string): Promise<void> {
    const part = Buffer.from(json);
    this.hasher.update(part);
    const carries = this.output.observePart(part);
    const holding = this.sealer !== null || !this.started;
    if (holding && this.held.length < MAX_HELD_PARTS && !carries) {
      this.held.push(part);
      return;
    }
    this.started = true;
    await this.flush(part);
  }

  /** A whole reply: one part. */
  async whole(json: string): Promise<void> {
    const part = Buffer.from(json);
    this.hasher.update(part);
    this.output.observeResponse(part);
    await this.write(part);
  }

  /** What the trailer carries to end the reply: the sealed last part (with the tail), or the tail itself. */
  async end(tail: string | null): Promise<{ tail?: string; end?: string }> {
    await this.flush(null);
    if (tail !== null) {
      // Only a stream has a tail (its usage chunk): one event, as the client counts a sealed end.
      this.hasher.update(Buffer.from(tail));
      this.output.observePart(tail);
    }
    if (!this.sealer) return tail !== null ? { tail } : {};
    return { end: this.sealer.seal(Buffer.from(tail ?? ''), true).toString('base64') };
  }

  /** The held parts, then `part`: one sealed part for them all, or one clear part each. */
  private async flush(part: Buffer | null): Promise<void> {
    const parts = part ? [...this.held, part] : this.held;
    this.held = [];
    if (parts.length === 0) return;
    if (this.sealer) {
      const joined =
        parts.length === 1 ? parts[0]! : Buffer.concat(parts.flatMap((p, i) => (i ? [SEPARATOR, p] : [p])));
      await this.write(joined);
    } else for (const p of parts) await this.write(p);
  }

  private async write(part: Buffer): Promise<void> {
    const p = this.stream.write(this.sealer ? this.sealer.seal(part) : part);
    if (p) await p;
  }
}

const SEPARATOR = Buffer.of(SEALED_EVENT_SEPARATOR);
