import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ADMIN_TOKEN_FILE } from '../worker/worker-admin.ts';

interface AdminFlags {
  dataDir?: string;
  statsUrl?: string;
}

/**
 * `cocoon worker admin disable|enable|coefficient N`: changes a running worker live through its admin
 * endpoint (on its stats server), with the token from its data directory.
 */
export function registerWorkerAdminCommands(program: Command): void {
  const worker = program.commands.find((c) => c.name() === 'worker');
  if (!worker) throw new Error("no 'worker' command to add to");
  worker
    .command('admin <action> [value]')
    .description(
      'change a running worker live: disable (out of routing), enable, coefficient <n> (1000 = 1x)',
    )
    .option(
      '--data-dir <dir>',
      "the worker's data directory, holding its admin token (default ~/.cocoon/worker)",
    )
    .option('--stats-url <url>', "the worker's stats server (default http://127.0.0.1:12000)")
    .action(async (action: string, value: string | undefined, _o: AdminFlags, cmd: Command) => {
      // `worker` itself takes --data-dir, so commander may hand it to the parent: read both.
      const o = cmd.optsWithGlobals() as AdminFlags;
      const fail = (msg: string): never => {
        process.stderr.write(`cocoon: ${msg}\n`);
        process.exit(2);
      };
      let path: string;
      let body: string | undefined;
      if (action === 'enable' || action === 'disable') {
        path = `/admin/${action}`;
      } else if (action === 'coefficient') {
        if (!value || !/^\d+$/.test(value)) fail('coefficient needs an integer, e.g. 1500 for 1.5x');
        path = '/admin/coefficient';
        body = JSON.stringify({ coefficient: Number(value) });
      } else {
        return fail(`unknown action '${action}': use disable, enable or coefficient <n>`);
      }
      const dataDir = o.dataDir ?? join(homedir(), '.cocoon', 'worker');
      const token = (
        await readFile(join(dataDir, ADMIN_TOKEN_FILE), 'utf8').catch(() =>
          fail(`no admin token in ${dataDir} (is this the worker's --data-dir, and has it run?)`),
        )
      ).trim();
      const base = (o.statsUrl ?? 'http://127.0.0.1:12000').replace(/\/$/, '');
      const res = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body ? { body } : {}),
      }).catch((err: Error) => fail(`cannot reach the worker at ${base}: ${err.message}`));
      const text = await res.text();
      if (!res.ok) fail(`the worker refused (${res.status}): ${text}`);
      const s = JSON.parse(text) as { enabled: boolean; coefficient: number };
      process.stdout.write(`worker ${s.enabled ? 'enabled' : 'disabled'}, coefficient ${s.coefficient}\n`);
    });
}
