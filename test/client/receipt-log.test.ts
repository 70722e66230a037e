import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { ReceiptLog, type ReceiptLogError } from '../../src/client/receipt-log.ts';
import { CERTS_DIR, GENESIS, logPath, verifyLog } from '../../src/protocol/receipt-audit.ts';
import {
  dev,
  devWorker,
  type FakeWorker,
  readLines,
  receipt,
  tempDir,
} from '../protocol/receipt-fixtures.ts';

let w: FakeWorker;
before(async () => {
  w = await devWorker();
});

const clean = async (dir: string) => {
  const report = await verifyLog(dir, { verifiers: dev.verifiers });
  assert.deepEqual(report.problems, []);
  return report;
};

describe('receipt log', () => {
  test('appends chain from genesis, and get finds each receipt by its request id', async () => {
    const dir = tempDir();
    const log = await ReceiptLog.open(dir);
    const a = receipt(w, 'req-a');
    const b = receipt(w, 'req-b');
    const ra = await log.append(a, w.certDer);
    const rb = await log.append(b, w.certDer);
    assert.equal(ra.seq, 1);
    assert.equal(rb.seq, 2);
    const lines = readLines(dir);
    assert.equal(lines[0]!.prev, GENESIS);
    assert.equal(lines[1]!.prev, ra.entry);
    assert.equal(lines[1]!.entry, rb.entry);
    assert.deepEqual((await log.get('req-a'))?.receipt, a);
    assert.deepEqual((await log.get('req-b'))?.receipt, b);
    assert.equal(await log.get('req-none'), null);
    await log.close();
    await clean(dir);
  });

  test('stores each certificate once, by its SHA-256', async () => {
    const dir = tempDir();
    const log = await ReceiptLog.open(dir);
    const other = await devWorker();
    for (let i = 0; i < 3; i++) await log.append(receipt(w, `req-${i}`), w.certDer);
    await log.append(receipt(other, 'req-other'), other.certDer);
    await log.close();
    assert.deepEqual(
      readdirSync(join(dir, CERTS_DIR)).sort(),
      [`${w.certHash}.der`, `${other.certHash}.der`].sort(),
    );
    assert.ok(readFileSync(join(dir, CERTS_DIR, `${w.certHash}.der`)).equals(w.certDer));
    assert.equal(log.stats.certificates, 2);
  });

  test('refuses a receipt that names another certificate than the one given', async () => {
    const log = await ReceiptLog.open(tempDir());
    const other = await devWorker();
    await assert.rejects(log.append(receipt(w, 'req-x'), other.certDer), (e: ReceiptLogError) => {
      assert.equal(e.code, 'certificate_mismatch');
      return true;
    });
    assert.equal(log.length, 0);
    await log.close();
  });

  test('reopened, it continues the chain where it ended', async () => {
    const dir = tempDir();
    let log = await ReceiptLog.open(dir);
    for (let i = 1; i <= 3; i++) await log.append(receipt(w, `req-${i}`), w.certDer);
    await log.close();
    log = await ReceiptLog.open(dir);
    assert.equal(log.torn, null);
    assert.equal(log.length, 3);
    const r4 = await log.append(receipt(w, 'req-4'), w.certDer);
    assert.equal(r4.seq, 4);
    assert.equal(readLines(dir)[3]!.prev, readLines(dir)[2]!.entry);
    // The index starts empty after a reopen: get falls back to a scan.
    assert.equal((await log.get('req-2'))?.seq, 2);
    const seqs: number[] = [];
    for await (const e of log.entries()) seqs.push(e.seq);
    assert.deepEqual(seqs, [1, 2, 3, 4]);
    await log.close();
    assert.equal((await clean(dir)).entries, 4);
  });

  test('get finds entries beyond its in-memory index by a scan', async () => {
    const log = await ReceiptLog.open(tempDir(), { indexLimit: 2 });
    for (let i = 1; i <= 5; i++) await log.append(receipt(w, `req-${i}`), w.certDer);
    for (let i = 1; i <= 5; i++) assert.equal((await log.get(`req-${i}`))?.seq, i);
    await log.close();
  });

  test('appends made together share one write and one fsync (group commit)', async () => {
    const dir = tempDir();
    const log = await ReceiptLog.open(dir);
    const n = 50;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => log.append(receipt(w, `req-${i}`), w.certDer)),
    );
    assert.deepEqual(
      results.map((r) => r.seq),
      Array.from({ length: n }, (_, i) => i + 1),
    );
    assert.equal(log.stats.appends, n);
    assert.equal(log.stats.writes, 1);
    assert.equal(log.stats.syncs, 1);
    await log.close();
    assert.equal((await clean(dir)).entries, n);
  });

  test('appends awaited one after another each complete (none is left waiting for a flush)', async () => {
    const log = await ReceiptLog.open(tempDir());
    for (let i = 1; i <= 5; i++) assert.equal((await log.append(receipt(w, `req-${i}`), w.certDer)).seq, i);
    assert.equal(log.stats.syncs, 5);
    await log.close();
  });

  test('appends made while a flush is on disk join the next batch', async () => {
    const log = await ReceiptLog.open(tempDir());
    const first = log.append(receipt(w, 'req-0'), w.certDer);
    // The first batch starts on the next turn; these arrive while it is being written.
    await new Promise((r) => setImmediate(r));
    const rest = Array.from({ length: 20 }, (_, i) => log.append(receipt(w, `req-${i + 1}`), w.certDer));
    await Promise.all([first, ...rest]);
    assert.ok(
      log.stats.syncs < log.stats.appends,
      `${log.stats.syncs} fsyncs for ${log.stats.appends} appends`,
    );
    await log.close();
  });

  test('a torn last line is cut and reported, and the chain continues after the last complete line', async () => {
    const dir = tempDir();
    let log = await ReceiptLog.open(dir);
    for (let i = 1; i <= 2; i++) await log.append(receipt(w, `req-${i}`), w.certDer);
    await log.close();
    const whole = statSync(logPath(dir)).size;
    const torn = '{"seq":3,"prev":"ab12';
    appendFileSync(logPath(dir), torn);
    log = await ReceiptLog.open(dir);
    assert.deepEqual(log.torn, { offset: whole, bytes: torn.length });
    assert.equal(statSync(logPath(dir)).size, whole);
    assert.equal((await log.append(receipt(w, 'req-3'), w.certDer)).seq, 3);
    await log.close();
    assert.equal((await clean(dir)).entries, 3);
  });

  test('a log whose only line is torn starts again from genesis', async () => {
    const dir = tempDir();
    await (await ReceiptLog.open(dir)).close();
    writeFileSync(logPath(dir), '{"seq":1,"pr');
    const log = await ReceiptLog.open(dir);
    assert.equal(log.torn?.offset, 0);
    const r = await log.append(receipt(w, 'req-1'), w.certDer);
    assert.equal(r.seq, 1);
    assert.equal(readLines(dir)[0]!.prev, GENESIS);
    await log.close();
  });

  test('a complete last line that is not a valid entry is refused, not chained onto', async () => {
    const dir = tempDir();
    const log = await ReceiptLog.open(dir);
    await log.append(receipt(w, 'req-1'), w.certDer);
    await log.close();
    const [line] = readLines(dir);
    writeFileSync(logPath(dir), `${JSON.stringify({ ...line, entry: 'ab'.repeat(32) })}\n`);
    await assert.rejects(ReceiptLog.open(dir), (e: ReceiptLogError) => {
      assert.equal(e.code, 'corrupt');
      assert.match(e.message, /does not hash to its entry/);
      return true;
    });
  });

  test('a closed log refuses appends', async () => {
    const log = await ReceiptLog.open(tempDir());
    await log.close();
    await assert.rejects(
      log.append(receipt(w, 'req-1'), w.certDer),
      (e: ReceiptLogError) => e.code === 'closed',
    );
  });
});
