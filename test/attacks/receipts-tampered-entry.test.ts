import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { logPath } from '../../src/protocol/receipt-audit.ts';
import { cocoon } from '../cli/run-cocoon.ts';
import { clientWithLog, readLines, rechain, writeLines } from '../protocol/receipt-fixtures.ts';

/**
 * Attack: the chain itself is edited — an entry's hash or its `prev` link changed (to splice logs, or to
 * hide an edit elsewhere), or an honest receipt copied in again to count it twice. Each entry is judged
 * against the one before it, so an edited hash shows on its own line and on the next; a copied receipt
 * shows even in a re-hashed chain, because a worker signs each seqno once.
 */
describe('attack: the chain edited', { concurrency: true }, () => {
  const verify = (dataDir: string) => cocoon('receipts', 'verify', '--data-dir', dataDir);

  test("an entry's hash edited: that entry does not hash to it, and the next one's prev does not link", async () => {
    const { dataDir, dir } = await clientWithLog(5);
    const lines = readLines(dir);
    lines[1]!.entry = 'ab'.repeat(32);
    writeLines(dir, lines);
    const r = await verify(dataDir);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /^entry 2 \(req-2\): entry hash abababab… does not match its contents/m);
    assert.match(
      r.stdout,
      /^entry 3 \(req-3\): prev [0-9a-f]{8}… is not the previous entry's hash abababab…$/m,
    );
    assert.match(r.stdout, /^5 receipts, chain broken \(2 problems\), all signatures verify/m);
  });

  test("an entry's prev edited: it links to nothing and no longer hashes to its entry", async () => {
    const { dataDir, dir } = await clientWithLog(5);
    const lines = readLines(dir);
    lines[3]!.prev = 'cd'.repeat(32);
    writeLines(dir, lines);
    const r = await verify(dataDir);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /^entry 4 \(req-4\): prev cdcdcdcd… is not the previous entry's hash/m);
    assert.match(r.stdout, /^entry 4 \(req-4\): entry hash [0-9a-f]{8}… does not match its contents/m);
  });

  test('a receipt copied in again, the chain re-hashed: its worker seqno repeats', async () => {
    const { dataDir, dir } = await clientWithLog(4);
    const lines = readLines(dir);
    writeLines(dir, rechain([...lines, lines[1]!]));
    const r = await verify(dataDir);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /^entry 5 \(req-2\): worker [0-9a-f]{8}… seqno 1 already in entry 2$/m);
  });

  test('a line that is not JSON: named by its line number', async () => {
    const { dataDir, dir } = await clientWithLog(3);
    const lines = readLines(dir);
    writeFileSync(
      logPath(dir),
      lines.map((l, i) => (i === 1 ? 'garbage\n' : `${JSON.stringify(l)}\n`)).join(''),
    );
    const r = await verify(dataDir);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /^line 2: not valid JSON$/m);
  });
});
