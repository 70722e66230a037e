/**
 * Cost of end-to-end encryption (src/protocol/sealing): µs per request setup (the client's HPKE seal and the
 * worker's open, which also derive the reply keys) and µs per reply part (seal + open, node:crypto AEAD)
 * for a 40-byte stream part and a 4 KiB part. Prints a table and a JSON line; `--quick` runs fewer rounds.
 *
 * The HPKE runs on node:crypto's synchronous primitives (sync-suite.ts), not WebCrypto. What is left of a
 * request's setup is mostly primitives: three X25519 scalar multiplications (the ephemeral key and one DH
 * a side), two X25519 key imports, about twenty HMACs and two AES-GCM passes, plus the library's own code
 * and the garbage those leave. Wall time: other work on the machine shows up in it directly.
 */
import { cpus } from 'node:os';
import { generateE2EKey } from '../src/attest/e2e-key.ts';
import { openRequest, requestAad, sealRequest } from '../src/protocol/sealing/index.ts';

const QUICK = process.argv.includes('--quick');
const REQUESTS = QUICK ? 200 : 1000;
const PARTS = QUICK ? 20_000 : 100_000;
const MAX = 16 * 1024 * 1024;

const key = await generateE2EKey();
const aad = requestAad({ requestId: 'bench-1', model: 'qwen3-8b', workerCertHash: Buffer.alloc(32, 1) });

async function exchange(body: Buffer) {
  const client = await sealRequest({
    recipientPublicKey: key.publicKeyHex,
    plaintext: body,
    aad,
    maxReplyPartBytes: MAX,
  });
  const worker = await openRequest({ key: key.keyPair, sealed: client.sealed, aad, maxBytes: MAX });
  return { opener: client.reply, sealer: worker.reply };
}

/** µs per request: seal and open, one after the other (latency, as a request sees it). */
async function requestSetupUs(bodyBytes: number, n: number): Promise<number> {
  const body = Buffer.alloc(bodyBytes, 0x61);
  for (let i = 0; i < Math.min(50, n); i++) await exchange(body); // warm-up
  const t = performance.now();
  for (let i = 0; i < n; i++) await exchange(body);
  return ((performance.now() - t) * 1000) / n;
}

/** µs per part to seal, and to open, `n` parts of `bytes` each in one reply. */
async function partUs(bytes: number, n: number): Promise<{ seal: number; open: number }> {
  const part = Buffer.alloc(bytes, 0x61);
  const warm = await exchange(part);
  for (let i = 0; i < 1000; i++) warm.opener.open(warm.sealer.seal(part));
  const { sealer, opener } = await exchange(part);
  const sealed: Buffer[] = new Array(n);
  let t = performance.now();
  for (let i = 0; i < n; i++) sealed[i] = sealer.seal(part, i === n - 1);
  const seal = ((performance.now() - t) * 1000) / n;
  t = performance.now();
  for (let i = 0; i < n; i++) opener.open(sealed[i]!);
  const open = ((performance.now() - t) * 1000) / n;
  if (!opener.finished) throw new Error('reply did not finish');
  return { seal, open };
}

const setup1k = await requestSetupUs(1024, REQUESTS);
const setup1m = await requestSetupUs(1024 * 1024, Math.max(20, REQUESTS / 50));
const small = await partUs(40, PARTS);
const large = await partUs(4096, PARTS / 5);

const f = (us: number) => `${us.toFixed(1)} µs`;
console.log(
  `E2E sealing on ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), Node ${process.version}`,
);
console.log('| measure | µs |');
console.log('|---|---|');
console.log(`| request setup, 1 KiB body (seal + open, HPKE) | ${f(setup1k)} |`);
console.log(`| request setup, 1 MiB body (seal + open, HPKE) | ${f(setup1m)} |`);
console.log(
  `| reply part, 40 B (seal + open) | ${f(small.seal + small.open)} (${f(small.seal)} + ${f(small.open)}) |`,
);
console.log(
  `| reply part, 4 KiB (seal + open) | ${f(large.seal + large.open)} (${f(large.seal)} + ${f(large.open)}) |`,
);
console.log(
  JSON.stringify({
    requestSetup1KiBUs: setup1k,
    requestSetup1MiBUs: setup1m,
    part40B: small,
    part4KiB: large,
  }),
);
