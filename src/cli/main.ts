import { Command, Option } from 'commander';
import type { buildClient, buildProxy, buildWorker } from '../config/build-nodes.ts';
import {
  ConfigError,
  clientConfigSchema,
  loadConfig,
  proxyConfigSchema,
  workerConfigSchema,
} from '../config/config.ts';
import { addDaemonFlags, flagsToConfig } from '../config/flags.ts';
import { LOCAL_DEFAULTS } from '../config/local-defaults.ts';
import { choicesAt } from '../config/strict.ts';

/**
 * `cocoon` — one command for every role. Each daemon reads defaults < `--config file.json` < flags;
 * the config file uses the same keys as the flags in camelCase (e.g. {"httpPort": 10000}), a worker's
 * backend options under "backend" ({"backend": {"kind": "openai-compatible", "upstream": "…"}}). The
 * daemons' flags, and the defaults their help shows, come from src/config (flags.ts, config.ts).
 */

/** The daemons' code (backends, chain, payments) loads only when a daemon starts: other commands stay quick. */
const nodes = () => import('../config/build-nodes.ts');

const program = new Command('cocoon')
  .description('Cocoon: confidential, paid LLM inference on TON. Client, proxy and worker daemons.')
  .showHelpAfterError();

interface Daemon {
  drain(timeoutMs: number): Promise<boolean>;
  stop(): Promise<void>;
}

/**
 * Runs a daemon until SIGINT/SIGTERM, then shuts it down gracefully: requests in flight finish (at most
 * `drainSeconds`), state is flushed, exit 0. A second signal stops at once.
 */
async function runUntilSignal(
  start: () => Promise<Daemon>,
  banner: (n: never) => string,
  drainSeconds: number,
) {
  // Listening before start: a signal during start-up (a proxy waiting for its chain at boot may wait for
  // ever) exits at once; nothing is serving yet, and what start() wrote so far is durable.
  const signal = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  const started = start();
  const first = await Promise.race([started, signal]);
  if (typeof first === 'string') {
    process.stdout.write(`${first} during start-up: exiting\n`);
    process.exit(0);
  }
  const node = first;
  process.stdout.write(`${banner(node as never)}\n`);
  await signal;
  const now = () => void node.stop().finally(() => process.exit(1));
  process.once('SIGINT', now);
  process.once('SIGTERM', now);
  process.stdout.write(`${await signal}: draining requests in flight (up to ${drainSeconds} s)...\n`);
  const drained = await node.drain(drainSeconds * 1000);
  await node.stop();
  process.stdout.write(drained ? 'stopped cleanly\n' : 'stopped with requests still in flight\n');
  process.exit(0);
}

addDaemonFlags(
  program.command('proxy').description('run a proxy: accepts workers and clients, routes requests'),
  'proxy',
).action(async (o) => {
  const c = loadConfig(proxyConfigSchema, o.config, flagsToConfig('proxy', o));
  await runUntilSignal(
    async () => (await (await nodes()).buildProxy(c)).start(),
    (p: Awaited<ReturnType<typeof buildProxy>>) =>
      `proxy '${c.name}' [trust: ${c.trust}] workers on ${c.host}:${p.workerPort}, clients on ${c.host}:${p.clientPort}` +
      (p.contractAddress ? `, contract ${p.contractAddress}` : '') +
      (p.statsUrl ? `, stats ${p.statsUrl}/stats` : ''),
    c.drainSeconds,
  );
});

addDaemonFlags(
  program
    .command('worker')
    .description('run a worker: serves a model to proxies through an inference backend'),
  'worker',
).action(async (o) => {
  const c = loadConfig(workerConfigSchema, o.config, flagsToConfig('worker', o));
  await runUntilSignal(
    async () => (await (await nodes()).buildWorker(c)).start(),
    (w: Awaited<ReturnType<typeof buildWorker>>) =>
      `worker '${c.name}' [trust: ${c.trust}] serving ${c.models.join(', ')} via ${c.backend.kind} to ` +
      `${c.proxy.map((p) => `${p.host}:${p.port}`).join(', ')}` +
      (w.statsUrl ? `, stats ${w.statsUrl}/stats` : ''),
    c.drainSeconds,
  );
});

