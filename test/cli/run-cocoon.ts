import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const bin = join(import.meta.dirname, '../../bin/cocoon.mjs');

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `cocoon` command as its own process; resolves with its exit code and output whatever the code. */
export async function cocoon(...args: string[]): Promise<Result> {
  try {
    const r = await execFileP(process.execPath, [bin, ...args], { timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** The output of a command that must succeed. */
export function ok(r: Result): string {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** A failure: the given exit code and exactly one line on stderr. */
export function failed(r: Result, code: number): string {
  assert.equal(r.code, code, `expected exit ${code}, got ${r.code}; stdout: ${r.stdout} stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected on stderr, got: ${r.stderr}`);
  assert.match(lines[0]!, /^cocoon: /);
  return lines[0]!;
}
