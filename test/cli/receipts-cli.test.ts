import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { describe, test } from 'node:test';
import { ReceiptLog } from '../../src/client/receipt-log.ts';
import type { ReceiptFields } from '../../src/protocol/receipt.ts';
import { certPath, receiptsDir, verifyLog } from '../../src/protocol/receipt-audit.ts';
import {
  clientWithLog,
  dev,
  devWorker,
  MODEL,
  readLines,
  receipt,
  tempDir,
} from '../protocol/receipt-fixtures.ts';
import { cocoon, failed, ok } from './run-cocoon.ts';

const verify = (dataDir: string, ...args: string[]) =>
  cocoon('receipts', 'verify', '--data-dir', dataDir, ...args);

/** A client data dir holding one receipt from a worker with a real dev certificate, signed with `over`. */
async function oneReceipt(over: Partial<ReceiptFields>, models: string[] | null = [MODEL]) {
  const w = await devWorker(models);
  const dataDir = tempDir();
  const log = await ReceiptLog.open(receiptsDir(dataDir));
  await log.append(receipt(w, 'req-1', over), w.certDer);
  await log.close();
  return { dataDir, w };
}

describe('cocoon receipts verify', { concurrency: true }, () => {
  test('a good log of real dev-mode receipts verifies: exit 0 and the summary', async () => {
    const { dataDir, dir } = await clientWithLog(12);
    const stdout = ok(await verify(dataDir));
    assert.match(stdout, /^12 receipts, chain intact, all signatures and attestations verify$/m);
    assert.match(stdout, new RegExp(`^head ${readLines(dir)[11]!.entry} `, 'm'));
    assert.match(ok(await verify(dataDir, '--all')), /^12 receipts, chain intact/m);
  });

  test('--json gives the same verdict for machines', async () => {
    const { dataDir, dir } = await clientWithLog(3);
    const r = JSON.parse(ok(await verify(dataDir, '--json')));
    assert.deepEqual(r, { ok: true, receipts: 3, head: readLines(dir)[2]!.entry, torn: null, problems: [] });
  });

  test('one receipt by its id: exit 0 and what it says', async () => {
    const { dataDir, workers } = await clientWithLog(4);
    const stdout = ok(await verify(dataDir, 'req-3'));
    assert.match(stdout, /^receipt req-3 \(entry 3\): chain, signature and attestation verify$/m);
    assert.match(stdout, new RegExp(`worker ${workers[1]!.key.publicKeyHex}, dev`));
    const j = JSON.parse(ok(await verify(dataDir, 'req-3', '--json')));
    assert.equal(j.ok, true);
    assert.equal(j.entry.receipt.requestId, 'req-3');
  });

  test('an id not in the log: exit 1, said so', async () => {
    const { dataDir } = await clientWithLog(2);
    const r = await verify(dataDir, 'req-404');
    assert.equal(r.code, 1);
    assert.match(r.stdout, /no receipt with id req-404/);
  });

  test('no log in the data dir: exit 1, one line', async () => {
    assert.match(failed(await verify(tempDir()), 1), /no receipt log at .*receipts\/log\.jsonl/);
  });

  test('--all with an id, or tdx without collateral, is a usage error: exit 2', async () => {
    const { dataDir } = await clientWithLog(1);
    assert.match(failed(await verify(dataDir, '--all', 'req-1'), 2), /--all or a receipt id, not both/);
    assert.match(failed(await verify(dataDir, '--trust', 'tdx'), 2), /pccsUrl or collateralFile/);
  });

  test('under --trust tdx a dev attestation does not verify', async () => {
    const { dataDir } = await clientWithLog(1);
    const r = await verify(dataDir, '--trust', 'tdx', '--collateral-file', '/nonexistent/collateral.json');
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /entry 1 \(req-1\): certificate [0-9a-f]{8}… is refused .*attestation kind 'dev' is not accepted/,
    );
  });
});

/** What the audit finds (src/protocol/receipt-audit.ts), in process: the CLI above prints the same lines. */
describe('receipts the attestation does not back', { concurrency: true }, () => {
  const problemsOf = async (dataDir: string) =>
    (await verifyLog(receiptsDir(dataDir), { verifiers: dev.verifiers })).problems.map((p) => p.message);
  const expectProblem = async (dataDir: string, pattern: RegExp) => {
    const problems = await problemsOf(dataDir);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, pattern);
  };

  test('a model the certificate does not attest', async () => {
    const { dataDir } = await oneReceipt({ model: 'other@v1' });
    await expectProblem(dataDir, /entry 1 \(req-1\): model 'other@v1' is not among the certificate's models/);
  });

  test('a tier above the attested one', async () => {
    const { dataDir } = await oneReceipt({ tier: 'tee-cpu' });
    await expectProblem(dataDir, /entry 1 \(req-1\): receipt says tier tee-cpu, the attestation proves dev/);
  });

  test('an image other than the measured one', async () => {
    const { dataDir } = await oneReceipt({ image: 'ab'.repeat(32) });
    await expectProblem(dataDir, /entry 1 \(req-1\): receipt says image abababab…, the attestation measures/);
  });

  test('a time outside the certificate validity', async () => {
    const { dataDir } = await oneReceipt({ time: Date.now() + 48 * 3600_000 });
    await expectProblem(dataDir, /entry 1 \(req-1\): certificate [0-9a-f]{8}… is refused .*has expired/);
  });

  test('a certificate missing from the store', async () => {
    const { dataDir, w } = await oneReceipt({});
    rmSync(certPath(receiptsDir(dataDir), w.certHash));
    await expectProblem(dataDir, /entry 1 \(req-1\): certificate [0-9a-f]{8}… is not stored/);
  });

  test('a certificate without models accepts any model name', async () => {
    const { dataDir } = await oneReceipt({ model: 'anything' }, null);
    assert.deepEqual(await problemsOf(dataDir), []);
  });
});
