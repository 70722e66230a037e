/**
 * Soak test: the real network (1 proxy, W workers, 1 client) as separate OS processes on 127.0.0.1,
 * loaded by C concurrent callers for N minutes while workers are killed with SIGKILL and restarted.
 * Reports errors by status and code, throughput, latency, restarts and the memory growth of the
 * long-lived daemons; exits non-zero if a daemon crashed. Not part of CI: `npm run soak -- --minutes 2`.
 * See docs/soak.md.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, createWriteStream, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'cocoon.mjs');
const HOST = '127.0.0.1';
const MODEL = 'cocoon-tiny';
/** Per generated token: streams of up to 128 tokens then last up to ~0.7 s, long enough to be cut by a kill. */
const TOKEN_DELAY_MS = 5;
/** Per worker; 3 workers × 8 leaves room for 16 callers even while one worker is down. */
const WORKER_MAX_CONCURRENT = 8;
/** Daemons get this long to drain on SIGTERM; the load has stopped by then, so it is only a bound. */
const DRAIN_SECONDS = 5;
/** After SIGTERM, how long a daemon may take to exit before it is killed (and reported as unclean). */
const STOP_GRACE_MS = 10_000;
const SAMPLE_EVERY_MS = 5_000;
/** A request slower than this is abandoned and counted as a failure (`soak_timeout`). */
const REQUEST_TIMEOUT_MS = 30_000;
const READY_TIMEOUT_MS = 60_000;
/** Between SIGKILL and restart: long enough for the proxy to notice the dead connection. */
const RESTART_PAUSE_MS = 1_000;
const MIB = 1024 * 1024;

// ─── Options ────────────────────────────────────────────────────────────────────────────────────────────

interface Options {
  minutes: number;
  workers: number;
  concurrency: number;
  restartEverySeconds: number;
  out: string;
}

const FLAGS = {
  minutes: { type: 'string', default: '2' },
  workers: { type: 'string', default: '3' },
  concurrency: { type: 'string', default: '16' },
  'restart-every': { type: 'string', default: '10' },
  out: { type: 'string', default: join(ROOT, 'bench', 'results', 'soak.json') },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

function parseOptions(argv: string[]): Options {
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof FLAGS }>>['values'];
  try {
    values = parseArgs({ args: argv, options: FLAGS }).values;
  } catch (err) {
    // An unknown flag or a missing value: one line, not a stack trace.
    process.stderr.write(`soak: ${(err as Error).message} (see --help)\n`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(
      'usage: npm run soak -- [--minutes 2] [--workers 3] [--concurrency 16] [--restart-every 10] [--out file]\n' +
        '  --restart-every: seconds between worker kills (jittered ±50%); 0 = no kills\n',
    );
    process.exit(0);
  }
  const num = (name: string, text: string, min: number, integer: boolean): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      process.stderr.write(`soak: --${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}\n`);
      process.exit(2);
    }
    return n;
  };
  return {
    minutes: num('minutes', values.minutes, 0.05, false),
    workers: num('workers', values.workers, 1, true),
    concurrency: num('concurrency', values.concurrency, 1, true),
    restartEverySeconds: num('restart-every', values['restart-every'], 0, false),
    out: resolve(values.out),
  };
}

// ─── Daemons as child processes ─────────────────────────────────────────────────────────────────────────

type Role = 'proxy' | 'worker' | 'client';

interface ExitRecord {
  name: string;
  role: Role;
  code: number | null;
  signal: string | null;
  atSeconds: number;
}

interface Shutdown {
  name: string;
  exitCode: number | null;
  signal: string | null;
  seconds: number;
  clean: boolean;
  note: string | null;
}

