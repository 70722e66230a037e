/**
 * Every error a daemon reports is a CocoonError: an HTTP status, an OpenAI error type, a stable code and a
 * human message. Errors are typed here once; `toOpenAIError` is the only place that turns them into the
 * OpenAI wire shape, and `toWireError`/`fromWireError` the only places they cross a node-to-node hop.
 */

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** The form an error takes inside the node-to-node protocol (RESET frames). */
export interface WireError {
  status: number;
  type: string;
  code: string | null;
  message: string;
  param?: string | null;
  /** Seconds after which a retry may succeed (overload, cooling workers): the HTTP `Retry-After`. */
  retryAfter?: number;
}

export class CocoonError extends Error {
  /** Seconds after which the same request may succeed; sent as `Retry-After`. */
  retryAfter: number | undefined;

  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string | null,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = new.target.name;
  }

  /** Marks the error as worth retrying after `seconds` (at least 1). */
  retryAfterSeconds(seconds: number): this {
    this.retryAfter = Math.max(1, Math.ceil(seconds));
    return this;
  }
}

export class BadRequestError extends CocoonError {
  constructor(message: string, param: string | null = null, code: string | null = 'invalid_request') {
    super(400, 'invalid_request_error', code, message, param);
  }
}

export class AuthenticationError extends CocoonError {
  constructor(message = 'Invalid or missing API key.') {
    super(401, 'authentication_error', 'invalid_api_key', message);
  }
}

/** The caller may not make this request from where it is (a foreign Host or Origin). */
export class ForbiddenError extends CocoonError {
  constructor(message: string, code: string) {
    super(403, 'invalid_request_error', code, message);
  }
}

export class UnsupportedMediaTypeError extends CocoonError {
  constructor(message: string) {
    super(415, 'invalid_request_error', 'unsupported_media_type', message);
  }
}

export class ModelNotFoundError extends CocoonError {
  constructor(model: string) {
    super(
      404,
      'invalid_request_error',
      'model_not_found',
      `The model '${model}' does not exist or no worker serves it.`,
      'model',
    );
  }
}

/** A thing the caller named by id (a receipt) does not exist here. */
export class NotFoundError extends CocoonError {
  constructor(message: string, code = 'not_found') {
    super(404, 'invalid_request_error', code, message);
  }
}

export class RouteNotFoundError extends CocoonError {
  constructor(method: string, path: string) {
    super(404, 'invalid_request_error', 'unknown_url', `Unknown request URL: ${method} ${path}.`);
  }
}

export class MethodNotAllowedError extends CocoonError {
  constructor(method: string, path: string) {
    super(405, 'invalid_request_error', 'method_not_allowed', `Method ${method} is not allowed on ${path}.`);
  }
}

export class PayloadTooLargeError extends CocoonError {
  constructor(limit: number) {
    super(
      413,
      'invalid_request_error',
      'request_too_large',
      `Request body exceeds the limit of ${limit} bytes.`,
    );
  }
}

/** Too much at once: always says when to come back (`Retry-After`, default 1 s). */
export class RateLimitError extends CocoonError {
  constructor(message: string, code = 'rate_limit_exceeded', retryAfter = 1) {
    super(429, 'rate_limit_error', code, message);
    this.retryAfterSeconds(retryAfter);
  }
}

/** The client's credit with the proxy cannot cover the request's worst case (OpenAI's billing error type). */
export class PaymentRequiredError extends CocoonError {
  constructor(message: string, code = 'insufficient_balance') {
    super(402, 'insufficient_quota', code, message);
  }
}

/** A payment message broke the rules (bad signature, wrong total, stale seqno): refused with the reason. */
export class PaymentRefusedError extends CocoonError {
  constructor(message: string, code = 'payment_refused') {
    super(402, 'payment_error', code, message);
  }
}

/**
 * The client will not sign a bill for a sealed reply: the worker claims more completion tokens than the
 * reply it sent accounts for. `proof` shows it to the proxy (the reply's secret, then its sealed parts as
 * they came; src/proxy/dispute.ts), which drops the bill if it holds.
 */
export class UsageDisputedError extends PaymentRefusedError {
  constructor(
    message: string,
    readonly proof: Buffer[],
  ) {
    super(message, 'usage_disputed');
  }
}

/** A peer or upstream engine failed or answered nonsense. */
export class BadGatewayError extends CocoonError {
  constructor(message: string, code = 'bad_gateway') {
    super(502, 'server_error', code, message);
  }
}

/** Nothing can serve the request right now (no proxy connected, no eligible worker). */
export class ServiceUnavailableError extends CocoonError {
  constructor(message: string, code = 'service_unavailable') {
    super(503, 'server_error', code, message);
  }
}

export class GatewayTimeoutError extends CocoonError {
  constructor(message: string) {
    super(504, 'server_error', 'timeout', message);
  }
}

/** A peer broke the node-to-node protocol; the connection to it is closed. */
export class ProtocolError extends CocoonError {
  constructor(message: string, code = 'protocol_error') {
    super(502, 'server_error', code, message);
  }
}

/**
 * An end-to-end sealed request or reply part did not open: wrong key, a changed byte, wrong AAD (moved to
 * another request), truncated, reordered, replayed, past the last part, or an unknown version. One code
 * for all (the message names the check, for logs): whatever failed, the input is dropped, nothing of it used.
 */
export class E2EOpenError extends ProtocolError {
  constructor(message: string) {
    super(message, 'e2e_open_failed');
  }
}

/** The request was cancelled by whoever asked for it (HTTP caller went away). */
export class CancelledError extends CocoonError {
  constructor(message = 'Request cancelled by the caller.') {
    super(499, 'invalid_request_error', 'cancelled', message);
  }
}

export function toWireError(err: unknown): WireError {
  if (err instanceof CocoonError) {
    const w: WireError = {
      status: err.status,
      type: err.type,
      code: err.code,
      message: err.message,
      param: err.param,
    };
    if (err.retryAfter !== undefined) w.retryAfter = err.retryAfter;
    return w;
  }
  return { status: 500, type: 'server_error', code: 'internal_error', message: 'Internal error.' };
}

export function fromWireError(w: WireError): CocoonError {
  const e = new CocoonError(w.status, w.type, w.code, w.message, w.param ?? null);
  if (w.retryAfter !== undefined) e.retryAfterSeconds(w.retryAfter);
  return e;
}

/** The one mapping from any thrown value to an HTTP status and OpenAI error body. */
export function toOpenAIError(err: unknown): {
  status: number;
  body: OpenAIErrorBody;
  retryAfter: number | undefined;
} {
  const w = toWireError(err);
  return {
    status: w.status,
    body: { error: { message: w.message, type: w.type, param: w.param ?? null, code: w.code } },
    retryAfter: w.retryAfter,
  };
}

/** Any thrown value as a CocoonError; anything else is an internal error (its details stay in our logs). */
export function asCocoonError(err: unknown): CocoonError {
  return err instanceof CocoonError ? err : fromWireError(toWireError(err));
}
