import { Address } from '@ton/core';
import { z } from 'zod';
import { ProtocolError, type WireError } from '../errors.ts';
import { inferenceCallSchema, trustTierSchema } from './inference.ts';
import { MAX_MODEL_NAME_CHARS } from './limits.ts';
import { receiptSchema, requestIdSchema } from './receipt.ts';

/**
 * The JSON messages of the node-to-node protocol. Every message from a peer is parsed here, once, and is
 * typed from then on; anything malformed is a ProtocolError (the peer is disconnected).
 */

const role = z.enum(['client', 'proxy', 'worker']);

/** Who serves a request, as the client proved it from the worker's own certificate: what the user sees. */
export const servingSchema = z.object({
  worker: z.string().max(200),
  /** Trust tier proved by the worker's attestation. */
  tier: trustTierSchema,
  /** SHA-256 over the worker's measured image (hex). */
  image: z.string().max(64),
  /** The model identity the worker serves (`name@revision:hash`, or the bare name). */
  model: z.string().max(MAX_MODEL_NAME_CHARS),
  /** The worker's price coefficient for this model (1000 = 1×): the only one a bill may name. */
  coefficient: z.number().int().min(0).max(1_000_000_000),
});
export type Serving = z.infer<typeof servingSchema>;

/** A certificate of at most 64 KiB (src/attest/certificate.ts) in base64. */
const MAX_CERTIFICATE_BASE64 = Math.ceil((64 * 1024) / 3) * 4;

/**
 * A sealed reply's end (its last part, sealed, base64): it carries a stream's usage chunk and nothing
 * larger, so it fits in the bill the proxy sends before the reply's trailer.
 */
export const MAX_SEALED_END_BASE64 = Math.ceil((64 * 1024) / 3) * 4;

/** A TON address in any standard text form; checked here so no handler ever parses a bad one. */
const tonAddress = z
  .string()
  .max(70)
  .refine((a) => Address.isFriendly(a) || Address.isRaw(a), 'expected a TON address');

/** First frame in each direction. The dialer offers [minVersion, maxVersion]; the acceptor answers with `version`. */
export const helloSchema = z.object({
  protocol: z.literal('cocoon'),
  minVersion: z.number().int().positive(),
  maxVersion: z.number().int().positive(),
  version: z.number().int().positive().optional(),
  role,
  name: z.string().max(200),
  /** Role-specific data (a worker's models and capacity). Validated by the role. */
  info: z.unknown().optional(),
});
export type Hello = z.infer<typeof helloSchema>;

/** What a worker serves, sent in its Hello and again whenever it changes (Control `worker.status`). */
export const workerModelSchema = z.object({
  name: z.string().min(1).max(MAX_MODEL_NAME_CHARS),
  maxConcurrent: z.number().int().min(1).max(100_000),
  /** Price coefficient, 1000 = 1×. */
  coefficient: z.number().int().min(0).max(1_000_000_000),
});
export const workerInfoSchema = z.object({
  models: z.array(workerModelSchema).min(1).max(64),
  enabled: z.boolean().default(true),
  backend: z.string().max(64).optional(),
  /** TON address of the worker's owner: its fees are paid there (through its worker contract). */
  payoutAddress: tonAddress.optional(),
});
export type WorkerInfo = z.infer<typeof workerInfoSchema>;

/** A client's Hello info when its proxy takes payments: the wallet that owns its client contract. */
export const clientInfoSchema = z.object({ wallet: tonAddress });

/** A paying proxy's Hello info: the proxy contract that client and worker contracts are bound to. */
export const proxyInfoSchema = z.object({ proxyContract: tonAddress });
export type WorkerModel = z.infer<typeof workerModelSchema>;

const tokenUsageSchema = z.object({
  promptTokens: z.number().int().nonnegative(),
  cachedTokens: z.number().int().nonnegative(),
  completionTokens: z.number().int().nonnegative(),
  reasoningTokens: z.number().int().nonnegative(),
});

/** Nanoton on the wire: a decimal string, read into a bigint (JSON numbers cannot hold every amount). */
export const nanotonSchema = z
  .string()
  .regex(/^(0|[1-9]\d{0,38})$/, 'expected nanoton as a decimal string')
  .transform((s) => BigInt(s));
