/** Node-to-node protocol identity. Both sides announce [min, max]; the session runs at the highest common version. */
export const PROTOCOL_NAME = 'cocoon';
export const PROTOCOL_MIN_VERSION = 1;
export const PROTOCOL_MAX_VERSION = 1;

export type NodeRole = 'client' | 'proxy' | 'worker';