/**
 * `n` distinct free ports: the kernel picks each (bind to port 0); all are held until every one is known,
 * so none is handed out twice, then released for the daemons to take.
 */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((res, rej) => {
          const srv = createServer();
          srv.once('error', rej);
          srv.listen(0, HOST, () => res(srv));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  return ports;
}

/** One daemon: spawned from bin/cocoon.mjs, restartable with the same arguments (data dir, ports). */
class Daemon {
  child: ChildProcess | null = null;
  /** Set before we stop or kill it on purpose, so its exit is not taken for a crash. */
  private expectingExit = false;
  private exited: Promise<ExitRecord> | null = null;
  /** It printed its banner: started, signal handlers in place. */
  private ready = false;
  starts = 0;

  constructor(
    readonly role: Role,
    readonly name: string,
    private readonly args: string[],
    private readonly logDir: string,
    private readonly onCrash: (e: ExitRecord) => void,
    private readonly clock: () => number,
  ) {}

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  get alive(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    // Appending: a restarted worker keeps one log. stderr carries the JSON logs, stdout the banners.
    const err = openSync(join(this.logDir, `${this.name}.log`), 'a');
    // Own process group: a Ctrl-C in the terminal reaches only this script, which stops the daemons in order.
    const child = spawn(process.execPath, [BIN, this.role, ...this.args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', err],
      detached: true,
    });
    closeSync(err);
    // The banner on stdout says the daemon is up (and has its signal handlers): see stop().
    const out = createWriteStream(join(this.logDir, `${this.name}.out`), { flags: 'a' });
    child.stdout!.on('data', (b: Buffer) => {
      out.write(b);
      if (b.toString('utf8').includes(`${this.role} '${this.name}'`)) this.ready = true;
    });
    child.stdout!.once('close', () => out.end());
    this.child = child;
    this.ready = false;
    this.expectingExit = false;
    this.starts++;
    this.exited = new Promise((res) => {
      child.once('exit', (code, signal) => {
        const e = { name: this.name, role: this.role, code, signal, atSeconds: round(this.clock() / 1000) };
        if (!this.expectingExit) this.onCrash(e);
        res(e);
      });
    });
  }

  /** SIGKILL, as a crash or an OOM kill would: no drain, no flush. */
  async kill9(): Promise<void> {
    if (!this.alive) return;
    this.expectingExit = true;
    this.child!.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM (the daemon drains), then SIGKILL after the grace period. */
  async stop(graceMs: number): Promise<Shutdown> {
    const started = performance.now();
    const base = { name: this.name, exitCode: null, signal: null, seconds: 0 };
    // Being killed by the restarter as the run ended, or not running (killed, or crashed and reported as
    // such): nothing to stop.
    if (this.expectingExit || !this.alive) {
      await this.exited;
      return { ...base, clean: true, note: 'not running' };
    }
    const wasReady = this.ready;
    this.expectingExit = true;
    this.child!.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    const e = await this.exited!;
    clearTimeout(timer);
    const seconds = round((performance.now() - started) / 1000, 2);
    const result = { ...base, exitCode: e.code, signal: e.signal, seconds };
    if (e.code === 0) return { ...result, clean: true, note: null };
    // A daemon still loading has no SIGTERM handler yet, so the signal's default action ends it: expected,
    // but noted, since it skips the drain.
    if (!wasReady && e.signal === 'SIGTERM') {
      return { ...result, clean: true, note: 'still starting: ended by SIGTERM before its handler was set' };
    }
    return { ...result, clean: false, note: e.signal === 'SIGKILL' ? 'killed after the grace period' : null };
  }

  /** Last resort on the way out (synchronous, so it also works in an 'exit' handler). */
  killNow(): void {
    if (!this.alive) return;
    this.expectingExit = true;
    try {
      this.child!.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

interface Network {
  proxy: Daemon;
  client: Daemon;
  workers: Daemon[];
  baseUrl: string;
  proxyStatsUrl: string;
  all(): Daemon[];
}

async function buildNetwork(
  opts: Options,
  dir: string,
  onCrash: (e: ExitRecord) => void,
  clock: () => number,
): Promise<Network> {
  const logDir = join(dir, 'logs');
  await mkdir(logDir, { recursive: true });
  const dataDir = (name: string) => join(dir, 'data', name);
  // No --root and no --config: payments stay off (free mode). Warn level keeps the logs about trouble only.
  const common = (name: string) => ['--name', name, '--data-dir', dataDir(name), '--log-level', 'warn'];
  const withDrain = (args: string[]) => [...args, '--drain-seconds', String(DRAIN_SECONDS)];
  const [workerPort, clientPort, proxyStats, httpPort, ...workerStats] = await freePorts(4 + opts.workers);
  const make = (role: Role, name: string, args: string[]) =>
    new Daemon(role, name, withDrain([...common(name), ...args]), logDir, onCrash, clock);
  const proxy = make('proxy', 'proxy', [
    '--host',
    HOST,
    '--worker-port',
    String(workerPort),
    '--client-port',
    String(clientPort),
    '--stats-port',
    String(proxyStats),
  ]);
  const workers: Daemon[] = [];
  for (let i = 1; i <= opts.workers; i++) {
    workers.push(
      make('worker', `worker-${i}`, [
        '--proxy',
        `${HOST}:${workerPort}`,
        '--model',
        MODEL,
        '--token-delay-ms',
        String(TOKEN_DELAY_MS),
        '--max-concurrent',
        String(WORKER_MAX_CONCURRENT),
        '--stats-port',
        String(workerStats[i - 1]),
      ]),
    );
  }
  const client = make('client', 'client', [
    '--proxy',
    `${HOST}:${clientPort}`,
    '--http-host',
    HOST,
    '--http-port',
    String(httpPort),
  ]);
  return {
    proxy,
    client,
    workers,
    baseUrl: `http://${HOST}:${httpPort}`,
    proxyStatsUrl: `http://${HOST}:${proxyStats}`,
    all: () => [proxy, ...workers, client],
  };
}

/**
 * Resolves once the URL answers 200. Probing with HTTP, not a bare TCP connect to a peer port: the proxy
 * would log such a connect as a refused peer.
 */
async function waitForHttp(url: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline && !signal.aborted) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await pause(200, signal);
  }
  if (!signal.aborted) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

/** Workers serving the model according to the client's `GET /v1/models`, or null if it does not answer. */
async function workersListed(baseUrl: string): Promise<number | null> {
  try {
    const res = await fetch(`${baseUrl}/v1/models`, { signal: AbortSignal.timeout(2_000) });
    if (!res.ok) return null;
    const body = (await res.json()) as { data?: { id: string; workers?: unknown[] }[] };
    return body.data?.find((m) => m.id === MODEL)?.workers?.length ?? 0;
  } catch {
    return null;
  }
}

/** Polls `/v1/models` until `want` workers serve the model; false after the timeout or on abort. */
async function waitForWorkers(
  baseUrl: string,
  want: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline && !signal.aborted) {
    if ((await workersListed(baseUrl)) === want) return true;
    await pause(250, signal);
  }
  return false;
}

// ─── Load ───────────────────────────────────────────────────────────────────────────────────────────────

type Kind = 'chat-stream' | 'chat' | 'completion-stream' | 'completion';
/** Streaming chat dominates, as it does for real LLM traffic; every endpoint and mode is exercised. */
const KIND_WEIGHTS: [Kind, number][] = [
  ['chat-stream', 0.4],
  ['chat', 0.25],
  ['completion-stream', 0.15],
  ['completion', 0.2],
];
const PROMPTS = [
  'Say hello.',
  'Write a haiku about the sea at night.',
  'Explain in detail how a TLS 1.3 handshake authenticates both peers, step by step.',
  'List ten fruits.',
  'Summarise the plot of a story about a lighthouse keeper who finds a message in a bottle.',
];

interface RequestResult {
  kind: Kind;
  /** Milliseconds since the run began. */
  startedAt: number;
  endedAt: number;
  ok: boolean;
  /** HTTP status; 0 if no response came (connection refused or reset). */
  status: number;
  code: string | null;
  /** The error came after the 200 headers: as an SSE error event or a cut stream. */
  midStream: boolean;
  message: string | null;
  ttftMs: number | null;
  completionTokens: number;
  maxTokens: number;
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!;
}

function pickKind(): Kind {
  let r = Math.random();
  for (const [kind, w] of KIND_WEIGHTS) {
    r -= w;
    if (r < 0) return kind;
  }
  return 'chat';
}

/** 4..128, log-uniform: many short answers, some long streams. */
function pickMaxTokens(): number {
  return Math.round(Math.exp(Math.log(4) + Math.random() * (Math.log(128) - Math.log(4))));
}

function requestBody(kind: Kind, maxTokens: number): { path: string; body: Record<string, unknown> } {
  const stream = kind.endsWith('-stream');
  const prompt = pick(PROMPTS);
  const common = {
    model: MODEL,
    max_tokens: maxTokens,
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  };
  return kind.startsWith('chat')
    ? { path: '/v1/chat/completions', body: { ...common, messages: [{ role: 'user', content: prompt }] } }
    : { path: '/v1/completions', body: { ...common, prompt } };
}

/** Server-sent events of a response body: yields each event's data (multi-line data joined by \n). */
async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const bytes of body) {
    buf += decoder.decode(bytes, { stream: true }).replace(/\r\n?/g, '\n');
    for (let end = buf.indexOf('\n\n'); end !== -1; end = buf.indexOf('\n\n')) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''));
      if (data.length > 0) yield data.join('\n');
    }
  }
}

