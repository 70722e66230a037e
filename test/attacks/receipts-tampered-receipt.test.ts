import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cocoon } from '../cli/run-cocoon.ts';
import { clientWithLog, readLines, rechain, writeLines } from '../protocol/receipt-fixtures.ts';

/**
 * Attack: whoever can write the client's data dir (malware, a user wanting a refund, a proxy operator
 * arguing over a bill) edits a receipt in the log — here fewer completion tokens — to claim the worker
 * served less than it signed for. The receipt's content is signed by the worker's attested key, so any
 * edit shows as a signature that does not verify; the entry hash catches a naive edit as well, but not one
 * whose author re-hashed the chain (it has no key): the signature is what protects the content.
 */
describe('attack: a receipt edited in the log', { concurrency: true }, () => {
  const editUsage = (dir: string, seq: number) => {
    const lines = readLines(dir);
    const line = lines[seq - 1]!;
    line.receipt.usage.completionTokens = 1;
    return lines;
  };

  test('edited in place: its signature and its entry hash do not verify', async () => {
    const { dataDir, dir, workers } = await clientWithLog(5);
    writeLines(dir, editUsage(dir, 3));
    const r = await cocoon('receipts', 'verify', '--data-dir', dataDir);
    assert.equal(r.code, 1, r.stdout);
    const worker = workers[1]!.key.publicKeyHex.slice(0, 8);
    assert.match(
      r.stdout,
      new RegExp(`^entry 3 \\(req-3\\): signature does not verify with worker key ${worker}…$`, 'm'),
    );
    assert.match(r.stdout, /^entry 3 \(req-3\): entry hash [0-9a-f]{8}… does not match its contents/m);
    assert.match(
      r.stdout,
      /^5 receipts, chain broken \(1 problem\), 1 signature does not verify, all attestations verify$/m,
    );
  });

  test('edited and the chain re-hashed around it: the signature still does not verify', async () => {
    const { dataDir, dir } = await clientWithLog(5);
    writeLines(dir, rechain(editUsage(dir, 3)));
    const r = await cocoon('receipts', 'verify', '--data-dir', dataDir, '--json');
    assert.equal(r.code, 1, r.stdout);
    const report = JSON.parse(r.stdout);
    assert.deepEqual(
      report.problems.map((p: { seq: number; requestId: string; code: string }) => [
        p.seq,
        p.requestId,
        p.code,
      ]),
      [[3, 'req-3', 'bad_signature']],
    );
  });

  test('verifying that one receipt by id names the same problem', async () => {
    const { dataDir, dir } = await clientWithLog(5);
    writeLines(dir, rechain(editUsage(dir, 3)));
    const r = await cocoon('receipts', 'verify', '--data-dir', dataDir, 'req-3');
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /^entry 3 \(req-3\): signature does not verify/m);
    assert.match(r.stdout, /^receipt req-3 \(entry 3\): does NOT verify$/m);
  });
});
