import { createRequire } from 'node:module';

/** @phala/dcap-qvl is CommonJS; this is its one import site (typed by the package's own d.ts). */
const require = createRequire(import.meta.url);
export const dcap = require('@phala/dcap-qvl') as typeof import('@phala/dcap-qvl');

/** What `verify` returns for a TDX quote (the package types its report loosely). */
export interface TdxVerified {
  status: string;
  advisory_ids?: string[];
  report: { type: string; data: Record<string, Uint8Array> };
}
