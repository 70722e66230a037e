import type { Command } from 'commander';
import { ConfigError, loadConfig, proxyConfigSchema, workerConfigSchema } from '../config/config.ts';
import { addDaemonFlags, flagsToConfig } from '../config/flags.ts';
import { out, printJson, reportError } from './chain-cli.ts';
import { type CheckList, renderChecks } from './check/report.ts';
import type { CheckOptions } from './check/worker-check.ts';

/**
 * `cocoon worker check` and `cocoon proxy check` (issue 13): preflight checks of the node the daemon would
 * run with the same config and flags — its attestation (image hash, models) against the root's allow-lists,
 * the chain, its wallet, and for a worker each configured proxy dialled with its real credentials, for a
 * proxy its ports and contract. Each problem comes with the next command to run. Exit 1 when something
 * blocks the node, 0 otherwise (warnings allowed), 2 when the config itself is invalid.
 */

interface CheckFlags extends Record<string, unknown> {
  config?: string;
  json?: boolean;
  timeout?: string;
}

function checkOptions(f: CheckFlags): CheckOptions {
  const s = f.timeout === undefined ? 5 : Number(f.timeout);
  if (!Number.isFinite(s) || s <= 0)
    throw new ConfigError(`--timeout: expected seconds above 0, got ${f.timeout}`);
  return { timeoutMs: Math.round(s * 1000), settleMs: Math.min(500, Math.round(s * 1000)) };
}

function finish(
  r: { list: CheckList; head: string; json: Record<string, unknown> },
  role: string,
  json: boolean,
) {
  const { list } = r;
  if (json) {
    printJson({
      ...r.json,
      ok: list.exitCode === 0,
      exitCode: list.exitCode,
      problems: list.problems,
      warnings: list.warnings,
      checks: list.items,
    });
  } else {
    out(renderChecks(r.head, list, role));
  }
  return list.exitCode;
}

/** The role's command with its own flags plus --json and --timeout; runs `check` and exits with its code. */
function checkCommand(
  parent: Command,
  role: 'worker' | 'proxy',
  description: string,
  check: (flags: CheckFlags, o: CheckOptions) => Promise<number>,
) {
  addDaemonFlags(parent.command('check').description(description), role)
    .option('--json', 'print the findings as JSON')
    .option('--timeout <seconds>', 'how long each probe (the chain, each proxy) may take (default 5)')
    .action(async (_o: unknown, cmd: Command) => {
      // The role's own flags are parsed by the role's command wherever they appear: read both.
      const f = cmd.optsWithGlobals() as CheckFlags;
      let code: number;
      try {
        code = await check(f, checkOptions(f));
      } catch (err) {
        code = reportError(err);
      }
      process.exit(code);
    });
}

export function registerCheckCommands(program: Command): void {
  const role = (name: string) => {
    const cmd = program.commands.find((c) => c.name() === name);
    if (!cmd) throw new Error(`no '${name}' command to add to`);
    return cmd;
  };
  checkCommand(
    role('worker'),
    'worker',
    "preflight: the worker's image hash and models and whether the root allows them, each proxy dialled " +
      "with the worker's real credentials (accepted, refused and why, unreachable), the chain and the wallet; " +
      'with the fix for each problem; exit 1 if something blocks the worker',
    async (f, o) => {
      const c = loadConfig(workerConfigSchema, f.config, flagsToConfig('worker', f));
      const { checkWorker } = await import('./check/worker-check.ts');
      return finish(await checkWorker(c, o), 'worker', Boolean(f.json));
    },
  );
  checkCommand(
    role('proxy'),
    'proxy',
    "preflight: the proxy's image hash and whether the root allows it, its ports, the chain, its wallet, " +
      'and its contract (deployed, staked, registered in the root); with the fix for each problem; exit 1 ' +
      'if something blocks the proxy',
    async (f, o) => {
      const c = loadConfig(proxyConfigSchema, f.config, flagsToConfig('proxy', f));
      const { checkProxy } = await import('./check/proxy-check.ts');
      return finish(await checkProxy(c, o), 'proxy', Boolean(f.json));
    },
  );
}
