/**
 * Benchmark of the payment path, side by side in one run:
 * (1) CPU per request of signing (client) and verifying (proxy) a cumulative authorisation, one bill per
 *     signature and 32 bills per signature, and the durable ledger write (fsync'd vs process-safe);
 * (2) requests through the whole local network with and without payments (latency added by paying);
 * (3) on-chain operations and their fees per 1,000 requests with settlement thresholds.
 * Results go to bench/results/payments.json and the README table between the bench:payments markers.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Address, toNano } from '@ton/core';
import { formatTon } from '../src/chain/money.ts';
import { parseInferenceRequest } from '../src/client/openai-request.ts';
import { type LocalNetwork, startLocalNetwork } from '../src/local/local-network.ts';
import { ClientAccount, UNDEPLOYED } from '../src/pay/client-account.ts';
import { Ledger } from '../src/pay/ledger.ts';
import { clientAuthHash, signHash } from '../src/pay/signed-messages.ts';

const ROOT = join(import.meta.dirname, '..');
const QUICK = process.argv.includes('--quick');
const N = QUICK ? 2000 : 10000;

function usPerOp(n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(200, n); i++) fn(i); // warm-up
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  return Number(process.hrtime.bigint() - t) / n / 1000;
}

async function usPerAsyncOp(n: number, batch: number, fn: () => Promise<void>): Promise<number> {
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i += batch) await Promise.all(Array.from({ length: batch }, fn));
  return Number(process.hrtime.bigint() - t) / n / 1000;
}

/** The client's validation of long requests, µs each (validating a prompt element by element was ~2 ms). */
function parsingCost() {
  const defaults = { maxTokens: 1024, timeoutMs: 120_000, maxCoefficient: 4000 };
  const tokens = { model: 'm', prompt: Array.from({ length: 50_000 }, (_, i) => i) };
  const messages = Array.from({ length: 100 }, (_, i) => ({
    role: i % 2 ? 'assistant' : 'user',
    content: 'x'.repeat(1000),
  }));
  const conversation = { model: 'm', messages };
  return {
    tokenPrompt50kUs: usPerOp(N / 10, () => parseInferenceRequest('completion', tokens, defaults)),
    conversation100Us: usPerOp(N / 10, () => parseInferenceRequest('chat', conversation, defaults)),
  };
}

/** (1) sign + verify + durable write, per request. */
async function cpuPerRequest(dir: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const contract = new Address(0, Buffer.alloc(32, 7));
  const perSignature = (bills: number) => {
    const account = new ClientAccount(contract, contract, publicKey, -239, null);
    account.chain = { ...UNDEPLOYED, deployed: true, balance: toNano('1000'), stake: toNano('1000') };
    let seqno = 0n;
    let total = 0n;
    return (
      usPerOp(N / bills, (i) => {
        const ids: string[] = [];
        for (let b = 0; b < bills; b++) {
          const id = `r${i}-${b}`;
          account.addBill(id, 1000n);
          ids.push(id);
        }
        seqno += 1n;
        total += 1000n * BigInt(bills);
        const signature = signHash(clientAuthHash({ globalId: -239, contract, seqno, total }), privateKey);
        const msg = { requestIds: ids, seqno, total, signature };
        account.applyAuth(msg, account.checkAuth(msg));
      }) / bills
    );
  };
  const signOnly = usPerOp(N, (i) =>
    signHash(clientAuthHash({ globalId: -239, contract, seqno: BigInt(i), total: 1n }), privateKey),
  );
  const signVerify1 = perSignature(1);
  const signVerify32 = perSignature(32);
  const writes: Record<string, number> = {};
  for (const durability of ['disk', 'process'] as const) {
    const ledger = Ledger.open(join(dir, `ledger-${durability}`), durability);
    const rec = () => ledger.commit([['client/x', { seqno: '1', total: '1', signature: 'ab'.repeat(64) }]]);
    writes[`${durability}Sequential`] = await usPerAsyncOp(QUICK ? 100 : 300, 1, rec);
    writes[`${durability}Concurrent32`] = await usPerAsyncOp(QUICK ? 640 : 3200, 32, rec);
    await ledger.close();
  }
  return {
    signOnlyUs: signOnly,
    signVerifyUs: { perRequestAlone: signVerify1, per32Together: signVerify32 },
    ledgerWriteUs: writes,
  };
}

