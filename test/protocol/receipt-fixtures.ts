import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Address } from '@ton/core';
import { verifyPeerCertificate } from '../../src/attest/certificate.ts';
import { generateNodeKey, type NodeKey } from '../../src/attest/identity.ts';
import { makeCredentials, trustSetup } from '../../src/attest/trust-setup.ts';
import { ReceiptLog } from '../../src/client/receipt-log.ts';
import { GLOBAL_ID } from '../../src/pay/signed-messages.ts';
import { type Receipt, type ReceiptFields, sha256Hex, signReceipt } from '../../src/protocol/receipt.ts';
import { entryHash, GENESIS, type LogLine, logPath, receiptsDir } from '../../src/protocol/receipt-audit.ts';

/** Real dev-mode workers and the receipts they sign, for the receipt, log, CLI and attack tests. */

export const dev = trustSetup('dev');
export const MODEL = 'tiny@v1:' + 'ab'.repeat(32);

export interface FakeWorker {
  key: NodeKey;
  certDer: Buffer;
  certHash: string;
  /** What its dev attestation measures. */
  image: string;
  seqno: bigint;
}

/** A worker with a real dev RA-TLS certificate (claims naming `models`, or none), as a worker daemon makes it. */
export async function devWorker(models: string[] | null = [MODEL]): Promise<FakeWorker> {
  const key = generateNodeKey();
  const { cert } = await makeCredentials(key, 'worker', dev.provider, models ?? undefined);
  const peer = await verifyPeerCertificate(cert.certDer, { verifiers: dev.verifiers });
  return {
    key,
    certDer: cert.certDer,
    certHash: sha256Hex(cert.certDer),
    image: peer.attestation.imageHash,
    seqno: 0n,
  };
}

export const PROXY_KEY = generateNodeKey().publicKeyHex;
export const PROXY_CONTRACT = new Address(0, Buffer.alloc(32, 1)).toString();

/** Fields of one honest receipt from `w` for request `requestId`. */
export function fields(w: FakeWorker, requestId: string, over: Partial<ReceiptFields> = {}): ReceiptFields {
  w.seqno++;
  return {
    network: GLOBAL_ID.mainnet,
    proxyContract: PROXY_CONTRACT,
    proxy: PROXY_KEY,
    seqno: w.seqno.toString(),
    requestId,
    requestHash: sha256Hex(Buffer.from(`request ${requestId}`)),
    replyHash: sha256Hex(Buffer.from(`reply ${requestId}`)),
    model: MODEL,
    image: w.image,
    tier: 'dev',
    certificate: w.certHash,
    usage: { promptTokens: 12, cachedTokens: 0, completionTokens: 30, reasoningTokens: 0 },
    coefficient: 1000,
    cost: { prompt: '1200', completion: '3000', total: '4200' },
    time: Date.now(),
    ...over,
  };
}

export function receipt(w: FakeWorker, requestId: string, over: Partial<ReceiptFields> = {}): Receipt {
  return signReceipt(fields(w, requestId, over), w.key);
}

const made: string[] = [];
process.once('exit', () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A temporary directory, removed when the test process exits. */
export function tempDir(prefix = 'cocoon-receipts-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

/**
 * A client data dir whose receipt log holds `n` honest receipts (`req-1` … `req-n`) from two workers.
 * Returns the data dir and the receipt dir.
 */
export async function clientWithLog(
  n: number,
): Promise<{ dataDir: string; dir: string; workers: FakeWorker[] }> {
  const dataDir = tempDir();
  const dir = receiptsDir(dataDir);
  const workers = [await devWorker(), await devWorker()];
  const log = await ReceiptLog.open(dir);
  for (let i = 1; i <= n; i++) {
    const w = workers[i % 2]!;
    await log.append(receipt(w, `req-${i}`), w.certDer);
  }
  await log.close();
  return { dataDir, dir, workers };
}

/** The log's lines as objects (as an attacker with the file would see them). */
export function readLines(dir: string): LogLine[] {
  return readFileSync(logPath(dir), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as LogLine);
}

export function writeLines(dir: string, lines: LogLine[]): void {
  writeFileSync(logPath(dir), lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
}

/** What anyone with write access can do: renumber and re-hash the whole chain (it has no key). */
export function rechain(lines: LogLine[]): LogLine[] {
  let prev = GENESIS;
  return lines.map((l, i) => {
    const seq = i + 1;
    const entry = entryHash(prev, seq, l.receipt);
    const line = { seq, prev, receipt: l.receipt, entry };
    prev = entry;
    return line;
  });
}
