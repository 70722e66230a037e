import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cocoon } from '../cli/run-cocoon.ts';
import { clientWithLog, readLines, writeLines } from '../protocol/receipt-fixtures.ts';

/**
 * Attack: a receipt is removed from the log (to hide a request, or a bill someone wants to deny). A line
 * dropped from the middle leaves a gap in `seq` and a `prev` that links to nothing.
 *
 * What the log alone cannot show: dropping the newest lines. What remains is a valid chain, shorter; and
 * the chain has no key, so whoever can write the file can also drop a middle line and re-hash everything
 * after it. Both are detected only against a head anchored elsewhere (the `head` the verifier prints,
 * kept off this machine or sent to someone): the last test shows the verdict stays clean while the head
 * moves.
 */
describe('attack: an entry dropped from the log', { concurrency: true }, () => {
  const verify = (dataDir: string, ...args: string[]) =>
    cocoon('receipts', 'verify', '--data-dir', dataDir, ...args);

  test('a middle line removed: the gap and the broken link are named', async () => {
    const { dataDir, dir } = await clientWithLog(5);
    const lines = readLines(dir);
    writeLines(dir, [...lines.slice(0, 2), ...lines.slice(3)]);
    const r = await verify(dataDir);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /^entry 4 \(req-4\): seq 4 follows 2: entries 3\.\.3 are missing$/m);
    assert.match(r.stdout, /^entry 4 \(req-4\): prev [0-9a-f]{8}… is not the previous entry's hash/m);
    assert.match(
      r.stdout,
      /^4 receipts, chain broken \(2 problems\), all signatures verify, all attestations verify$/m,
    );
  });

  test('the first line removed: the log does not start at 1 from genesis', async () => {
    const { dataDir, dir } = await clientWithLog(3);
    writeLines(dir, readLines(dir).slice(1));
    const r = await verify(dataDir, '--json');
    assert.equal(r.code, 1, r.stdout);
    const codes = JSON.parse(r.stdout).problems.map(
      (p: { seq: number; code: string }) => `${p.seq}:${p.code}`,
    );
    assert.deepEqual(codes, ['2:seq_gap', '2:prev_mismatch']);
  });

  test('the newest line removed: not detectable from the log alone, only by its anchored head', async () => {
    const { dataDir, dir } = await clientWithLog(5);
    const anchored = JSON.parse((await verify(dataDir, '--json')).stdout).head;
    writeLines(dir, readLines(dir).slice(0, 4));
    const r = await verify(dataDir, '--json');
    assert.equal(r.code, 0, r.stdout);
    const report = JSON.parse(r.stdout);
    assert.equal(report.receipts, 4);
    assert.notEqual(report.head, anchored);
  });
});