interface OpenAIErrorBody {
  error?: { message?: string; type?: string; code?: string | null };
}

interface Chunk extends OpenAIErrorBody {
  choices?: { delta?: { content?: string | null }; text?: string }[];
  usage?: { completion_tokens?: number } | null;
}

/** What the caller got: ok with usage, or an error with status and code. */
type Verdict = Pick<RequestResult, 'ok' | 'status' | 'code' | 'midStream' | 'message' | 'ttftMs'> & {
  completionTokens: number;
};

const failed = (status: number, code: string | null, message: string | null, midStream = false): Verdict => ({
  ok: false,
  status,
  code,
  midStream,
  message,
  ttftMs: null,
  completionTokens: 0,
});

async function readStream(res: Response, started: number): Promise<Verdict> {
  let ttftMs: number | null = null;
  let usage: number | null = null;
  for await (const data of sseEvents(res.body!)) {
    if (data === '[DONE]') {
      // A stream asked for usage must end with it; its absence is a bug, not a detail.
      if (usage === null) return failed(200, 'missing_usage', 'stream ended without a usage chunk', true);
      return succeeded(ttftMs, usage);
    }
    const chunk = JSON.parse(data) as Chunk;
    if (chunk.error) {
      const e = chunk.error;
      return failed(200, e.code ?? e.type ?? 'error_event', e.message ?? null, true);
    }
    const choice = chunk.choices?.[0];
    if (ttftMs === null && (choice?.delta?.content || choice?.text)) ttftMs = performance.now() - started;
    if (chunk.usage) usage = chunk.usage.completion_tokens ?? 0;
  }
  return failed(200, 'stream_truncated', 'the stream ended without [DONE]', true);
}

