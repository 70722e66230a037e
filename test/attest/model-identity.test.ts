import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { modelDirectoryHash, parseModelIdentity } from '../../src/attest/model-identity.ts';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '../../bin/cocoon.mjs');

describe('model identity', () => {
  const root = mkdtempSync(join(tmpdir(), 'cocoon-model-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const tree = (files: Record<string, string>, dirs: string[] = []) => {
    const d = join(root, `t${++n}`);
    mkdirSync(d);
    for (const x of dirs) mkdirSync(join(d, x), { recursive: true });
    for (const [p, c] of Object.entries(files)) {
      mkdirSync(join(d, p, '..'), { recursive: true });
      writeFileSync(join(d, p), c);
    }
    return d;
  };

  test('the hash of a fixed tiny tree is pinned (it fixes the construction)', async () => {
    const r = await modelDirectoryHash(tree({ 'config.json': '{}', 'weights/a.bin': 'abc' }));
    assert.equal(r.files, 2);
    assert.equal(r.bytes, 5n);
    assert.equal(r.hash, PINNED);
  });

  test('independent of creation order and empty dirs; changes with any byte, name or file', async () => {
    const base = (await modelDirectoryHash(tree({ a: '1', 'b/c': '2' }))).hash;
    assert.equal((await modelDirectoryHash(tree({ 'b/c': '2', a: '1' }, ['empty/dir']))).hash, base);
    assert.notEqual((await modelDirectoryHash(tree({ a: '1', 'b/c': '3' }))).hash, base);
    assert.notEqual((await modelDirectoryHash(tree({ a: '1', 'b/d': '2' }))).hash, base);
    assert.notEqual((await modelDirectoryHash(tree({ a: '1', 'b/c': '2', e: '' }))).hash, base);
  });

  test('symlinks are refused; a missing dir is a clear error', async () => {
    const d = tree({ a: '1' });
    symlinkSync('/etc/hostname', join(d, 'link'));
    await assert.rejects(modelDirectoryHash(d), /symlinks are not followed/);
    await assert.rejects(modelDirectoryHash(join(root, 'nope')), /no such directory/);
  });

  test('identities parse; malformed ones are refused', () => {
    const h = 'a'.repeat(64);
    assert.deepEqual(parseModelIdentity(`qwen@r1:${h}`), { name: 'qwen', revision: 'r1', hash: h });
    assert.deepEqual(parseModelIdentity('qwen'), { name: 'qwen', revision: null, hash: null });
    assert.throws(() => parseModelIdentity('qwen@r1:xyz'), /not a model identity/);
  });

  test('`cocoon model-hash` prints the same hash and the identity', async () => {
    const d = tree({ 'config.json': '{}', 'weights/a.bin': 'abc' });
    const { stdout } = await run(process.execPath, [
      bin,
      'model-hash',
      d,
      '--name',
      'tiny',
      '--revision',
      'v1',
    ]);
    assert.match(stdout, new RegExp(`^${PINNED}\\nidentity  tiny@v1:${PINNED}\\n`));
  });
});

const PINNED = 'fd245125aae8441abd9eb1d30a597be0a66229a213a47af7688e3373a1eaec14';
