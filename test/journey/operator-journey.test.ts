import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Address } from '@ton/core';
import { Op, STORAGE_RESERVE } from '../../src/chain/contracts/opcodes.ts';
import { parseTon } from '../../src/chain/money.ts';
import { cocoon, ok } from '../cli/run-cocoon.ts';
import { post, until } from '../e2e/harness.ts';
import { DaemonProcess, freePort } from '../faults/daemon-process.ts';
import { auditAccounts } from './chain-audit.ts';

/**
 * The operator's journey (issue 13), as docs/operators.md tells it: every role a separate process, every
 * step a `cocoon` command. Governance deploys a root and sets its params and allow-lists; two proxies stake
 * and are registered; three workers and two clients join; paid requests go through both proxies; workers
 * redeem their payouts and proxies withdraw their commission; a client closes and is refunded. Then an
 * auditor reads every wallet's and contract's transactions from the chain: value is conserved to the
 * nanoton, and every figure the CLI printed is what the chain shows.
 */

const bin = join(import.meta.dirname, '../../bin/cocoon.mjs');
/** The built-in model under a content-hash identity (a real model's comes from `cocoon model-hash <dir>`). */
const MODEL = `cocoon-tiny@builtin:${createHash('sha256').update('cocoon-tiny').digest('hex')}`;
const PRICE = '0.00001';
const WORKER_FEE = '0.000008';
const nano = parseTon;

/** `cocoon … --json`, which must succeed; TON amounts parsed to nanoton where asked. */
async function json<T = Record<string, unknown>>(...args: string[]): Promise<T> {
  return JSON.parse(ok(await cocoon(...args, '--json'))) as T;
}

/** `cocoon <role> check --json`: exit 1 means it found a problem, which the JSON lists. */
async function check(role: 'worker' | 'proxy', file: string): Promise<Check> {
  const r = await cocoon(role, 'check', '--config', file, '--json');
  assert.ok(r.code === 0 || r.code === 1, `exit ${r.code}: ${r.stderr}`);
  const c = JSON.parse(r.stdout) as Check;
  assert.equal(c.exitCode, r.code);
  return c;
}

/** `cocoon chain` as its own process: resolves once it listens. */
async function startChain(dataDir: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [bin, 'chain', '--data-dir', dataDir, '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('give daemons')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`cocoon chain exited with ${code}: ${stderr}`)));
  });
  return child;
}

interface Check {
  checks: { code?: string; fix?: string; status: string; name: string; message: string }[];
  exitCode: number;
}

/** The `cocoon root allow …` fixes a check printed, as arguments for `cocoon`. */
function allowFixes(c: Check): string[][] {
  return c.checks
    .filter((i) => i.status === 'fail' && i.fix?.includes('cocoon root allow'))
    .map((i) => i.fix!.slice(i.fix!.indexOf('cocoon root allow') + 'cocoon '.length).split(' '));
}

