import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  webcrypto,
} from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { E2E_SUITE, type E2ESuiteId } from '../protocol/sealing/suite.ts';

/**
 * A worker's long-lived X25519 key for end-to-end encryption: clients seal requests to its public key, which
 * the worker's certificate claims carry (`claims.e2e`), so the quote binds it to the attested image.
 */
export interface E2EKey {
  suite: E2ESuiteId;
  /** Raw 32-byte X25519 public key, hex: what `claims.e2e.publicKey` carries. */
  publicKeyHex: string;
  /** The pair as the HPKE library takes it; the private half cannot be exported from WebCrypto. */
  keyPair: webcrypto.CryptoKeyPair;
}

const KEY_FILE = 'e2e.key';
const X25519 = { name: 'X25519' } as const;

async function e2eKeyFromPrivate(privateKey: KeyObject): Promise<E2EKey> {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'X25519' || !jwk.x) throw new Error('not an X25519 key');
  const raw = Buffer.from(jwk.x, 'base64url');
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  return {
    suite: E2E_SUITE,
    publicKeyHex: raw.toString('hex'),
    keyPair: {
      privateKey: await webcrypto.subtle.importKey('pkcs8', pkcs8, X25519, false, ['deriveBits']),
      publicKey: await webcrypto.subtle.importKey('raw', raw, X25519, true, []),
    },
  };
}

/** A fresh key that lives only in memory (tests, and nodes without a data directory). */
export function generateE2EKey(): Promise<E2EKey> {
  return e2eKeyFromPrivate(generateKeyPairSync('x25519').privateKey);
}

/** Loads the E2E key from `dataDir`, creating it (mode 0600, written atomically) on first start. */
export async function loadOrCreateE2EKey(dataDir: string): Promise<E2EKey> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, KEY_FILE);
  let pem: string | undefined;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (pem !== undefined) {
    // A corrupt key file must stop the worker, not be replaced: its public key is in live certificates.
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch {
      throw new Error(`${path} is not a PEM private key; remove it to make a new E2E key`);
    }
    if (key.asymmetricKeyType !== 'x25519') {
      throw new Error(
        `${path} holds a key of type ${key.asymmetricKeyType ?? 'unknown'}, not an X25519 E2E key`,
      );
    }
    return e2eKeyFromPrivate(key);
  }
  const { privateKey } = generateKeyPairSync('x25519');
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  await rename(tmp, path);
  return e2eKeyFromPrivate(privateKey);
}
