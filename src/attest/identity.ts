import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A node's long-lived Ed25519 identity, kept in its data directory. */
export interface NodeKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** PKCS#8 PEM, for node:tls. */
  privateKeyPem: string;
  /** Raw 32-byte public key, hex. */
  publicKeyHex: string;
}

const KEY_FILE = 'identity.key';

export function rawPublicKeyHex(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || !jwk.x) throw new Error('not an Ed25519 public key');
  return Buffer.from(jwk.x, 'base64url').toString('hex');
}

/** The inverse of `rawPublicKeyHex`: a peer's Ed25519 key from its 32 raw bytes in hex. */
export function rawPublicKeyFromHex(hex: string): KeyObject {
  const x = Buffer.from(hex, 'hex').toString('base64url');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
}

export function nodeKeyFromPrivate(privateKey: KeyObject): NodeKey {
  const publicKey = createPublicKey(privateKey);
  return {
    privateKey,
    publicKey,
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKeyHex: rawPublicKeyHex(publicKey),
  };
}

export function generateNodeKey(): NodeKey {
  return nodeKeyFromPrivate(generateKeyPairSync('ed25519').privateKey);
}

/** Loads the node key from `dataDir`, creating it (mode 0600, written atomically) on first start. */
export async function loadOrCreateNodeKey(dataDir: string): Promise<NodeKey> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, KEY_FILE);
  try {
    const key = createPrivateKey(await readFile(path, 'utf8'));
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${path} is not an Ed25519 key`);
    return nodeKeyFromPrivate(key);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = generateNodeKey();
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, key.privateKeyPem, { mode: 0o600 });
  await rename(tmp, path);
  return key;
}