function succeeded(ttftMs: number | null, completionTokens: number): Verdict {
  return { ok: true, status: 200, code: null, midStream: false, message: null, ttftMs, completionTokens };
}

async function readJson(res: Response): Promise<Verdict> {
  const body = (await res.json()) as Chunk;
  if (!body.choices || !body.usage) {
    return failed(200, 'malformed_response', JSON.stringify(body).slice(0, 200));
  }
  return succeeded(null, body.usage.completion_tokens ?? 0);
}

/** A refusal (non-200): its OpenAI error body names the code. */
async function readRefusal(res: Response): Promise<Verdict> {
  const text = await res.text();
  try {
    const e = (JSON.parse(text) as OpenAIErrorBody).error;
    return failed(res.status, e?.code ?? e?.type ?? null, e?.message ?? null);
  } catch {
    return failed(res.status, 'non_json_error', text.slice(0, 200));
  }
}

/** No usable answer at all: the transport failed, the caller timed out, or the soak was interrupted. */
function transportFailure(err: unknown, midStream: boolean): Verdict {
  const e = err as Error & { cause?: { code?: string } };
  if (e.name === 'TimeoutError') return failed(0, 'soak_timeout', e.message, midStream);
  if (e.name === 'AbortError') return failed(0, 'aborted', e.message, midStream);
  if (e instanceof SyntaxError) return failed(200, 'bad_json', e.message, midStream);
  return failed(
    0,
    e.cause?.code ?? e.name ?? 'fetch_failed',
    e.cause ? String(e.cause) : e.message,
    midStream,
  );
}