addDaemonFlags(
  program.command('client').description('run a client: the OpenAI API on localhost, through a proxy'),
  'client',
).action(async (o) => {
  const c = loadConfig(clientConfigSchema, o.config, flagsToConfig('client', o));
  await runUntilSignal(
    async () => (await (await nodes()).buildClient(c)).start(),
    (cl: Awaited<ReturnType<typeof buildClient>>) =>
      `client '${c.name}' [trust: ${c.trust}] OpenAI API at ${cl.baseUrl}, via ${c.proxy.length > 1 ? 'proxies' : 'proxy'} ${c.proxy.map((p) => `${p.host}:${p.port}`).join(', ')}` +
      (c.proxiesFromRoot ? ' and those registered in the root' : '') +
      (c.e2e ? '' : '; END-TO-END ENCRYPTION OFF (e2e: false): the proxy reads prompts and completions') +
      (c.receipts ? '' : '; RECEIPTS OFF (receipts: false): nothing binds a reply to the worker checked'),
    c.drainSeconds,
  );
});

program
  .command('local')
  .description(
    'start a whole local network (proxy, worker with the built-in model, client), show a completion',
  )
  .option('--data-dir <dir>', `where the nodes keep their keys (default ./${LOCAL_DEFAULTS.dataDir})`)
  .option(
    '--http-port <port>',
    `client OpenAI API port (default ${LOCAL_DEFAULTS.httpPort}; 0 = any free port)`,
  )
  .option('--token-delay-ms <ms>', `built-in model delay per token (default ${LOCAL_DEFAULTS.tokenDelayMs})`)
  .option('--prompt <text>', 'the prompt of the demo completion')
  .option('--no-serve', 'exit after the demo completion instead of serving until Ctrl-C')
  .option(
    '--chain-port <port>',
    `port of the embedded TON chain API (default ${LOCAL_DEFAULTS.chainPort}; 0 = any free port)`,
  )
  .option('--free', 'run without payments (no chain, no charges)')
  .addOption(
    new Option('--log-level <level>', 'log level').choices(choicesAt(proxyConfigSchema, ['logLevel'])!),
  )
  .action(async (f) => (await import('./local.ts')).runLocal(f));

program
  .command('chain')
  .description('run the embedded TON chain (sandbox, dev only) for daemons started separately, with a root')
  .option(
    '--data-dir <dir>',
    `where the chain state and governance wallet live (default ./${LOCAL_DEFAULTS.dataDir})`,
  )
  .option('--port <port>', `port of its toncenter-style API (default ${LOCAL_DEFAULTS.chainPort})`)
  .action(async (o: { dataDir?: string; port?: string }) => {
    const { startLocalTon } = await import('../local/local-ton.ts');
    const ton = await startLocalTon(
      o.dataDir ?? LOCAL_DEFAULTS.dataDir,
      o.port === undefined ? LOCAL_DEFAULTS.chainPort : Number(o.port),
    );
    process.stdout.write(
      `local TON chain (sandbox, dev only) at ${ton.endpoint}\nroot ${ton.root.toString()}\n` +
        `give daemons: --config with {"chainEndpoint": "${ton.endpoint}", "root": "${ton.root.toString()}"}\n`,
    );
    await new Promise<void>((r) => {
      process.once('SIGINT', r);
      process.once('SIGTERM', r);
    });
    await ton.stop();
  });

// Money on TON: wallets, the root, and subcommands of the roles (`cocoon client deposit`, …). A role given
// no subcommand still runs its daemon. Each group loads only when its command is run (or for help):
// loading all of them costs about a second of start-up, paid by every command.
type Register = (program: Command) => void;
const GROUPS: [string[], () => Promise<Register>][] = [
  [['wallet'], async () => (await import('./wallet-commands.ts')).registerWalletCommands],
  [['root', 'deploy-root'], async () => (await import('./root-commands.ts')).registerRootCommands],
  [['client'], async () => (await import('./client-money-commands.ts')).registerClientMoneyCommands],
  [['worker', 'proxy'], async () => (await import('./earnings-commands.ts')).registerEarningsCommands],
  [['model-hash'], async () => (await import('./model-commands.ts')).registerModelCommands],
  [['worker'], async () => (await import('./worker-admin-commands.ts')).registerWorkerAdminCommands],
  [['worker', 'proxy'], async () => (await import('./check-commands.ts')).registerCheckCommands],
  [['receipts'], async () => (await import('./receipts-commands.ts')).registerReceiptsCommands],
];
/** The command named on the command line (its first word that is no option): its groups, or all of them. */
const named = process.argv.slice(2).find((a) => !a.startsWith('-'));
const needed = GROUPS.some(([names]) => named !== undefined && names.includes(named))
  ? GROUPS.filter(([names]) => names.includes(named!))
  : GROUPS;
for (const [, load] of needed) (await load())(program);

program.parseAsync().catch((err) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`cocoon: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`cocoon: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
