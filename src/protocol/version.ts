/** Node-to-node protocol identity. Both sides announce [min, max]; the session runs at the highest common version. */
export const PROTOCOL_NAME = 'cocoon';
export const PROTOCOL_MIN_VERSION = 1;
export const PROTOCOL_MAX_VERSION = 1;

export type NodeRole = 'client' | 'proxy' | 'worker';

/**
 * Protocol v1: the DATA credit each side may send on a new stream before the first WINDOW grant. Not
 * announced in HELLO, so both ends must agree on it; the receiver cuts off a peer that sends beyond it.
 */
export const STREAM_WINDOW_BYTES = 1024 * 1024;
