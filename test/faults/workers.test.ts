import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { post, until } from '../e2e/harness.ts';
import { DaemonProcess, freePort } from './daemon-process.ts';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '../../bin/cocoon.mjs');

interface ProxyStats {
  requests: { inFlight: number; redispatched: number; failed: number; succeeded: number };
  workers: { name: string; running: number; enabled: boolean }[];
}

/**
 * Faults with real processes: the proxy, the client and the workers each run as `cocoon <role>`, and
 * workers are killed with SIGKILL mid-request.
 */
describe('workers killed with kill -9; SIGTERM drains; request ids across the hops', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-faults-'));
  const procs: DaemonProcess[] = [];
  let proxyStats: string;
  let proxyWorkerPort: number;
  let api: string;
  const stats = async () => (await (await fetch(`${proxyStats}/jsonstats`)).json()) as ProxyStats;
  const worker = async (name: string, tokenDelayMs: number, extra: Record<string, unknown> = {}) => {
    const statsPort = await freePort();
    const w = await DaemonProcess.start(
      'worker',
      {
        name,
        dataDir: join(dir, name),
        proxy: [`127.0.0.1:${proxyWorkerPort}`],
        backend: { tokenDelayMs },
        statsPort,
        logLevel: 'debug',
        ...extra,
      },
      dir,
    );
    procs.push(w);
    await until(
      async () => (await stats()).workers.some((x) => x.name === name),
      `${name} registered`,
      15_000,
    );
    return { proc: w, statsUrl: `http://127.0.0.1:${statsPort}`, dataDir: join(dir, name) };
  };

  /** Switches a worker in or out of routing with `cocoon worker admin`, and waits for the proxy to see it. */
  const setEnabled = async (name: string, enabled: boolean) => {
    const statsUrl = await statsUrlOf(procs, name);
    const action = enabled ? 'enable' : 'disable';
    await run(process.execPath, [
      bin,
      'worker',
      'admin',
      action,
      '--data-dir',
      join(dir, name),
      '--stats-url',
      statsUrl,
    ]);
    await until(
      async () => (await stats()).workers.find((w) => w.name === name)?.enabled === enabled,
      `${name} ${action}d`,
    );
  };

  before(async () => {
    const [workerPort, clientPort, statsPort, httpPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    proxyWorkerPort = workerPort;
    proxyStats = `http://127.0.0.1:${statsPort}`;
    procs.push(
      await DaemonProcess.start(
        'proxy',
        {
          name: 'fault-proxy',
          dataDir: join(dir, 'proxy'),
          workerPort,
          clientPort,
          statsPort,
          logLevel: 'debug',
        },
        dir,
      ),
    );
    procs.push(
      await DaemonProcess.start(
        'client',
        {
          name: 'fault-client',
          dataDir: join(dir, 'client'),
          httpPort,
          proxy: `127.0.0.1:${clientPort}`,
          logLevel: 'debug',
        },
        dir,
      ),
    );
    api = `http://127.0.0.1:${httpPort}/v1`;
  });
  after(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  test('killed before its first token: the request succeeds on another worker', async () => {
    const slow = await worker('slow', 2000); // first token after 2 s: time enough to kill it
    const fast = await worker('fast', 1);
    const openai = new OpenAI({ baseURL: api, apiKey: 'x', maxRetries: 0 });
    const pending = openai.chat.completions.create({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'hello' }],
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    });
    await until(
      async () => (await stats()).workers.find((w) => w.name === 'slow')?.running === 1,
      'at slow',
      10_000,
    );
    await slow.proc.kill('SIGKILL');
    let usage: (OpenAI.CompletionUsage & { cocoon?: { worker: string } }) | null = null;
    for await (const c of await pending) if (c.usage) usage = c.usage;
    assert.equal(usage?.completion_tokens, 8);
    const s = await stats();
    assert.equal(s.requests.redispatched, 1);
    assert.equal(s.requests.failed, 0);
    // The fast worker stays for the next tests.
    assert.ok(fast.proc.child.exitCode === null);
  });

  test('killed mid-stream: a clean OpenAI error event; the proxy has nothing left in flight', async () => {
    const steady = await worker('steady', 40);
    // Take the fast worker out of routing (live, through its admin endpoint) so the stream goes to steady.
    await setEnabled('fast', false);
    const res = await fetch(`${api}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'cocoon-tiny',
        messages: [{ role: 'user', content: 'go' }],
        max_tokens: 200,
        stream: true,
      }),
    });
    assert.equal(res.status, 200);
    let text = '';
    let chunks = 0;
    let killed = false;
    for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += Buffer.from(part).toString();
      chunks = (text.match(/"content":"[^"]+"/g) ?? []).length;
      if (chunks >= 5 && !killed) {
        killed = true;
        void steady.proc.kill('SIGKILL');
      }
    }
    const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
    assert.equal(events.at(-1), 'data: [DONE]');
    const error = JSON.parse(events.at(-2)!.slice(6)) as {
      error: { code: string; message: string; type: string };
    };
    assert.equal(error.error.code, 'worker_failed_mid_stream');
    assert.match(error.error.message, /failed after \d+ tokens were delivered/);
    await until(async () => (await stats()).requests.inFlight === 0, 'proxy in flight back to 0');
    await setEnabled('fast', true);
  });

  test('one request id in the logs of client, proxy and worker', async () => {
    const r = await post(`${api}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'trace me' }],
      max_tokens: 3,
    });
    assert.equal(r.status, 200);
    const id = r.headers.get('x-request-id');
    assert.ok(id);
    await until(
      () => procs.filter((p) => p.logs().some((l) => l.requestId === id)).length >= 3,
      'the id in three logs',
    );
    const roles = procs
      .filter((p) => p.logs().some((l) => l.requestId === id))
      .map((p) => String(p.logs()[0]?.node));
    assert.deepEqual(roles.map((n) => n.split(':')[0]).sort(), ['client', 'proxy', 'worker']);
  });

  test('SIGTERM: a worker finishes its stream, then exits 0', async () => {
    const leaving = await worker('leaving', 20);
    await setEnabled('fast', false);
    const openai = new OpenAI({ baseURL: api, apiKey: 'x', maxRetries: 0 });
    const stream = await openai.chat.completions.create({
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'long' }],
      max_tokens: 40,
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage = 0;
    let signalled = false;
    for await (const chunk of stream) {
      // Signalled once its first token arrived: the worker is surely running it (not only chosen for it).
      if (!signalled && chunk.choices[0]?.delta.content) {
        signalled = true;
        leaving.proc.child.kill('SIGTERM');
      }
      if (chunk.usage) usage = chunk.usage.completion_tokens;
    }
    assert.ok(signalled);
    assert.equal(usage, 40);
    assert.equal(await leaving.proc.exited, 0);
    assert.match(leaving.proc.stdout, /stopped cleanly/);
  });

  test('10x the capacity at once: the excess is refused fast with Retry-After, the admitted complete, memory stays bounded', async () => {
    await worker('capped', 20, { maxConcurrent: 10 }); // 'fast' is still out of routing (previous test)
    const rss = async () => {
      const text = await (await fetch(`${proxyStats}/metrics`)).text();
      return Number(/^cocoon_process_resident_memory_bytes\S* (\d+)/m.exec(text)?.[1]);
    };
    const before = await rss();
    const results = await Promise.all(
      Array.from({ length: 100 }, () =>
        post(`${api}/chat/completions`, {
          model: 'cocoon-tiny',
          messages: [{ role: 'user', content: 'x' }],
          max_tokens: 20,
        }),
      ),
    );
    const served = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status !== 200);
    assert.ok(served.length >= 10, `served ${served.length}`);
    assert.ok(refused.length >= 50, `refused ${refused.length}`);
    for (const r of refused) {
      assert.equal(r.status, 503);
      assert.equal(r.json.error?.code, 'workers_busy');
      assert.equal(r.headers.get('retry-after'), '1');
    }
    assert.equal((await stats()).requests.inFlight, 0);
    const grown = (await rss()) - before;
    assert.ok(grown < 64 * 1024 * 1024, `proxy RSS grew by ${Math.round(grown / 1048576)} MiB`);
  });
});

/** A worker process's stats URL, from the `stats …/stats` part of its start-up line. */
async function statsUrlOf(procs: DaemonProcess[], name: string): Promise<string> {
  const p = procs.find((x) => x.stdout.includes(`worker '${name}'`));
  const m = /stats (http:\/\/[^\s]+)\/stats/.exec(p?.stdout ?? '');
  if (!m) throw new Error(`no stats URL for ${name}`);
  return m[1]!;
}