test('the operator journey: a network of separate processes run only by cocoon commands, value conserved to the nanoton', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-journey-'));
  const procs: DaemonProcess[] = [];
  let chainProc: ChildProcess | null = null;
  after(() => {
    for (const p of procs) p.child.kill('SIGKILL');
    chainProc?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  // A step runs only if every step before it passed: the journey is one story.
  let broken: string | null = null;
  const step = (name: string, fn: () => Promise<void>) =>
    t.test(name, { skip: broken ? `after '${broken}' failed` : false }, async () => {
      try {
        await fn();
      } catch (err) {
        broken = name;
        throw err;
      }
    });
  const chainPort = await freePort();
  const endpoint = `http://127.0.0.1:${chainPort}`;
  const at = (name: string) => join(dir, name);
  const ep = ['--chain-endpoint', endpoint];
  const gov = ['--data-dir', at('governance'), ...ep];
  let root = '';
  const funded = new Map<string, bigint>();
  const fund = async (name: string, ton: string) => {
    const r = await json<{ balance: string }>('wallet', 'fund', ton, '--data-dir', at(name), ...ep);
    funded.set(name, (funded.get(name) ?? 0n) + nano(ton));
    assert.equal(nano(r.balance), funded.get(name));
  };
  const config = (name: string, c: Record<string, unknown>) => {
    const file = at(`${name}.json`);
    writeFileSync(file, JSON.stringify({ dataDir: at(name), chainEndpoint: endpoint, root, ...c }));
    return file;
  };

  await step('1. chain, governance wallet, root deployed with its params', async () => {
    chainProc = await startChain(at('chain'), chainPort);
    await fund('governance', '50');
    const deployed = await json<{ root: string }>(
      'root',
      'deploy',
      ...gov,
      '--price-per-token',
      '0.000012',
      '--worker-fee-per-token',
      WORKER_FEE,
      '--client-close-delay',
      '12',
      '--proxy-close-delay',
      '2',
      '--min-client-stake',
      '0.5',
      '--min-proxy-stake',
      '2',
    );
    root = deployed.root;
    const set = await json<{ state: { params: { pricePerToken: string; paramsVersion: number } } }>(
      'root',
      'set-params',
      ...gov,
      '--root',
      root,
      '--price-per-token',
      PRICE,
    );
    assert.equal(set.state.params.pricePerToken, '0.000010000');
    assert.equal(set.state.params.paramsVersion, 2);
  });

  const names = {
    proxies: ['proxy-a', 'proxy-b'],
    workers: ['worker-1', 'worker-2', 'worker-3'],
    clients: ['client-1', 'client-2'],
  };
  const ports = {
    worker: [await freePort(), await freePort()],
    client: [await freePort(), await freePort()],
    api: [await freePort(), await freePort()],
  };
  const files: Record<string, string> = {};
  const contracts: Record<string, string> = {};

  await step('allow-lists set from what the nodes’ checks report', async () => {
    await Promise.all([
      ...names.proxies.map((n) => fund(n, '10')),
      ...names.workers.map((n) => fund(n, '1')),
      ...names.clients.map((n) => fund(n, '5')),
    ]);
    names.proxies.forEach((n, i) => {
      files[n] = config(n, {
        name: n,
        workerPort: ports.worker[i],
        clientPort: ports.client[i],
        statsPort: 'off',
        trustFromRoot: true,
        stakeTon: '2',
        settleIntervalSeconds: 1,
        payoutIntervalSeconds: 1,
        logLevel: 'warn',
      });
    });
    // worker-1 serves proxy A, worker-2 proxy B, worker-3 both. They redeem only when told (below).
    const workerProxies = [[0], [1], [0, 1]];
    names.workers.forEach((n, i) => {
      files[n] = config(n, {
        name: n,
        proxy: workerProxies[i]!.map((p) => `127.0.0.1:${ports.worker[p]}`),
        models: [MODEL],
        backend: { kind: 'builtin', tokenDelayMs: 20 },
        statsPort: 'off',
        trustFromRoot: true,
        payoutAmountTon: '1000',
        payoutIntervalSeconds: 3600,
        logLevel: 'warn',
      });
    });
    names.clients.forEach((n, i) => {
      files[n] = config(n, {
        name: n,
        httpPort: ports.api[i],
        proxy: [`127.0.0.1:${ports.client[i]}`],
        trustFromRoot: true,
        logLevel: 'warn',
      });
    });
    const [workerCheck, proxyCheck] = await Promise.all([
      check('worker', files['worker-1']!),
      check('proxy', files['proxy-a']!),
    ]);
    const fixes = [...allowFixes(workerCheck), ...allowFixes(proxyCheck)];
    assert.deepEqual(
      fixes.map((f) => f[2]).sort(),
      ['model', 'proxy-image', 'worker-image'],
      JSON.stringify([workerCheck, proxyCheck]),
    );
    for (const f of fixes) await json(...f, '--data-dir', at('governance'));
    const shown = await json<{ allowLists: Record<string, string[]> }>(
      'root',
      'show',
      ...gov,
      '--root',
      root,
    );
    assert.equal(Object.values(shown.allowLists).flat().length, 3, JSON.stringify(shown));
  });

  await step('2. two proxies staked and registered, three workers, two clients with deposits', async () => {
    const before = await Promise.all(
      names.proxies.map((n) =>
        json<{ contract: string; deployed: boolean }>('proxy', 'show', '--config', files[n]!),
      ),
    );
    for (const [i, n] of names.proxies.entries()) {
      assert.equal(before[i]!.deployed, false);
      contracts[n] = before[i]!.contract;
      // Governance registers each proxy (one wallet: one message after the other).
      await json(
        'root',
        'register-proxy',
        contracts[n]!,
        `127.0.0.1:${ports.client[i]}`,
        ...gov,
        '--root',
        root,
      );
    }
    const proxies = await Promise.all(names.proxies.map((n) => DaemonProcess.startFile('proxy', files[n]!)));
    procs.push(...proxies);
    for (const [i, p] of proxies.entries())
      assert.match(p.stdout, new RegExp(`contract ${contracts[names.proxies[i]!]}`));
    const shown = await Promise.all(
      names.proxies.map((n) =>
        json<{ deployed: boolean; stake: string; registered: unknown }>(
          'proxy',
          'show',
          '--config',
          files[n]!,
        ),
      ),
    );
    for (const show of shown) {
      assert.equal(show.deployed, true);
      assert.equal(show.stake, '2.000000000');
      assert.ok(show.registered);
    }
    const deposits = await Promise.all(
      names.clients.map((n) => json<{ balance: string }>('client', 'deposit', '3', '--config', files[n]!)),
    );
    for (const d of deposits) assert.equal(d.balance, '3.000000000');
    // Workers and clients start together: a client waits for a worker like any request would.
    procs.push(
      ...(await Promise.all([
        ...names.workers.map((n) => DaemonProcess.startFile('worker', files[n]!)),
        ...names.clients.map((n) => DaemonProcess.startFile('client', files[n]!)),
      ])),
    );
    // Every node's preflight check now passes: lists, proxies, contracts, wallets.
    const checks = await Promise.all(
      [...names.workers, ...names.proxies].map((n) =>
        check(n.startsWith('proxy') ? 'proxy' : 'worker', files[n]!),
      ),
    );
    for (const c of checks)
      assert.equal(c.exitCode, 0, JSON.stringify(c.checks.filter((x) => x.status !== 'ok')));
  });

  // What each client was served: tokens, as the OpenAI replies counted them.
  const tokens = [0n, 0n];
  await step('3. paid requests through both proxies; earnings shown by the CLI', async () => {
    // Several at once, so the proxies spread them over their workers.
    const ask = async (i: number, k: number) => {
      const r = await post(`http://127.0.0.1:${ports.api[i]}/v1/chat/completions`, {
        model: 'cocoon-tiny',
        messages: [{ role: 'user', content: `journey ${i}.${k}: say something` }],
        max_tokens: 8 + k,
      });
      assert.equal(r.status, 200, r.text);
      tokens[i]! += BigInt((r.json as { usage: { total_tokens: number } }).usage.total_tokens);
    };
    await Promise.all(names.clients.flatMap((_, i) => [0, 1, 2, 3, 4, 5].map((k) => ask(i, k))));
    // The proxies redeem what each client signed: the client's contract shows it charged.
    for (const [i, n] of names.clients.entries()) {
      const want = tokens[i]! * nano(PRICE);
      await until(
        async () =>
          nano((await json<{ charged: string }>('client', 'balance', '--config', files[n]!)).charged) ===
          want,
        `${n} charged ${want} nanoton`,
        30_000,
      );
    }
  });

  interface ProxyEarnings {
    stake: string;
    pool: string;
    commission: string;
    commissionMaturing: string;
    nextMaturity: number | null;
    unredeemedClientAuths: string;
    unredeemedWorkerPayouts: string;
  }
  const earnings = (n: string) => json<ProxyEarnings>('proxy', 'earnings', '--config', files[n]!);
  interface WorkerEarnings {
    contracts: { contract: string; proxyContract: string; signed: string; paid: string; due: string }[];
    totalDue: string;
  }
  const workerContracts = new Map<string, WorkerEarnings['contracts']>();
  await step('worker payouts redeemed with cocoon worker payout', async () => {
    // The proxies sign payouts every second; each worker redeems what it holds until the pools are empty.
    let last: unknown = null;
    await until(
      async () => {
        const paid = await Promise.all(
          names.workers.map((n) => json('worker', 'payout', '--config', files[n]!)),
        );
        const e = await Promise.all(names.proxies.map(earnings));
        last = { paid, e };
        return e.every((x) => nano(x.pool) === 0n && nano(x.unredeemedWorkerPayouts) === 0n);
      },
      'every proxy pool paid out to its workers and commission',
      40_000,
    ).catch((err) => {
      throw new Error(
        `${(err as Error).message}: ${JSON.stringify(last)}\n${procs.map((p) => p.stderr.slice(-1500)).join('\n')}`,
      );
    });
    for (const n of names.workers) {
      const e = await json<WorkerEarnings>('worker', 'earnings', '--config', files[n]!);
      assert.equal(nano(e.totalDue), 0n, JSON.stringify(e));
      for (const c of e.contracts) assert.equal(c.paid, c.signed);
      workerContracts.set(n, e.contracts);
    }
    // Each proxy's workers got exactly the worker fee of the tokens its client was served.
    for (const [i, n] of names.proxies.entries()) {
      const paid = [...workerContracts.values()]
        .flat()
        .filter((c) => c.proxyContract === contracts[n])
        .reduce((a, c) => a + nano(c.paid), 0n);
      assert.equal(paid, tokens[i]! * nano(WORKER_FEE), n);
    }
  });

  let refunded = 0n;
  const withdrawn = [0n, 0n];
  await step('4. commission withdrawn; a client closes and is refunded', async () => {
    await Promise.all(procs.splice(procs.length - 2).map((c) => c.kill('SIGTERM')));
    const closing = await json<{ action: string; unlockAt: number }>(
      'client',
      'close',
      '--config',
      files['client-2']!,
    );
    assert.equal(closing.action, 'request_close');
    for (const [i, n] of names.proxies.entries()) {
      let e = await earnings(n);
      if (e.nextMaturity !== null) {
        await new Promise((r) => setTimeout(r, Math.max(0, e.nextMaturity! * 1000 - Date.now()) + 1000));
        e = await earnings(n);
      }
      assert.equal(nano(e.commissionMaturing), 0n, JSON.stringify(e));
      const out = await json<{ amount: string }>('proxy', 'payout', '--config', files[n]!);
      withdrawn[i] = nano(out.amount);
      assert.equal(withdrawn[i], tokens[i]! * (nano(PRICE) - nano(WORKER_FEE)), n);
    }
    await new Promise((r) => setTimeout(r, Math.max(0, closing.unlockAt * 1000 - Date.now()) + 1000));
    const closed = await json<{ action: string; refunded: string }>(
      'client',
      'close',
      '--config',
      files['client-2']!,
    );
    assert.equal(closed.action, 'close');
    refunded = nano(closed.refunded);
    assert.equal(refunded, nano('3') - tokens[1]! * nano(PRICE));
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGTERM')));
  });

  await step('value is conserved to the nanoton across every wallet and contract', async () => {
    const accounts = new Map<string, Address>();
    const everyone = [...names.proxies, ...names.workers, ...names.clients, 'governance'];
    const wallets = await Promise.all(
      everyone.map((n) => json<{ address: string }>('wallet', 'show', '--data-dir', at(n), ...ep)),
    );
    for (const [i, n] of everyone.entries()) accounts.set(`${n} wallet`, Address.parse(wallets[i]!.address));
    accounts.set('root', Address.parse(root));
    for (const n of names.proxies) accounts.set(`${n} contract`, Address.parse(contracts[n]!));
    const clientContracts = await Promise.all(
      names.clients.map((n) =>
        json<{ contract: string; balance: string; charged: string; state: string }>(
          'client',
          'balance',
          '--config',
          files[n]!,
        ),
      ),
    );
    for (const [i, n] of names.clients.entries())
      accounts.set(`${n} contract`, Address.parse(clientContracts[i]!.contract));
    for (const [n, cs] of workerContracts)
      for (const c of cs) accounts.set(`${n} contract ${c.contract}`, Address.parse(c.contract));

    const audit = await auditAccounts(endpoint, accounts);
    assert.deepEqual(audit.unexplained, new Map(), 'every balance is explained by its transactions');
    assert.deepEqual(audit.outflows, new Map(), 'nothing left the network’s accounts');
    const minted = [...funded.values()].reduce((a, b) => a + b, 0n);
    assert.equal(audit.inflows.size, 1, 'only the faucet put value in');
    assert.equal([...audit.inflows.values()][0], minted, 'exactly what cocoon wallet fund minted');
    const held = [...audit.balances.values()].reduce((a, b) => a + b, 0n);
    assert.equal(held + audit.fees, minted, 'minted = held + fees: nothing in flight, nothing lost');

    // Each party got exactly what the CLI said, and the chain agrees.
    const wallet = (n: string) => accounts.get(`${n} wallet`)!;
    for (const [n, cs] of workerContracts) {
      assert.equal(
        audit.received(wallet(n), Op.workerPaid),
        cs.reduce((a, c) => a + nano(c.paid), 0n),
        n,
      );
      for (const c of cs) assert.equal(audit.balances.get(`${n} contract ${c.contract}`), STORAGE_RESERVE);
    }
    for (const [i, n] of names.proxies.entries()) {
      assert.equal(audit.received(wallet(n), Op.proxyPaid), withdrawn[i], n);
      const e = await earnings(n);
      assert.equal(nano(e.pool) + nano(e.commission) + nano(e.commissionMaturing), 0n);
      assert.equal(audit.balances.get(`${n} contract`), nano(e.stake) + STORAGE_RESERVE, n);
    }
    const [open, closed] = clientContracts;
    assert.equal(nano(open!.balance) + nano(open!.charged), nano('3'));
    assert.equal(audit.balances.get('client-1 contract'), nano(open!.balance) + STORAGE_RESERVE);
    assert.equal(closed!.state, 'closed');
    assert.equal(audit.received(wallet('client-2'), Op.clientRefund), refunded);
    t.diagnostic(
      `journey: ${tokens[0]! + tokens[1]!} tokens served, ${workerContracts.size} workers paid through ` +
        `${[...workerContracts.values()].flat().length} worker contracts, ${accounts.size} accounts audited, ` +
        `${minted} nanoton minted = ${held} held + ${audit.fees} fees`,
    );
  });
});
