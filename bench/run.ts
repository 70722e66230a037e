/**
 * `npm run bench`: what the Cocoon chain adds to a request, measured side by side in one run.
 *
 * A fast fake engine (vLLM wire format, no model) runs in its own process. We send the same requests
 * (a) straight to the engine and (b) through client → proxy → worker (each its own process, real mutual
 * TLS between them), non-streaming and streaming, with 1 and 32 concurrent callers. Added latency is
 * (b) − (a) at the same percentile. Results go to bench/results/latest.json and the README table.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin/cocoon.mjs');
const QUICK = process.argv.includes('--quick');
const REQUESTS: Record<number, number> = QUICK ? { 1: 200, 32: 1000 } : { 1: 1000, 32: 6000 };

interface Scenario {
  /**
   * `chain-plain`: the same chain with the client's end-to-end encryption turned off; `chain-bare`: with
   * receipts off too (what the chain was before either).
   */
  target: 'direct' | 'chain' | 'chain-plain' | 'chain-bare';
  stream: boolean;
  concurrency: number;
}
interface Result extends Scenario {
  requests: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  rps: number;
}

const children: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function startProcess(args: string[], readyPattern: RegExp): Promise<string> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = out.match(readyPattern);
      if (m) resolve(m[1] ?? m[0]);
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${out}`)));
  });
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function once(url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.on('data', () => {});
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode} from ${url}`));
          else resolve(performance.now() - t0);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function measure(url: string, s: Scenario): Promise<Result> {
  const body = JSON.stringify({
    model: s.target === 'direct' ? 'bench-model' : 'bench',
    messages: [{ role: 'user', content: 'benchmark prompt' }],
    max_tokens: 16,
    ...(s.stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  });
  const total = REQUESTS[s.concurrency]!;
  const warmup = Math.min(500, total / 5);
  const lat: number[] = [];
  let issued = 0;
  const t0 = performance.now();
  let measuredStart = t0;
  await Promise.all(
    Array.from({ length: s.concurrency }, async () => {
      while (issued < total + warmup) {
        const n = issued++;
        if (n === warmup) measuredStart = performance.now();
        const ms = await once(url, body);
        if (n >= warmup) lat.push(ms);
      }
    }),
  );
  const elapsed = (performance.now() - measuredStart) / 1000;
  lat.sort((a, b) => a - b);
  const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!;
  return {
    ...s,
    requests: lat.length,
    p50Ms: round(pct(0.5)),
    p99Ms: round(pct(0.99)),
    meanMs: round(lat.reduce((a, b) => a + b, 0) / lat.length),
    rps: Math.round(lat.length / elapsed),
  };
}

const round = (x: number) => Math.round(x * 1000) / 1000;

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-bench-'));
  try {
    const engineUrl = await startProcess(
      ['--import', 'tsx', 'bench/fake-engine-process.ts'],
      /^(http\S+)\n/m,
    );
    const [wp, cp] = await Promise.all([freePort(), freePort()]);
    await startProcess(
      [
        BIN,
        'proxy',
        '--data-dir',
        join(dir, 'p'),
        '--worker-port',
        `${wp}`,
        '--client-port',
        `${cp}`,
        '--stats-port',
        'off',
        '--log-level',
        'warn',
      ],
      /proxy '/,
    );
    await startProcess(
      [
        BIN,
        'worker',
        '--data-dir',
        join(dir, 'w'),
        '--proxy',
        `127.0.0.1:${wp}`,
        '--backend',
        'openai-compatible',
        '--upstream',
        engineUrl,
        '--model',
        'bench',
        '--upstream-model',
        'bench-model',
        '--max-concurrent',
        '256',
        '--stats-port',
        'off',
        '--log-level',
        'warn',
      ],
      /worker '/,
    );
    // Three clients through the same proxy and worker: the default (E2E and receipts on), E2E off, and
    // receipts off too (explicit choices): what each costs, measured side by side.
    const startClient = async (name: string, config: Record<string, boolean>): Promise<string> => {
      const port = await freePort();
      const file = join(dir, `${name}.json`);
      writeFileSync(file, JSON.stringify(config));
      await startProcess(
        [
          BIN,
          'client',
          '--config',
          file,
          '--data-dir',
          join(dir, name),
          '--http-port',
          `${port}`,
          '--proxy',
          `127.0.0.1:${cp}`,
          '--log-level',
          'warn',
        ],
        /client '/,
      );
      return `http://127.0.0.1:${port}/v1/chat/completions`;
    };
    const chainUrl = await startClient('c', {});
    const plainUrl = await startClient('c-plain', { e2e: false });
    const bareUrl = await startClient('c-bare', { e2e: false, receipts: false });
    const directUrl = `${engineUrl}/chat/completions`;
    // The worker registers asynchronously; wait until a request goes through.
    for (const url of [chainUrl, plainUrl, bareUrl]) {
      for (let i = 0; ; i++) {
        try {
          await once(
            url,
            JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }),
          );
          break;
        } catch (err) {
          if (i > 100) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    const urls = { direct: directUrl, chain: chainUrl, 'chain-plain': plainUrl, 'chain-bare': bareUrl };

    const results: Result[] = [];
    for (const stream of [false, true]) {
      for (const concurrency of [1, 32]) {
        // Alternate the targets so drift in machine load hits them alike.
        for (const target of ['direct', 'chain-bare', 'chain-plain', 'chain'] as const) {
          const r = await measure(urls[target], {
            target,
            stream,
            concurrency,
          });
          results.push(r);
          process.stdout.write(
            `${target.padEnd(11)} stream=${String(stream).padEnd(5)} c=${String(concurrency).padEnd(2)} ` +
              `p50 ${r.p50Ms.toFixed(3)} ms  p99 ${r.p99Ms.toFixed(3)} ms  ${r.rps} req/s\n`,
          );
        }
      }
    }
    const rows = [false, true].flatMap((stream) =>
      [1, 32].map((concurrency) => {
        const of = (target: Scenario['target']) =>
          results.find((r) => r.target === target && r.stream === stream && r.concurrency === concurrency)!;
        const [d, c, p, b] = [of('direct'), of('chain'), of('chain-plain'), of('chain-bare')];
        return {
          stream,
          concurrency,
          directP50Ms: d.p50Ms,
          chainP50Ms: c.p50Ms,
          addedP50Ms: round(c.p50Ms - d.p50Ms),
          directP99Ms: d.p99Ms,
          chainP99Ms: c.p99Ms,
          addedP99Ms: round(c.p99Ms - d.p99Ms),
          directRps: d.rps,
          chainRps: c.rps,
          plainP50Ms: p.p50Ms,
          plainP99Ms: p.p99Ms,
          plainRps: p.rps,
          e2eP50Ms: round(c.p50Ms - p.p50Ms),
          e2eP99Ms: round(c.p99Ms - p.p99Ms),
          bareP50Ms: b.p50Ms,
          bareP99Ms: b.p99Ms,
          bareRps: b.rps,
          receiptsP50Ms: round(p.p50Ms - b.p50Ms),
          receiptsP99Ms: round(p.p99Ms - b.p99Ms),
        };
      }),
    );
    const report = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
      note: 'fake engine (16 completion tokens, no delay) in its own process; client, proxy, worker each in its own process; loopback, mutual TLS between nodes; chain = E2E on (default), chain-plain = the same proxy and worker through a client with e2e: false; chain-bare = a client with e2e: false and receipts: false (receipts signed, checked and logged in the other two)',
      requestsPerScenario: REQUESTS,
      results,
      summary: rows,
    };
    writeFileSync(join(ROOT, 'bench/results/latest.json'), `${JSON.stringify(report, null, 2)}\n`);
    updateReadme(rows);
    process.stdout.write('\nwritten bench/results/latest.json and the README table\n');
  } finally {
    for (const c of children) c.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

function updateReadme(rows: Record<string, number | boolean>[]) {
  const path = join(ROOT, 'README.md');
  const readme = readFileSync(path, 'utf8');
  const table = [
    '| mode | callers | direct p50 | chain p50 | added p50 | direct p99 | chain p99 | added p99 | direct req/s | chain req/s | E2E off: p50 / p99 / req/s | E2E adds p50 / p99 | E2E and receipts off: p50 / p99 / req/s | receipts add p50 / p99 |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.stream ? 'stream' : 'non-stream'} | ${r.concurrency} | ${r.directP50Ms} ms | ${r.chainP50Ms} ms | **${r.addedP50Ms} ms** | ` +
        `${r.directP99Ms} ms | ${r.chainP99Ms} ms | **${r.addedP99Ms} ms** | ${r.directRps} | ${r.chainRps} | ` +
        `${r.plainP50Ms} / ${r.plainP99Ms} ms / ${r.plainRps} | **${r.e2eP50Ms} / ${r.e2eP99Ms} ms** | ` +
        `${r.bareP50Ms} / ${r.bareP99Ms} ms / ${r.bareRps} | **${r.receiptsP50Ms} / ${r.receiptsP99Ms} ms** |`,
    ),
  ].join('\n');
  const start = '<!-- bench:chain:start -->';
  const end = '<!-- bench:chain:end -->';
  const i = readme.indexOf(start);
  const j = readme.indexOf(end);
  if (i < 0 || j < 0) return;
  writeFileSync(path, `${readme.slice(0, i + start.length)}\n${table}\n${readme.slice(j)}`);
}

main().catch((err) => {
  for (const c of children) c.kill('SIGTERM');
  console.error(err);
  process.exit(1);
});
