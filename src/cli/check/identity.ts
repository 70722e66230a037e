import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Address } from '@ton/core';
import { verifyPeerCertificate } from '../../attest/certificate.ts';
import { generateNodeKey, type NodeKey, nodeKeyFromPrivate } from '../../attest/identity.ts';
import { parseModelIdentity } from '../../attest/model-identity.ts';
import { StaticPolicy } from '../../attest/policy.ts';
import { CERT_VALIDITY_MS, makeCredentials, type TrustSetup, trustSetup } from '../../attest/trust-setup.ts';
import type { AttestationVerifier, TrustTier, VerifiedAttestation } from '../../attest/types.ts';
import { RootPolicy } from '../../chain/root-policy.ts';
import type { TonChain } from '../../chain/ton-chain.ts';
import type { TlsCredentials } from '../../net/tls.ts';
import { silentLogger } from '../../ops/log.ts';
import type { NodeRole } from '../../protocol/version.ts';

/** The key file `loadOrCreateNodeKey` keeps in a data dir. */
const KEY_FILE = 'identity.key';

/**
 * The node's identity key, without creating one: a check changes nothing on disk. `created: false` means
 * the daemon has not run yet (it makes the key on first start); a temporary key stands in for it.
 */
export function readNodeKey(dataDir: string): { key: NodeKey; exists: boolean; path: string } {
  const path = join(dataDir, KEY_FILE);
  if (!existsSync(path)) return { key: generateNodeKey(), exists: false, path };
  const key = createPrivateKey(readFileSync(path, 'utf8'));
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${path} is not an Ed25519 key`);
  return { key: nodeKeyFromPrivate(key), exists: true, path };
}

interface TrustConfig {
  trust: 'dev' | 'tdx';
  dataDir: string;
  pccsUrl?: string | undefined;
  collateralFile?: string | undefined;
  acceptTcbStatuses?: string[] | undefined;
  trustFromRoot: boolean;
  allowedProxyImages?: string[] | undefined;
  allowedWorkerImages?: string[] | undefined;
  allowedModels?: string[] | undefined;
  certValiditySeconds: number;
}

/**
 * The trust setup the daemon builds (`trustFor` in build-nodes.ts): the mode's provider and verifiers,
 * and its allow-lists from the root (read once here), the config, or none. Throws the mode's own error
 * (e.g. tdx without collateral).
 */
export async function daemonTrust(
  c: TrustConfig,
  root: { chain: TonChain; address: Address } | null,
): Promise<TrustSetup> {
  const setup = trustSetup(c.trust, {
    collateralCacheDir: join(c.dataDir, 'collateral'),
    ...(c.pccsUrl ? { pccsUrl: c.pccsUrl } : {}),
    ...(c.collateralFile ? { collateralFile: c.collateralFile } : {}),
    ...(c.acceptTcbStatuses ? { acceptTcbStatuses: c.acceptTcbStatuses } : {}),
  });
  const base = { ...setup, certValidityMs: c.certValiditySeconds * 1000 };
  if (c.trustFromRoot) {
    if (!root) throw new Error('trustFromRoot: needs a readable root contract');
    const policy = await new RootPolicy(root.chain.client, root.address, silentLogger).start();
    policy.stop();
    return { ...base, policy };
  }
  if (c.allowedProxyImages || c.allowedWorkerImages || c.allowedModels) {
    return { ...base, policy: StaticPolicy.fromConfig(c) };
  }
  return base;
}

export interface OwnAttestation {
  kind: string;
  tier: TrustTier;
  /** What a peer reads from this node's quote: the hex SHA-256 of its measured image. */
  imageHash: string;
  /** The models its certificate names (a worker's model identities). */
  models: string[];
  /** The TLS credentials the daemon would present (fresh certificate, same key). */
  credentials: TlsCredentials;
  /** Its own quote did not pass the verifiers of its trust mode (what peers run), and why. */
  verifyError: string | null;
}

/**
 * Makes the node's certificate with the daemon's own code (`makeCredentials`) and reads it back as a peer
 * would (`verifyPeerCertificate` with the mode's verifiers): the image hash and models peers will see.
 * Throws if no quote can be made here (a tdx node outside a TDX guest).
 */
export async function ownAttestation(
  key: NodeKey,
  role: NodeRole,
  setup: TrustSetup,
  models?: string[],
): Promise<OwnAttestation> {
  const { cert, credentials } = await makeCredentials(
    key,
    role,
    setup.provider,
    models,
    setup.certValidityMs ?? CERT_VALIDITY_MS,
  );
  // The claimed attestation, as soon as the verifier has parsed the quote (before collateral checks).
  let claimed: VerifiedAttestation | null = null;
  const capturing = new Map<string, AttestationVerifier>();
  for (const [kind, v] of setup.verifiers) {
    capturing.set(kind, {
      kind: v.kind,
      verify: (quote, reportData, ctx = {}) =>
        v.verify(quote, reportData, {
          ...ctx,
          precheck: (a) => {
            claimed = a;
            ctx.precheck?.(a);
          },
        }),
    });
  }
  const base = { models: cert.claims.models ?? [], credentials };
  try {
    const peer = await verifyPeerCertificate(cert.certDer, { verifiers: capturing });
    return { ...base, ...peer.attestation, verifyError: null };
  } catch (err) {
    const c = claimed as VerifiedAttestation | null;
    if (!c) throw err;
    return {
      ...base,
      kind: c.kind,
      tier: c.tier,
      imageHash: c.imageHash,
      verifyError: (err as Error).message,
    };
  }
}

export interface ModelInfo {
  identity: string;
  name: string;
  revision: string | null;
  /** Content hash (hex), null for a bare name. */
  hash: string | null;
  /** Not a valid identity (`name@revision:<64 hex>`), and why. */
  error: string | null;
}

export function modelInfo(identity: string): ModelInfo {
  try {
    const m = parseModelIdentity(identity);
    return { identity, name: m.name, revision: m.revision, hash: m.hash, error: null };
  } catch (err) {
    return {
      identity,
      name: identity.split('@')[0]!,
      revision: null,
      hash: null,
      error: (err as Error).message,
    };
  }
}

export function parseRoot(text: string): Address | null {
  try {
    return Address.parse(text);
  } catch {
    return null;
  }
}
