import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { generateE2EKey, loadOrCreateE2EKey } from '../../src/attest/e2e-key.ts';
import { openRequest, requestAad, sealRequest } from '../../src/protocol/sealing/index.ts';

const dirs: string[] = [];
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-e2e-key-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const aad = requestAad({ requestId: 'r1', model: 'm', workerCertHash: Buffer.alloc(32, 7) });

describe('the worker’s E2E key file', () => {
  test('is created on first start with mode 0600, and nothing else is left in the directory', async () => {
    const dir = dataDir();
    const key = await loadOrCreateE2EKey(dir);
    assert.match(key.publicKeyHex, /^[0-9a-f]{64}$/);
    assert.equal(statSync(join(dir, 'e2e.key')).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ['e2e.key']);
  });

  test('is reloaded as the same key: a request sealed to the first load opens with the second', async () => {
    const dir = dataDir();
    const first = await loadOrCreateE2EKey(dir);
    const again = await loadOrCreateE2EKey(dir);
    assert.equal(again.publicKeyHex, first.publicKeyHex);
    const { sealed } = await sealRequest({
      recipientPublicKey: first.publicKeyHex,
      plaintext: Buffer.from('hello'),
      aad,
      maxReplyPartBytes: 1024,
    });
    const opened = await openRequest({ key: again.keyPair, sealed, aad, maxBytes: 4096 });
    assert.equal(opened.plaintext.toString(), 'hello');
  });

  test('a corrupt file is refused with a clear message, not replaced', async () => {
    const dir = dataDir();
    const path = join(dir, 'e2e.key');
    writeFileSync(path, 'not a key', { mode: 0o600 });
    await assert.rejects(loadOrCreateE2EKey(dir), /e2e\.key is not a PEM private key/);
    assert.equal(readFileSync(path, 'utf8'), 'not a key');
    writeFileSync(path, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }));
    await assert.rejects(
      loadOrCreateE2EKey(dir),
      /e2e\.key holds a key of type ed25519, not an X25519 E2E key/,
    );
  });

  test('generated keys differ, and the private half cannot be exported', async () => {
    const [a, b] = [await generateE2EKey(), await generateE2EKey()];
    assert.notEqual(a.publicKeyHex, b.publicKeyHex);
    assert.equal(a.keyPair.privateKey.extractable, false);
  });
});
