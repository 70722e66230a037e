import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Address } from '@ton/core';
import { TonClient } from '@ton/ton';
import { RootContract } from '../../src/chain/contracts/root-contract.ts';
import { LOCAL_PARAMS } from '../../src/local/local-ton.ts';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '../../bin/cocoon.mjs');

describe('the cocoon command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('`cocoon local` starts a network and shows a real completion through it', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        bin,
        'local',
        '--http-port',
        '0',
        '--no-serve',
        '--token-delay-ms',
        '0',
        '--chain-port',
        '0',
        '--data-dir',
        join(dir, 'local'),
      ],
      { timeout: 60_000 },
    );
    assert.match(stdout, /DEV TRUST/);
    assert.match(stdout, /OpenAI base URL: http:\/\/127\.0\.0\.1:\d+\/v1/);
    assert.match(stdout, /\(\d+ prompt \+ [1-9]\d* completion tokens, via client -> proxy -> worker\)/);
    assert.match(stdout, /cost 0\.\d{9} TON, signed by the client/);
    assert.match(stdout, /client contract: balance 10\.000000000 TON, stake 1\.000000000 TON/);
  });

  test('`cocoon chain` serves the embedded chain with a root that TonClient can read', async () => {
    const child = spawn(process.execPath, [bin, 'chain', '--port', '0', '--data-dir', join(dir, 'chain')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      let text = '';
      await new Promise<void>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`cocoon chain exited with ${code}`)));
        child.stdout!.on('data', (d: Buffer) => {
          text += d.toString();
          if (text.includes('give daemons')) resolve();
        });
      });
      const endpoint = /at (http:\S+)/.exec(text)![1]!;
      const root = Address.parse(/root (\S+)/.exec(text)![1]!);
      const client = new TonClient({ endpoint: `${endpoint}/jsonRPC` });
      const params = await client.open(RootContract.fromAddress(root)).getParams();
      assert.equal(params.pricePerToken, LOCAL_PARAMS.pricePerToken);
    } finally {
      child.kill('SIGTERM');
    }
  });

  test('every role explains its options in --help', async () => {
    for (const [role, flag] of [
      ['client', '--http-port'],
      ['proxy', '--worker-port'],
      ['worker', '--upstream'],
      ['local', '--no-serve'],
    ]) {
      const { stdout } = await run(process.execPath, [bin, role!, '--help']);
      assert.match(stdout, new RegExp(flag!));
      assert.match(stdout, /--config|--data-dir/);
    }
  });

  test('a bad config file is refused with a message naming the key', async () => {
    const cfg = join(dir, 'bad.json');
    writeFileSync(cfg, JSON.stringify({ httpPort: 'not-a-port' }));
    await assert.rejects(
      run(process.execPath, [bin, 'client', '--config', cfg]),
      (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 2);
        assert.match(e.stderr, /httpPort/);
        return true;
      },
    );
  });

  test('an unknown config key is refused (exit 2) by the daemons and the money commands', async () => {
    const cfg = join(dir, 'typo.json');
    writeFileSync(cfg, JSON.stringify({ maxConcurent: 2 }));
    for (const args of [
      ['worker', '--config', cfg],
      ['worker', 'earnings', '--config', cfg],
    ]) {
      await assert.rejects(run(process.execPath, [bin, ...args]), (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 2, args.join(' '));
        assert.equal(
          e.stderr,
          `cocoon: unknown key 'maxConcurent' in ${cfg}; did you mean 'maxConcurrent'?\n`,
        );
        return true;
      });
    }
  });

  test('a backend flag for the other backend is refused (exit 2)', async () => {
    await assert.rejects(
      run(process.execPath, [bin, 'worker', '--upstream', 'http://127.0.0.1:8000/v1', '--stats-port', 'off']),
      (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 2);
        assert.match(
          e.stderr,
          /key 'backend\.upstream' in the flags is an option of backend 'openai-compatible', but backend\.kind is 'builtin' \(the default\)/,
        );
        return true;
      },
    );
  });
});
