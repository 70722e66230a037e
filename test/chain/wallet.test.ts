import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  createWalletFile,
  loadWalletFile,
  WalletFileError,
  walletFromMnemonic,
  writeFileAtomic,
} from '../../src/chain/wallet.ts';

describe('wallet files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-wallet-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a new wallet file is private, holds 24 words and loads back', async () => {
    const path = join(dir, 'a.json');
    const created = await createWalletFile(path);
    assert.equal(created.mnemonic.length, 24);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(await loadWalletFile(path), created.mnemonic);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.endsWith('.tmp')),
      [],
      'no temp files left behind',
    );
  });

  test('creating never overwrites an existing file', async () => {
    const path = join(dir, 'b.json');
    const first = await createWalletFile(path);
    await assert.rejects(createWalletFile(path), (err: unknown) => {
      return err instanceof WalletFileError && err.code === 'wallet_exists';
    });
    assert.deepEqual(await loadWalletFile(path), first.mnemonic, 'the original words are intact');
  });

  test('loading refuses files others can read, missing files and junk', async () => {
    const open = join(dir, 'c.json');
    await createWalletFile(open);
    chmodSync(open, 0o644);
    await assert.rejects(loadWalletFile(open), /chmod 600/);

    await assert.rejects(loadWalletFile(join(dir, 'missing.json')), /does not exist/);

    const junk = join(dir, 'junk.json');
    writeFileSync(junk, '{"kind":"cocoon-wallet","mnemonic":["a","b"]}', { mode: 0o600 });
    await assert.rejects(loadWalletFile(junk), /invalid TON mnemonic/);
    writeFileSync(junk, 'not json', { mode: 0o600 });
    await assert.rejects(loadWalletFile(junk), /not valid JSON/);
  });

  test('the wallet address depends on the network global id', async () => {
    const words = (await createWalletFile(join(dir, 'd.json'))).mnemonic;
    const main = await walletFromMnemonic(words, -239);
    const again = await walletFromMnemonic(words, -239);
    const testnet = await walletFromMnemonic(words, -3);
    assert.ok(main.address.equals(again.address));
    assert.ok(!main.address.equals(testnet.address));
    assert.ok(main.keyPair.publicKey.equals(testnet.keyPair.publicKey));
    await assert.rejects(walletFromMnemonic(['nope'], -239), /Invalid TON mnemonic/);
  });

  test('writeFileAtomic replaces content whole', async () => {
    const path = join(dir, 'e.txt');
    await writeFileAtomic(path, 'one');
    await writeFileAtomic(path, 'two');
    assert.equal(readFileSync(path, 'utf8'), 'two');
    await assert.rejects(writeFileAtomic(path, 'three', { overwrite: false }), { code: 'EEXIST' });
    assert.equal(readFileSync(path, 'utf8'), 'two');
  });
});
