/**
 * Cost of receipts per request: the worker's signature, the client's check (signature and fields), and the
 * client's durable log append, one at a time (an fsync each) and 64 at once (group commit). `--quick` runs
 * fewer rounds. Prints a table and a JSON line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateNodeKey } from '../src/attest/identity.ts';
import { ReceiptLog } from '../src/client/receipt-log.ts';
import { type ReceiptFields, signReceipt, verifyReceiptSignature } from '../src/protocol/receipt.ts';

const QUICK = process.argv.includes('--quick');
const N = QUICK ? 2000 : 10_000;
const key = generateNodeKey();
const cert = Buffer.alloc(1200, 7);
const { createHash } = await import('node:crypto');
const certificate = createHash('sha256').update(cert).digest('hex');

const fields = (i: number): ReceiptFields => ({
  network: -239,
  proxyContract: null,
  proxy: '11'.repeat(32),
  seqno: String(i),
  requestId: `bench-${i}`,
  requestHash: '22'.repeat(32),
  replyHash: '33'.repeat(32),
  model: 'qwen3-8b',
  image: '44'.repeat(32),
  tier: 'dev',
  certificate,
  usage: { promptTokens: 100, cachedTokens: 0, completionTokens: 200, reasoningTokens: 0 },
  coefficient: 1000,
  cost: { prompt: '100000', completion: '200000', total: '300000' },
  time: Date.now(),
});

const time = (n: number, f: (i: number) => void) => {
  const t = performance.now();
  for (let i = 0; i < n; i++) f(i);
  return ((performance.now() - t) * 1000) / n;
};
const receipts = Array.from({ length: N }, (_, i) => signReceipt(fields(i), key));
const signUs = time(N, (i) => signReceipt(fields(i), key));
const verifyUs = time(N, (i) => {
  if (!verifyReceiptSignature(receipts[i]!, key.publicKeyHex)) throw new Error('bad signature');
});

const dir = mkdtempSync(join(tmpdir(), 'cocoon-bench-receipts-'));
try {
  const log = await ReceiptLog.open(dir);
  const serial = Math.min(N, QUICK ? 200 : 1000);
  let t = performance.now();
  for (let i = 0; i < serial; i++) await log.append(receipts[i]!, cert);
  const serialUs = ((performance.now() - t) * 1000) / serial;
  t = performance.now();
  for (let i = serial; i < N; i += 64) {
    await Promise.all(receipts.slice(i, i + 64).map((r) => log.append(r, cert)));
  }
  const groupUs = ((performance.now() - t) * 1000) / (N - serial);
  await log.close();
  console.log(
    `Receipts on ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), Node ${process.version}`,
  );
  console.log('| measure | µs per request |');
  console.log('|---|---|');
  console.log(`| worker signs (Ed25519 over the canonical bytes) | ${signUs.toFixed(1)} |`);
  console.log(`| client verifies the signature | ${verifyUs.toFixed(1)} |`);
  console.log(`| client log append, one at a time (one fsync each) | ${serialUs.toFixed(1)} |`);
  console.log(`| client log append, 64 at once (group commit) | ${groupUs.toFixed(1)} |`);
  console.log(JSON.stringify({ signUs, verifyUs, appendSerialUs: serialUs, appendGroupUs: groupUs }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