const signatureSchema = z
  .string()
  .regex(/^[0-9a-f]{128}$/, 'expected a 64-byte signature in hex')
  .transform((s) => Buffer.from(s, 'hex'));
const addressSchema = tonAddress;

export const costSchema = z.object({
  prompt: nanotonSchema,
  completion: nanotonSchema,
  total: nanotonSchema,
});

/** A signed cumulative state as it travels: the payload's fields plus the Ed25519 signature. */
const clientAuthWire = z.object({ seqno: nanotonSchema, total: nanotonSchema, signature: signatureSchema });

export const controlSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('worker.status'), info: workerInfoSchema }),
  /** proxy → client: the proxy is shutting down; it finishes what it has, new requests go elsewhere. */
  z.object({ type: z.literal('proxy.draining') }),
  /**
   * proxy → client, before the request's body: the worker the proxy would route it to. The client checks
   * the worker's certificate itself (tier, image, models, E2E key) and answers with the body, sealed to
   * that worker; a worker that fails before its first part is replaced by another offer.
   */
  z.object({
    type: z.literal('request.offer'),
    requestId: z.string().max(100),
    /**
     * The worker's RA-TLS certificate, DER in base64 (what it presented to the proxy), the first time on
     * a session; afterwards its SHA-256 (hex) instead (src/protocol/offered-certificates.ts).
     */
    certificate: z.string().max(MAX_CERTIFICATE_BASE64).optional(),
    certificateHash: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional(),
    /** The worker's price coefficient for this model (1000 = 1×): the only one a bill may name. */
    coefficient: z.number().int().min(0).max(1_000_000_000),
    /** The worker's name, for logs (its word only). */
    worker: z.string().max(200),
  }),
  /**
   * client → proxy: the caller went away; stop the worker and end the stream with what was delivered (the
   * client keeps reading until then, so it knows exactly what it will be billed for).
   */
  z.object({ type: z.literal('request.cancel'), requestId: z.string().max(100) }),
  /** proxy → client, on connect and when the chain changes: the account the proxy bills. */
  z.object({
    type: z.literal('pay.account'),
    contract: addressSchema,
    /** The newest authorisation the proxy holds; the client continues from it. */
    auth: clientAuthWire.nullable(),
    balance: nanotonSchema,
    stake: nanotonSchema,
    charged: nanotonSchema,
    state: z.number().int().min(0).max(2),
    deployed: z.boolean(),
  }),
  /** proxy → client: what one finished request costs; the client answers with `pay.auth` or `pay.reject`. */
  z.object({
    type: z.literal('pay.bill'),
    requestId: z.string().max(100),
    /** The root's params version the bill is priced with. */
    paramsVersion: z.number().int().nonnegative(),
    coefficient: z.number().int().nonnegative(),
    usage: tokenUsageSchema,
    cost: costSchema,
    /** The serving worker's signed receipt: the bill's usage may not exceed what the worker signed. */
    receipt: receiptSchema.optional(),
    /**
     * A sealed reply's end, as the worker sent it (the trailer follows only once the bill is signed): the
     * client opens it to count the whole reply before it signs, and puts it in a dispute's proof.
     */
    end: z.string().max(MAX_SEALED_END_BASE64).optional(),
  }),
  /** client → proxy: a signed cumulative authorisation covering the listed bills. */
  z.object({
    type: z.literal('pay.auth'),
    requestIds: z.array(z.string().max(100)).max(10_000),
    seqno: nanotonSchema,
    total: nanotonSchema,
    signature: signatureSchema,
  }),
  /** client → proxy: a bill the client will not sign, with why. */
  z.object({ type: z.literal('pay.reject'), requestId: z.string().max(100), reason: z.string().max(1000) }),
  /** proxy → worker: a signed cumulative payout the worker can redeem on its worker contract. */
  z.object({
    type: z.literal('pay.payout'),
    contract: addressSchema,
    seqno: nanotonSchema,
    workerTotal: nanotonSchema,
    proxyTotal: nanotonSchema,
    signature: signatureSchema,
  }),
]);
export type ControlMessage = z.infer<typeof controlSchema>;

