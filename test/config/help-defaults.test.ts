import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Option } from 'commander';
import { DAEMONS, type DaemonRole } from '../../src/config/flags.ts';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '../../bin/cocoon.mjs');

/** The options section of `--help`, one entry per flag with its whole (unwrapped) description. */
function helpOptions(help: string): Map<string, string> {
  const section = help.split(/^Options:$/m)[1]!.split(/^\S/m)[0]!;
  const out = new Map<string, string>();
  let last: string | undefined;
  for (const line of section.split('\n')) {
    const m = /^ {2}(?:-\w, )?(--[\w-]+)(?: <[^>]+>)?\s+(.*)$/.exec(line);
    if (m) {
      last = m[1]!;
      out.set(last, m[2]!);
    } else if (last && line.trim()) {
      out.set(last, `${out.get(last)} ${line.trim()}`);
    }
  }
  return out;
}

/** The value at a dotted key of the config `{}` parses to: the schema's own default. */
function schemaDefault(role: DaemonRole, key: string): unknown {
  let v: unknown = DAEMONS[role].schema.parse({});
  for (const k of key.split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
  return v;
}

/** How help should show it (host:port, off for null, ~ for home); undefined: it shows no default. */
function expected(v: unknown): string | undefined {
  if (v === undefined || v === false || (Array.isArray(v) && v.length === 0)) return undefined;
  if (v === null) return 'off';
  if (Array.isArray(v)) return v.map(expected).join(', ');
  if (typeof v === 'object') {
    const a = v as { host: string; port: number };
    return `${a.host}:${a.port}`;
  }
  return String(v).replace(homedir(), '~');
}

describe('daemon --help shows the defaults of the config schema', () => {
  for (const role of Object.keys(DAEMONS) as DaemonRole[]) {
    test(`cocoon ${role} --help`, async () => {
      const { stdout } = await run(process.execPath, [bin, role, '--help']);
      const shown = helpOptions(stdout);
      const flags = DAEMONS[role].flags;
      // Every option of the daemon comes from the flag table (none with a hand-written default).
      assert.deepEqual(
        [...shown.keys()].filter((f) => f !== '--help').sort(),
        flags.map((f) => new Option(f.flags).long!).sort(),
      );
      for (const f of flags) {
        const name = new Option(f.flags).long!;
        const text = shown.get(name)!;
        assert.doesNotMatch(f.help, /default/, `${name}: the help text must not write its default`);
        const want = f.key === undefined ? undefined : expected(schemaDefault(role, f.key));
        if (want === undefined) {
          assert.doesNotMatch(text, /\(default /, `${name} has no default in the schema`);
        } else {
          assert.ok(text.includes(`(default ${want})`), `${name}: expected "(default ${want})" in "${text}"`);
        }
      }
    });
  }

  test('choices come from the schema too', async () => {
    const { stdout } = await run(process.execPath, [bin, 'worker', '--help']);
    const shown = helpOptions(stdout);
    assert.match(shown.get('--backend')!, /\(choices: "builtin", "openai-compatible"\)/);
    assert.match(
      shown.get('--log-level')!,
      /\(choices: "trace", "debug", "info", "warn", "error", "silent"\)/,
    );
  });
});
