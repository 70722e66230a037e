import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';

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
});
