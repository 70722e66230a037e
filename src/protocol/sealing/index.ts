/** End-to-end encryption between a client and the worker serving its request; the proxy relays sealed bytes. */
export { paddedLength, REPLY_PAD_STEP, REQUEST_PAD_STEP } from './padding.ts';
export { REPLY_SECRET_BYTES, ReplyOpener, ReplySealer } from './reply.ts';
export {
  type OpenRequestOptions,
  openRequest,
  type RequestAadFields,
  requestAad,
  type SealRequestOptions,
  sealedRequestBytes,
  sealedRequestEnc,
  sealRequest,
} from './request.ts';
export { E2E_SUITE, E2E_SUITES, type E2ESuiteId } from './suite.ts';

/**
 * Stream events a worker coalesces into one sealed part are separated by a newline, which JSON text never
 * contains: output-less events ride with the next one that carries output, so each sealed part is a token.
 */
export const SEALED_EVENT_SEPARATOR = 0x0a;
