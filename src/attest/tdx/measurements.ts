import { createHash } from 'node:crypto';

/**
 * The image identity of a TD: SHA-256 over the domain tag `cocoon-tdx-image-v1` followed by these fields
 * of the TD report, raw, in this order (all fixed-size, so no framing is needed):
 *   MRTD, RTMR0, RTMR1, RTMR2, RTMR3 (48 bytes each) — firmware, kernel, command line, application;
 *   MRSEAM, MRSIGNERSEAM (48 each) — the TDX module;
 *   SEAMATTRIBUTES, TDATTRIBUTES, XFAM (8 each) — e.g. debug mode is in TDATTRIBUTES;
 *   MRCONFIGID, MROWNER, MROWNERCONFIG (48 each).
 * REPORTDATA is excluded (it binds one certificate, not the image) and so is TEE_TCB_SVN (the platform's
 * patch level, judged by the TCB status instead).
 */
export const IMAGE_FIELDS = [
  'mrTd',
  'rtMr0',
  'rtMr1',
  'rtMr2',
  'rtMr3',
  'mrSeam',
  'mrSignerSeam',
  'seamAttributes',
  'tdAttributes',
  'xfam',
  'mrConfigId',
  'mrOwner',
  'mrOwnerConfig',
] as const;

export function tdxImageHash(report: Record<string, Uint8Array>): string {
  const h = createHash('sha256').update('cocoon-tdx-image-v1');
  for (const f of IMAGE_FIELDS) {
    const v = report[f];
    if (!v) throw new Error(`TD report has no ${f}`);
    h.update(v);
  }
  return h.digest('hex');
}