/** OPEN header: the call a stream carries. */
export const callSchema = z.discriminatedUnion('method', [
  z.object({
    method: z.literal('inference'),
    /** Header-safe, as a receipt's id must be (the receipt is named by it). */
    requestId: requestIdSchema,
    request: inferenceCallSchema,
    /** proxy → worker: SHA-256 (hex) of the worker certificate the client was offered and sealed to. */
    certificate: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional(),
  }),
  z.object({ method: z.literal('models') }),
  /**
   * client → proxy: the client will not sign a bill for a sealed reply because the worker claims more
   * completion tokens than the reply's plaintext accounts for. The stream's data is the proof: the reply's
   * 32-byte secret first (it opens this reply only: no other reply, not the request), then every sealed part
   * exactly as the proxy relayed it, the end last. The proxy checks the parts against what it relayed,
   * counts them opened, and drops the bill and cuts the worker off if the client is right (src/proxy/dispute.ts).
   */
  z.object({ method: z.literal('dispute'), requestId: requestIdSchema }),
]);
export type Call = z.infer<typeof callSchema>;

/**
 * END trailer of an inference stream from the worker. It reaches the client whole (the proxy puts it in
 * its own trailer as `reply`, unknown fields kept), so what the worker adds needs no change at the proxy.
 */
export const workerTrailerSchema = z.looseObject({
  /** The usage the worker reports: what the request is billed on, within the proxy's bounds. */
  usage: tokenUsageSchema,
  /** A stream's usage chunk (when the caller asked for one), held back so the client can add the cost. */
  tail: z.string().optional(),
  /** Sealed replies: the last sealed part, base64, carrying the tail (or nothing): a cut reply cannot pass. */
  end: z.string().max(MAX_SEALED_END_BASE64).optional(),
  worker: z.string().max(200).optional(),
  workerMs: z.number().nonnegative().optional(),
  /** The worker's signed receipt for this reply (src/protocol/receipt.ts), checked by proxy and client. */
  receipt: z.unknown().optional(),
});
export type WorkerTrailer = z.infer<typeof workerTrailerSchema>;

/** END trailer of an inference stream from the proxy to the client. */
export const inferenceTrailerSchema = z.object({
  /** What the request is billed for: the worker's usage within the proxy's bounds, or what was delivered. */
  usage: tokenUsageSchema,
  /** What the request cost, nanoton (when payments are on). */
  cost: costSchema.optional(),
  /** The serving worker's trailer, whole (absent when the request ended without one). */
  reply: workerTrailerSchema.optional(),
});
export type InferenceTrailer = z.infer<typeof inferenceTrailerSchema>;

/** Body of the `models` call: the network's models as the proxy sees them. */
export const modelListSchema = z.object({
  models: z.array(
    z.object({
      id: z.string(),
      workers: z.array(
        z.object({
          coefficient: z.number(),
          running: z.number(),
          maxConcurrent: z.number(),
          tier: trustTierSchema.optional(),
        }),
      ),
    }),
  ),
});
export type ModelList = z.infer<typeof modelListSchema>;

export const wireErrorSchema = z.object({
  status: z.number().int().min(100).max(599),
  type: z.string().max(100),
  code: z.string().max(100).nullable(),
  message: z.string().max(10_000),
  param: z.string().max(200).nullable().optional(),
  retryAfter: z.number().int().min(1).max(3600).optional(),
});

/** Parses a JSON payload against a schema; any failure is the peer's protocol violation. */
export function parseMessage<T>(schema: z.ZodType<T>, payload: Buffer | string, what: string): T {
  let json: unknown;
  try {
    json = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch {
    throw new ProtocolError(`${what}: payload is not valid JSON`, 'bad_message');
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ProtocolError(
      `${what}: ${issue?.path.join('.') || 'message'}: ${issue?.message}`,
      'bad_message',
    );
  }
  return r.data;
}

export function parseWireError(payload: Buffer): WireError {
  return parseMessage(wireErrorSchema, payload, 'error frame') as WireError;
}