async function runRequest(baseUrl: string, now: () => number, abort: AbortSignal): Promise<RequestResult> {
  const kind = pickKind();
  const maxTokens = pickMaxTokens();
  const { path, body } = requestBody(kind, maxTokens);
  const startedAt = now();
  const t0 = performance.now();
  let gotHeaders = false;
  let verdict: Verdict;
  try {
    const res = await fetch(`${baseUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.any([AbortSignal.timeout(REQUEST_TIMEOUT_MS), abort]),
    });
    gotHeaders = res.ok;
    if (!res.ok) verdict = await readRefusal(res);
    else if (kind.endsWith('-stream')) verdict = await readStream(res, t0);
    else verdict = await readJson(res);
  } catch (err) {
    // After a 200 on a stream, a broken connection cut the answer mid-way.
    verdict = transportFailure(err, gotHeaders && kind.endsWith('-stream'));
  }
  return { kind, startedAt, endedAt: now(), maxTokens, ...verdict };
}

/** C callers, each sending one request after another until `stop` fires. */
async function runLoad(
  baseUrl: string,
  concurrency: number,
  now: () => number,
  stop: AbortSignal,
  abort: AbortSignal,
  record: (r: RequestResult) => void,
  inFlight: { n: number },
): Promise<void> {
  const caller = async () => {
    while (!stop.aborted) {
      inFlight.n++;
      try {
        record(await runRequest(baseUrl, now, abort));
      } finally {
        inFlight.n--;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
}

// ─── Worker restarts ────────────────────────────────────────────────────────────────────────────────────

interface Kill {
  worker: string;
  atMs: number;
  /** From the restart until `/v1/models` lists every worker again; null if it did not (yet). */
  recoveryMs: number | null;
  /** The run ended before the worker was back: not a failure to recover. */
  cutShort: boolean;
}

/** Pauses without throwing when the signal fires (it just returns early). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, undefined, { signal }).catch(() => undefined);
}

async function runRestarts(
  net: Network,
  everySeconds: number,
  now: () => number,
  stop: AbortSignal,
  kills: Kill[],
): Promise<void> {
  if (everySeconds <= 0) return;
  while (!stop.aborted) {
    // ±50% jitter, so kills do not line up with the load's own rhythm.
    await pause(everySeconds * 1000 * (0.5 + Math.random()), stop);
    if (stop.aborted) return;
    const alive = net.workers.filter((d) => d.alive);
    if (alive.length === 0) continue;
    const w = pick(alive);
    const kill: Kill = { worker: w.name, atMs: now(), recoveryMs: null, cutShort: false };
    kills.push(kill);
    await w.kill9();
    await pause(RESTART_PAUSE_MS, stop);
    if (!stop.aborted) w.start();
    const restarted = performance.now();
    if (!stop.aborted && (await waitForWorkers(net.baseUrl, net.workers.length, 30_000, stop))) {
      kill.recoveryMs = Math.round(performance.now() - restarted);
    }
    kill.cutShort = kill.recoveryMs === null && stop.aborted;
  }
}

// ─── Memory ─────────────────────────────────────────────────────────────────────────────────────────────

async function rssBytes(pid: number | null): Promise<number | null> {
  if (pid === null) return null;
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb === undefined ? null : Number(kb) * 1024;
  } catch {
    return null; // exited (a killed worker) or not Linux
  }
}

type RssSample = Record<string, number | null>;

async function sampleRss(net: Network): Promise<RssSample> {
  const daemons = net.all();
  const values = await Promise.all(daemons.map((d) => rssBytes(d.alive ? d.pid : null)));
  return Object.fromEntries(daemons.map((d, i) => [d.name, values[i] ?? null]));
}

// ─── Report ─────────────────────────────────────────────────────────────────────────────────────────────

function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Nearest-rank percentile of unsorted values; null when there are none. */
function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!);
}

function latency(values: number[]) {
  return {
    count: values.length,
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    p99: percentile(values, 99),
    max: percentile(values, 100),
  };
}

/** A failure is explained by a kill if a worker was killed while the request was in flight. */
function duringKill(r: RequestResult, kills: Kill[]): boolean {
  return kills.some((k) => k.atMs >= r.startedAt && k.atMs <= r.endedAt);
}

function groupErrors(results: RequestResult[], kills: Kill[]) {
  const groups = new Map<
    string,
    {
      status: number;
      code: string | null;
      midStream: boolean;
      count: number;
      whileWorkerKilled: number;
      example: string | null;
    }
  >();
  for (const r of results) {
    if (r.ok) continue;
    const key = `${r.status} ${r.code} ${r.midStream}`;
    const g = groups.get(key) ?? {
      status: r.status,
      code: r.code,
      midStream: r.midStream,
      count: 0,
      whileWorkerKilled: 0,
      example: r.message,
    };
    g.count++;
    if (duringKill(r, kills)) g.whileWorkerKilled++;
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => b.count - a.count);
}

function rssGrowth(start: number | null | undefined, end: number | null | undefined, peak: number) {
  const mib = (b: number | null | undefined) => (b == null ? null : round(b / MIB));
  return {
    startMiB: mib(start),
    endMiB: mib(end),
    peakMiB: mib(peak),
    growthMiB: start != null && end != null ? round((end - start) / MIB) : null,
    growthPercent: start != null && end != null ? round(((end - start) / start) * 100) : null,
  };
}

/** Warnings and errors the daemons logged, grouped by message: where to look first. */
async function summariseLogs(dir: string, names: string[]) {
  const out: Record<string, { warn: number; error: number; fatal: number; other: number; top: string[] }> =
    {};
  for (const name of names) {
    const text = await readFile(join(dir, `${name}.log`), 'utf8').catch(() => '');
    const counts = { warn: 0, error: 0, fatal: 0, other: 0 };
    const byMsg = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let label: string;
      try {
        const j = JSON.parse(line) as { level?: number; msg?: string; code?: string; err?: unknown };
        const level = j.level ?? 0;
        if (level >= 60) counts.fatal++;
        else if (level >= 50) counts.error++;
        else if (level >= 40) counts.warn++;
        else continue;
        label = `${j.msg ?? '?'}${j.code ? ` [${j.code}]` : ''}`;
      } catch {
        counts.other++; // not a log line: a stack trace or a warning printed by Node itself
        label = `(stderr) ${line.slice(0, 120)}`;
      }
      byMsg.set(label, (byMsg.get(label) ?? 0) + 1);
    }
    const top = [...byMsg.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([msg, n]) => `${n}× ${msg}`);
    out[name] = { ...counts, top };
  }
  return out;
}

/** The daemons' own counters (`/jsonstats`), to set beside what the callers saw. */
async function daemonCounters(url: string): Promise<unknown> {
  try {
    const res = await fetch(`${url}/jsonstats`, { signal: AbortSignal.timeout(2_000) });
    const s = (await res.json()) as { requests?: unknown; refusals?: unknown; connections?: unknown };
    return { requests: s.requests, refusals: s.refusals, connections: s.connections };
  } catch (err) {
    return { unavailable: String(err) };
  }
}

// ─── The run ────────────────────────────────────────────────────────────────────────────────────────────

/** Everything the run observed, filled in as it goes and reported at the end (also when interrupted). */
interface RunState {
  startedAtIso: string;
  loadStartedMs: number | null;
  loadEndedMs: number | null;
  results: RequestResult[];
  abandoned: number;
  kills: Kill[];
  crashes: ExitRecord[];
  rssBaseline: RssSample | null;
  rssLast: RssSample | null;
  rssPeak: Record<string, number>;
  interrupted: string | null;
  setupError: string | null;
  daemonStats: Record<string, unknown>;
  shutdown: Shutdown[];
}

function progressLine(
  state: RunState,
  net: Network,
  rss: RssSample,
  elapsedS: number,
  inFlight: number,
  lastCount: number,
  intervalS: number,
): string {
  const done = state.results.length;
  const ok = state.results.filter((r) => r.ok).length;
  const mib = (n: string) => {
    const v = rss[n];
    return v == null ? '-' : String(Math.round(v / MIB));
  };
  const rate = intervalS > 0 ? (done - lastCount) / intervalS : 0;
  return (
    `[${elapsedS.toFixed(0).padStart(4)}s] req ${done} ok ${ok} failed ${done - ok} in-flight ${inFlight}` +
    ` | ${rate.toFixed(1)} req/s | kills ${state.kills.length}` +
    ` | RSS MiB proxy ${mib('proxy')} client ${mib('client')} workers ${net.workers.map((w) => mib(w.name)).join('/')}`
  );
}

/** The figures of the run; `buildReport` adds the verdict drawn from them. */
function reportBody(state: RunState, opts: Options, net: Network | null, logs: unknown, logDir: string) {
  const results = state.results;
  const ok = results.filter((r) => r.ok);
  const loadS =
    state.loadStartedMs !== null && state.loadEndedMs !== null
      ? (state.loadEndedMs - state.loadStartedMs) / 1000
      : 0;
  const tokens = ok.reduce((s, r) => s + r.completionTokens, 0);
  const errors = groupErrors(results, state.kills);
  const unexplained = errors.reduce((s, g) => s + g.count - g.whileWorkerKilled, 0);
  const overBudget = ok.filter((r) => r.completionTokens > r.maxTokens).length;
  const byKind = Object.fromEntries(
    KIND_WEIGHTS.map(([k]) => {
      const of = results.filter((r) => r.kind === k);
      return [k, { total: of.length, ok: of.filter((r) => r.ok).length }];
    }),
  );
  const rss = (name: string) =>
    rssGrowth(state.rssBaseline?.[name], state.rssLast?.[name], state.rssPeak[name] ?? 0);
  const recoveries = state.kills.flatMap((k) => (k.recoveryMs === null ? [] : [k.recoveryMs]));
  return {
    startedAt: state.startedAtIso,
    finishedAt: new Date().toISOString(),
    config: {
      minutes: opts.minutes,
      workers: opts.workers,
      concurrency: opts.concurrency,
      restartEverySeconds: opts.restartEverySeconds,
      tokenDelayMs: TOKEN_DELAY_MS,
      workerMaxConcurrent: WORKER_MAX_CONCURRENT,
    },
    interrupted: state.interrupted,
    setupError: state.setupError,
    durationSeconds: round(loadS),
    requests: {
      total: results.length,
      ok: ok.length,
      failed: results.length - ok.length,
      failedWhileNoWorkerWasKilled: unexplained,
      abandonedAtInterrupt: state.abandoned,
      completionTokensOverMaxTokens: overBudget,
      byKind,
    },
    errors,
    throughput: {
      requestsPerSecond: loadS > 0 ? round(ok.length / loadS, 2) : null,
      completionTokensPerSecond: loadS > 0 ? round(tokens / loadS) : null,
    },
    latencyMs: {
      total: latency(ok.map((r) => r.endedAt - r.startedAt)),
      timeToFirstToken: latency(ok.flatMap((r) => (r.ttftMs === null ? [] : [r.ttftMs]))),
    },
    workerRestarts: {
      done: state.kills.length,
      recoveryMs: { p50: percentile(recoveries, 50), max: percentile(recoveries, 100) },
      notRecovered: state.kills.filter((k) => k.recoveryMs === null && !k.cutShort).length,
    },
    crashes: state.crashes,
    rss: {
      note: 'start = after warm-up; growth = end - start',
      proxy: rss('proxy'),
      client: rss('client'),
      workers: Object.fromEntries(
        (net?.workers ?? []).map((w) => [
          w.name,
          { lastMiB: rss(w.name).endMiB, peakMiB: rss(w.name).peakMiB, starts: w.starts },
        ]),
      ),
    },
    daemonStats: state.daemonStats,
    shutdown: state.shutdown,
    logs: { dir: logDir, byDaemon: logs },
  };
}

type ReportBody = ReturnType<typeof reportBody>;
type Report = ReportBody & { verdict: string };

function buildReport(...args: Parameters<typeof reportBody>): Report {
  const body = reportBody(...args);
  return { ...body, verdict: verdict(body, args[0]) };
}

/** FAIL: a daemon crashed or nothing worked. WARN: worth a look, not fatal. PASS: all failures explained. */
function verdict(r: ReportBody, state: RunState): string {
  const fails: string[] = [];
  if (state.setupError) fails.push(`setup failed: ${state.setupError}`);
  for (const c of state.crashes) {
    fails.push(`${c.name} exited unexpectedly (code ${c.code}, signal ${c.signal})`);
  }
  if (r.requests.total > 0 && r.requests.ok === 0) fails.push('no request succeeded');
  if (fails.length > 0) return `FAIL: ${fails.join('; ')}`;
  const warns: string[] = [];
  if (r.requests.failedWhileNoWorkerWasKilled > 0) {
    warns.push(`${r.requests.failedWhileNoWorkerWasKilled} failures while no worker was being killed`);
  }
  if (r.requests.completionTokensOverMaxTokens > 0) {
    warns.push(`${r.requests.completionTokensOverMaxTokens} answers over max_tokens`);
  }
  for (const name of ['proxy', 'client'] as const) {
    const g = r.rss[name];
    if ((g.growthMiB ?? 0) > 20 && (g.growthPercent ?? 0) > 25) {
      warns.push(`${name} RSS grew ${g.growthMiB} MiB (${g.growthPercent}%)`);
    }
  }
  for (const s of state.shutdown) {
    if (!s.clean) warns.push(`${s.name} did not exit cleanly on SIGTERM`);
  }
  if (r.workerRestarts.notRecovered > 0) {
    warns.push(`${r.workerRestarts.notRecovered} restarts did not recover`);
  }
  const summary =
    `${r.requests.ok}/${r.requests.total} ok, ${r.requests.failed} failed ` +
    `(${r.requests.failed - r.requests.failedWhileNoWorkerWasKilled} during ${r.workerRestarts.done} worker kills)`;
  return warns.length > 0 ? `WARN: ${summary}; ${warns.join('; ')}` : `PASS: ${summary}; no daemon crashed`;
}

function printSummary(r: Report): void {
  const lines = [
    '',
    `soak: ${r.durationSeconds} s, ${r.config.workers} workers, ${r.config.concurrency} callers, ` +
      `${r.workerRestarts.done} worker kills${r.interrupted ? ` (interrupted: ${r.interrupted})` : ''}`,
    `requests ${r.requests.total}: ok ${r.requests.ok}, failed ${r.requests.failed}` +
      (r.requests.abandonedAtInterrupt > 0
        ? ` (+${r.requests.abandonedAtInterrupt} cut by the interrupt)`
        : '') +
      ` | ${r.throughput.requestsPerSecond} req/s, ${r.throughput.completionTokensPerSecond} completion tok/s`,
    `latency ms  total p50 ${r.latencyMs.total.p50} p95 ${r.latencyMs.total.p95} p99 ${r.latencyMs.total.p99}` +
      ` | TTFT p50 ${r.latencyMs.timeToFirstToken.p50} p95 ${r.latencyMs.timeToFirstToken.p95}` +
      ` p99 ${r.latencyMs.timeToFirstToken.p99}`,
    ...r.errors.map(
      (e) =>
        `  error ${e.status} ${e.code}${e.midStream ? ' (mid-stream)' : ''}: ${e.count}` +
        ` (${e.whileWorkerKilled} while a worker was killed) e.g. ${e.example ?? ''}`,
    ),
    `worker recovery ms p50 ${r.workerRestarts.recoveryMs.p50} max ${r.workerRestarts.recoveryMs.max}`,
    ...(['proxy', 'client'] as const).map((n) => {
      const g = r.rss[n];
      return `RSS ${n}: ${g.startMiB} -> ${g.endMiB} MiB (${g.growthMiB} MiB, ${g.growthPercent}%), peak ${g.peakMiB}`;
    }),
    `logs: ${r.logs.dir}`,
    r.verdict,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const t0 = performance.now();
  const now = () => Math.round(performance.now() - t0);
  const dir = await mkdtemp(join(tmpdir(), 'cocoon-soak-'));
  const logDir = join(dir, 'logs');
  const state: RunState = {
    startedAtIso: new Date().toISOString(),
    loadStartedMs: null,
    loadEndedMs: null,
    results: [],
    abandoned: 0,
    kills: [],
    crashes: [],
    rssBaseline: null,
    rssLast: null,
    rssPeak: {},
    interrupted: null,
    setupError: null,
    daemonStats: {},
    shutdown: [],
  };
  /** Ends the load (deadline, signal or crash); `abort` also cuts the requests in flight (interrupt). */
  const stop = new AbortController();
  const abort = new AbortController();
  let net: Network | null = null;
  const onCrash = (e: ExitRecord) => {
    state.crashes.push(e);
    process.stdout.write(`!! ${e.name} exited unexpectedly (code ${e.code}, signal ${e.signal})\n`);
    // Without its proxy or client the network is gone: stop now. A crashed worker is restarted, so the
    // run goes on and shows whether the rest of the network copes.
    if (e.role !== 'worker') stop.abort();
    else {
      setTimeout(() => {
        const w = net?.workers.find((d) => d.name === e.name);
        if (w && !w.alive && !stop.signal.aborted) w.start();
      }, RESTART_PAUSE_MS);
    }
  };
  const onSignal = (sig: string) => {
    if (state.interrupted) {
      // A second Ctrl-C: no more patience.
      for (const d of net?.all() ?? []) d.killNow();
      process.exit(130);
    }
    state.interrupted = sig;
    process.stdout.write(`\n${sig}: stopping the network and writing a partial report (again to force)\n`);
    stop.abort();
    abort.abort();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  // Whatever happens to this script, no daemon outlives it.
  process.on('exit', () => {
    for (const d of net?.all() ?? []) d.killNow();
  });

  net = await buildNetwork(opts, dir, onCrash, now);
  process.stdout.write(
    `soak: ${opts.minutes} min, ${opts.workers} workers, ${opts.concurrency} callers, ` +
      `kill a worker every ~${opts.restartEverySeconds} s; logs in ${logDir}\n`,
  );
  try {
    await startNetwork(net, stop.signal);
    if (!stop.signal.aborted) await loadPhase(net, opts, state, now, stop, abort);
  } catch (err) {
    state.setupError = (err as Error).message;
    process.stdout.write(`soak: ${state.setupError}\n`);
  }
  stop.abort();
  state.loadEndedMs ??= now();
  state.daemonStats = {
    proxy: await daemonCounters(net.proxyStatsUrl),
    client: await daemonCounters(net.baseUrl),
  };
  await stopNetwork(net, state);
  const logs = await summariseLogs(
    logDir,
    net.all().map((d) => d.name),
  );
  const report = buildReport(state, opts, net, logs, logDir);
  await mkdir(dirname(opts.out), { recursive: true });
  await writeFile(opts.out, `${JSON.stringify(report, null, 2)}\n`);
  printSummary(report);
  process.stdout.write(`report: ${opts.out}\n`);
  // Keys and ledgers are of no further use; the logs stay for a post-mortem.
  await rm(join(dir, 'data'), { recursive: true, force: true });
  return report.verdict.startsWith('FAIL') ? 1 : 0;
}

async function startNetwork(net: Network, stop: AbortSignal): Promise<void> {
  net.proxy.start();
  // Workers and the client dial the proxy: let it listen first so they do not start in back-off. Its
  // stats server is the last thing it opens.
  await waitForHttp(`${net.proxyStatsUrl}/jsonstats`, READY_TIMEOUT_MS, stop);
  for (const w of net.workers) w.start();
  net.client.start();
  const ready = await waitForWorkers(net.baseUrl, net.workers.length, READY_TIMEOUT_MS, stop);
  if (!ready && !stop.aborted) {
    throw new Error(`the client did not list ${net.workers.length} workers within ${READY_TIMEOUT_MS} ms`);
  }
}

/** Loads the network for the set time, with kills and RSS sampling beside it. */
async function loadPhase(
  net: Network,
  opts: Options,
  state: RunState,
  now: () => number,
  stop: AbortController,
  abort: AbortController,
): Promise<void> {
  const durationMs = opts.minutes * 60_000;
  // RSS right after start is mostly module loading and JIT; the baseline is taken once the load has warmed
  // the daemons up, so growth measures what the load itself leaves behind.
  const warmupMs = Math.min(20_000, Math.max(5_000, durationMs * 0.15));
  state.loadStartedMs = now();
  const inFlight = { n: 0 };
  const deadline = setTimeout(() => stop.abort(), durationMs);
  const record = (r: RequestResult) => {
    if (abort.signal.aborted && r.code === 'aborted') state.abandoned++;
    else state.results.push(r);
  };
  const load = runLoad(net.baseUrl, opts.concurrency, now, stop.signal, abort.signal, record, inFlight);
  const restarts = runRestarts(net, opts.restartEverySeconds, now, stop.signal, state.kills);
  const sampler = (async () => {
    let lastCount = 0;
    let lastAt = now();
    while (!stop.signal.aborted) {
      await pause(SAMPLE_EVERY_MS, stop.signal);
      const rss = await sampleRss(net);
      for (const [name, v] of Object.entries(rss)) {
        if (v !== null) state.rssPeak[name] = Math.max(state.rssPeak[name] ?? 0, v);
      }
      const t = now();
      if (state.rssBaseline === null && t - state.loadStartedMs! >= warmupMs) state.rssBaseline = rss;
      // The end figure is the last sample under load (after it, the daemons are stopping).
      if (!stop.signal.aborted || state.rssLast === null) state.rssLast = rss;
      const line = progressLine(
        state,
        net,
        rss,
        (t - state.loadStartedMs!) / 1000,
        inFlight.n,
        lastCount,
        (t - lastAt) / 1000,
      );
      process.stdout.write(`${line}\n`);
      lastCount = state.results.length;
      lastAt = t;
    }
  })();
  await Promise.all([load, restarts, sampler]);
  clearTimeout(deadline);
  state.loadEndedMs = now();
  // A run shorter than the warm-up still reports something: its last sample stands in as the baseline.
  state.rssBaseline ??= state.rssLast;
}

/** Client first (no new requests), then workers, then the proxy: each drains an idle network quickly. */
async function stopNetwork(net: Network, state: RunState): Promise<void> {
  state.shutdown.push(await net.client.stop(STOP_GRACE_MS));
  state.shutdown.push(...(await Promise.all(net.workers.map((w) => w.stop(STOP_GRACE_MS)))));
  state.shutdown.push(await net.proxy.stop(STOP_GRACE_MS));
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
