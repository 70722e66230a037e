import { randomBytes } from 'node:crypto';
import { access, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AttestationError } from '../errors.ts';
import type { AttestationProvider } from '../types.ts';

/**
 * Linux configfs-tsm (`/sys/kernel/config/tsm/report`): the kernel's one interface for confidential-VM
 * quotes. Create an entry, write 64 bytes of report data to `inblob`, read the quote from `outblob`.
 * The same interface serves AMD SEV-SNP guests (provider `sev_guest`): the seam for an SNP provider once
 * a well-kept SNP verifier exists for Node (none does today).
 */
export class ConfigfsTsm {
  constructor(
    readonly root = '/sys/kernel/config/tsm',
    private readonly expectedProvider?: string,
  ) {}

  async report(reportData: Uint8Array): Promise<Buffer> {
    const base = join(this.root, 'report');
    try {
      await access(base);
    } catch {
      throw new AttestationError('no_tee', `not inside a confidential VM (no ${base})`);
    }
    const entry = join(base, `cocoon-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(entry);
    try {
      if (this.expectedProvider) {
        const provider = (await readFile(join(entry, 'provider'), 'utf8').catch(() => '')).trim();
        if (provider && provider !== this.expectedProvider) {
          throw new AttestationError(
            'wrong_tee',
            `configfs-tsm provider is ${provider}, not ${this.expectedProvider}`,
          );
        }
      }
      await writeFile(join(entry, 'inblob'), reportData);
      return await readFile(join(entry, 'outblob'));
    } finally {
      await rmdir(entry).catch(() => {});
    }
  }
}

/** Makes TDX quotes inside a TDX guest, through configfs-tsm. */
export class TdxAttestationProvider implements AttestationProvider {
  readonly kind = 'tdx';
  constructor(private readonly tsm = new ConfigfsTsm('/sys/kernel/config/tsm', 'tdx_guest')) {}

  quote(reportData: Uint8Array): Promise<Uint8Array> {
    if (reportData.length !== 64)
      throw new AttestationError('bad_report_data', 'TDX report data is 64 bytes');
    return this.tsm.report(reportData);
  }
}
