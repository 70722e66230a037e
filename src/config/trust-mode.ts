import { join } from 'node:path';
import { type TrustSetup, trustSetup } from '../attest/trust-setup.ts';
import { ConfigError } from './config.ts';

/** What of a node's config chooses its trust mode and where TDX collateral comes from. */
export interface TrustModeConfig {
  trust: 'dev' | 'tdx';
  dataDir: string;
  pccsUrl?: string | undefined;
  collateralFile?: string | undefined;
  acceptTcbStatuses?: string[] | undefined;
}

/** The trust mode a config names, its collateral cached in `<dataDir>/collateral`; a bad one is a ConfigError. */
export function trustModeOf(c: TrustModeConfig): TrustSetup {
  try {
    return trustSetup(c.trust, {
      collateralCacheDir: join(c.dataDir, 'collateral'),
      ...(c.pccsUrl ? { pccsUrl: c.pccsUrl } : {}),
      ...(c.collateralFile ? { collateralFile: c.collateralFile } : {}),
      ...(c.acceptTcbStatuses ? { acceptTcbStatuses: c.acceptTcbStatuses } : {}),
    });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}
