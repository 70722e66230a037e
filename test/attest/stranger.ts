import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeCertificate } from '../../src/attest/certificate.ts';
import { DevAttestationProvider, DevAttestationVerifier } from '../../src/attest/dev/index.ts';
import { generateNodeKey } from '../../src/attest/identity.ts';
import type { PolicySource } from '../../src/attest/policy.ts';
import type { TdxAttestationVerifier } from '../../src/attest/tdx/index.ts';
import {
  makeCredentials,
  peerTrust,
  type TdxTrustOptions,
  trustSetup,
} from '../../src/attest/trust-setup.ts';
import type { AttestationProvider } from '../../src/attest/types.ts';
import type { x509 } from '../../src/attest/x509.ts';
import type { CocoonError } from '../../src/errors.ts';
import { dialPeer, listenForPeers, type PeerListener } from '../../src/net/tls.ts';
import type { NodeRole } from '../../src/protocol/version.ts';
import { type FakePccs, startFakePccs } from './fake-pccs.ts';
import { PINNED, tdxCollateral } from './vectors.ts';

/**
 * A `tdx` node's worker port as the TLS handshake sees it (trustSetup + peerTrust + listenForPeers, the
 * path src/proxy uses), with Intel collateral from a fake PCCS that counts fetches and a fresh cache dir;
 * strangers dial it with certificates of their making.
 */
export interface TdxVictim {
  pccs: FakePccs;
  cacheDir: string;
  listener: PeerListener;
  /** The TDX verifier behind the port (for its counters). */
  verifier: TdxAttestationVerifier;
  /** The port's gated verifiers (role, tier and allow-list checks first), as the handshake calls them. */
  trust: ReturnType<typeof peerTrust>;
  refused: CocoonError[];
  /** Files in the collateral cache dir. */
  cacheFiles(): string[];
  close(): Promise<void>;
}

export async function startTdxVictim(
  opts: Partial<TdxTrustOptions> & { policy?: PolicySource; roles?: NodeRole[] } = {},
): Promise<TdxVictim> {
  const { policy, roles, ...tdx } = opts;
  const pccs = await startFakePccs(tdxCollateral);
  const cacheDir = join(mkdtempSync(join(tmpdir(), 'cocoon-victim-')), 'collateral');
  const setup = trustSetup('tdx', {
    pccsUrl: pccs.url,
    collateralCacheDir: cacheDir,
    now: () => PINNED,
    ...tdx,
  });
  const trust = peerTrust(policy ? { ...setup, policy } : setup, roles ?? ['worker']);
  const refused: CocoonError[] = [];
  // The victim's own certificate is a dev one: there is no TEE here, and strangers do not check it.
  const { credentials } = await makeCredentials(generateNodeKey(), 'proxy', new DevAttestationProvider());
  const listener = await listenForPeers({
    host: '127.0.0.1',
    port: 0,
    credentials,
    trust,
    session: { hello: { role: 'proxy', name: 'victim' } },
    onSession: (s) => s.close(),
    onRefused: (err) => refused.push(err),
  });
  return {
    pccs,
    cacheDir,
    listener,
    verifier: setup.verifiers.get('tdx') as TdxAttestationVerifier,
    trust,
    refused,
    cacheFiles: () => (existsSync(cacheDir) ? readdirSync(cacheDir) : []),
    close: async () => {
      await listener.close();
      await pccs.close();
      rmSync(join(cacheDir, '..'), { recursive: true, force: true });
    },
  };
}

/** A stranger's provider: claims of kind `tdx` and whatever quote bytes it likes (given the report data). */
export function strangerProvider(quote: (reportData: Uint8Array) => Uint8Array): AttestationProvider {
  return { kind: 'tdx', quote: async (rd) => quote(rd) };
}

/**
 * Dials the victim once as a stranger (its own key, its own certificate) and resolves with the victim's
 * refusal code once the victim has refused it.
 */
export async function dialAsStranger(
  victim: TdxVictim,
  provider: AttestationProvider,
  opts: { role?: 'client' | 'proxy' | 'worker'; extra?: x509.Extension[] } = {},
): Promise<string | undefined> {
  const key = generateNodeKey();
  const cert = await createNodeCertificate({
    key,
    provider,
    claims: { role: opts.role ?? 'worker', protocol: { min: 1, max: 1 } },
    ...(opts.extra ? { extraExtensions: opts.extra } : {}),
  });
  const before = victim.refused.length;
  const dev = new DevAttestationVerifier();
  await dialPeer({
    host: '127.0.0.1',
    port: victim.listener.port,
    credentials: { privateKeyPem: key.privateKeyPem, certPem: cert.certPem },
    trust: { verifiers: new Map([[dev.kind, dev]]), roles: ['proxy'], minTier: 'dev' },
    session: { hello: { role: opts.role ?? 'worker', name: 'stranger' } },
    connectTimeoutMs: 5000,
  }).then(
    ({ session }) => session.close(),
    () => {},
  );
  for (let i = 0; i < 500 && victim.refused.length === before; i++)
    await new Promise((r) => setTimeout(r, 5));
  return victim.refused[before]?.code ?? undefined;
}