async function latency(url: string, concurrency: number, requests: number) {
  const body = JSON.stringify({
    model: 'cocoon-tiny',
    messages: [{ role: 'user', content: 'hi' }],
    max_tokens: 16,
  });
  const times: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < requests) {
        const t = performance.now();
        const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await r.arrayBuffer();
        if (r.status !== 200) throw new Error(`status ${r.status}`);
        times.push(performance.now() - t);
      }
    }),
  );
  const rps = Math.round((requests / (performance.now() - t0)) * 1000);
  times.sort((a, b) => a - b);
  const p = (q: number) => Math.round(times[Math.floor(q * (times.length - 1))]! * 1000) / 1000;
  return { p50Ms: p(0.5), p99Ms: p(0.99), rps };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-bench-pay-'));
  const nets: LocalNetwork[] = [];
  try {
    const cpu = await cpuPerRequest(dir);
    process.stdout.write(`payment CPU: ${JSON.stringify(cpu)}\n`);
    process.stdout.write(`request parsing: ${JSON.stringify(parsingCost())}\n`);

    const free = await startLocalNetwork({ dataDir: join(dir, 'free'), logLevel: 'silent' });
    nets.push(free);
    // Thresholds scaled down so a short run crosses them: settle at 0.01 TON, payouts likewise.
    const paid = await startLocalNetwork({
      dataDir: join(dir, 'paid'),
      logLevel: 'silent',
      payments: { settleIntervalSeconds: 3600, payoutIntervalSeconds: 1, workerPayoutIntervalSeconds: 3600 },
    });
    nets.push(paid);
    const desk = paid.proxy.billing!.desk;
    const settleAmount = toNano('0.01');
    (desk as unknown as { opts: { settleAmount: bigint } }).opts.settleAmount = settleAmount;
    const wp = paid.worker.payments! as unknown as { opts: { redeemAmount: bigint } };
    wp.opts.redeemAmount = settleAmount;
    const requests = QUICK ? 300 : 1000;
    const rows = [];
    for (const concurrency of [1, 16]) {
      for (const [label, net] of [
        ['free', free],
        ['paid', paid],
      ] as const) {
        const r = await latency(`${net.client.baseUrl}/chat/completions`, concurrency, requests);
        rows.push({ label, concurrency, ...r });
        process.stdout.write(
          `${label} c=${concurrency} p50 ${r.p50Ms} ms p99 ${r.p99Ms} ms ${r.rps} req/s\n`,
        );
      }
    }

    // (3) on-chain operations: run until both thresholds were crossed a few times.
    const chain = paid.ton!.chain;
    const walletBefore = await chain.getBalance(paid.client.payments!.payer.account!);
    const opsBefore = desk.totals.settlements + paid.worker.payments!.redemptions;
    const t = await latency(`${paid.client.baseUrl}/chat/completions`, 16, QUICK ? 1000 : 3000);
    await new Promise((r) => setTimeout(r, 2500)); // payouts signed each second, redeemed by the worker
    await desk.settleDue();
    await paid.worker.payments!.redeemDue();
    const ops = desk.totals.settlements + paid.worker.payments!.redemptions - opsBefore;
    const n = QUICK ? 1000 : 3000;
    const clientSpent = walletBefore - (await chain.getBalance(paid.client.payments!.payer.account!));
    const onChain = {
      requests: n,
      onChainOps: ops,
      opsPer1000Requests: Math.round((ops / n) * 1000 * 100) / 100,
      thresholdTon: formatTon(settleAmount),
      clientSpentTon: formatTon(clientSpent),
      gasPerChargeTon: '0.0054 (charge: 7263 + 3859 gas, from the contract tests)',
      gasPerPayoutTon: '0.0075 (payout: 7013 + 7996 gas)',
      rps: t.rps,
    };
    process.stdout.write(`on-chain: ${JSON.stringify(onChain)}\n`);

    const report = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
      note: 'in-process networks (client, proxy, worker and the sandbox chain in one process), built-in model without delay',
      cpu,
      latency: rows,
      onChain,
    };
    writeFileSync(join(ROOT, 'bench/results/payments.json'), `${JSON.stringify(report, null, 2)}\n`);
    updateReadme(report);
    process.stdout.write('written bench/results/payments.json and the README table\n');
  } finally {
    for (const n of nets) await n.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function updateReadme(r: {
  cpu: Awaited<ReturnType<typeof cpuPerRequest>>;
  latency: { label: string; concurrency: number; p50Ms: number; p99Ms: number; rps: number }[];
  onChain: { opsPer1000Requests: number; thresholdTon: string };
}) {
  const path = join(ROOT, 'README.md');
  const readme = readFileSync(path, 'utf8');
  const f = (x: number) => x.toFixed(1);
  const w = r.cpu.ledgerWriteUs;
  const lat = (label: string, c: number) => r.latency.find((x) => x.label === label && x.concurrency === c)!;
  const lines = [
    '| measure | value |',
    '|---|---|',
    `| sign + verify, one bill per signature | **${f(r.cpu.signVerifyUs.perRequestAlone)} µs** per request |`,
    `| sign + verify, 32 bills per signature (concurrent requests) | **${f(r.cpu.signVerifyUs.per32Together)} µs** per request |`,
    `| durable write, fsync, one at a time / 32 together | ${f(w.diskSequential!)} µs / ${f(w.diskConcurrent32!)} µs per request |`,
    `| durable write, process-safe, one at a time / 32 together | ${f(w.processSequential!)} µs / ${f(w.processConcurrent32!)} µs per request |`,
    ...[1, 16].map((c) => {
      const a = lat('free', c);
      const b = lat('paid', c);
      return `| whole network, ${c} caller(s): free → paid p50 | ${a.p50Ms} ms → ${b.p50Ms} ms (${a.rps} → ${b.rps} req/s) |`;
    }),
    `| on-chain operations per 1,000 requests (threshold ${r.onChain.thresholdTon} TON) | ${r.onChain.opsPer1000Requests} |`,
  ].join('\n');
  const start = '<!-- bench:payments:start -->';
  const end = '<!-- bench:payments:end -->';
  const i = readme.indexOf(start);
  const j = readme.indexOf(end);
  if (i < 0 || j < 0) return;
  writeFileSync(path, `${readme.slice(0, i + start.length)}\n${lines}\n${readme.slice(j)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
