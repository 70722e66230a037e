import { Command, Option } from 'commander';
import type { buildClient, buildProxy, buildWorker } from '../config/build-nodes.ts';
import {
  ConfigError,
  clientConfigSchema,
  loadConfig,
  proxyConfigSchema,
  workerConfigSchema,
} from '../config/config.ts';
import { registerClientMoneyCommands } from './client-money-commands.ts';
import { registerEarningsCommands } from './earnings-commands.ts';
import { registerModelCommands } from './model-commands.ts';
import { registerRootCommands } from './root-commands.ts';
import { registerWalletCommands } from './wallet-commands.ts';
import { registerWorkerAdminCommands } from './worker-admin-commands.ts';

/**
 * `cocoon` — one command for every role. Each daemon reads defaults < `--config file.json` < flags;
 * the config file uses the same keys as the flags in camelCase (e.g. {"httpPort": 10000}).
 */

/** The daemons' code (backends, chain, payments) loads only when a daemon starts: other commands stay quick. */
const nodes = () => import('../config/build-nodes.ts');

const program = new Command('cocoon')
  .description('Cocoon: confidential, paid LLM inference on TON. Client, proxy and worker daemons.')
  .showHelpAfterError();

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];
const common = (cmd: Command) =>
  cmd
    .option('--config <file>', 'JSON config file (keys as the flags, camelCase); flags override it')
    .option('--name <name>', 'node name shown to peers and in stats')
    .option('--data-dir <dir>', 'where the node keeps its identity key and state (default ~/.cocoon/<role>)')
    .option('--drain-seconds <s>', 'on SIGTERM, how long requests in flight may take to finish (default 30)')
    .addOption(
      new Option(
        '--trust <mode>',
        'trust mode: dev = software attestation, no TEE; tdx = Intel TDX (needs --config pccsUrl or collateralFile)',
      ).choices(['dev', 'tdx']),
    )
    .addOption(
      new Option('--log-level <level>', 'log level (JSON logs on stderr)').choices([
        'trace',
        'debug',
        'info',
        'warn',
        'error',
        'silent',
      ]),
    );

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
  // Listening before start: a signal during start-up (opening the ledger, dialling) waits for it to finish.
  const signal = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  const node = await start();
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

common(program.command('proxy').description('run a proxy: accepts workers and clients, routes requests'))
  .option('--host <host>', 'address to listen on (default 127.0.0.1)')
  .option('--worker-port <port>', 'port for workers (default 11001)')
  .option('--client-port <port>', 'port for clients (default 11002)')
  .option('--stats-host <host>', 'address of the stats server (default 127.0.0.1)')
  .option('--stats-port <port>', "stats server port, or 'off' (default 11000)")
  .option('--max-attempts <n>', 'workers one request may try before its first token (default 3)')
  .action(async (o) => {
    const c = loadConfig(proxyConfigSchema, o.config, { ...o, config: undefined });
    await runUntilSignal(
      async () => (await (await nodes()).buildProxy(c)).start(),
      (p: Awaited<ReturnType<typeof buildProxy>>) =>
        `proxy '${c.name}' [trust: ${c.trust}] workers on ${c.host}:${p.workerPort}, clients on ${c.host}:${p.clientPort}` +
        (p.statsUrl ? `, stats ${p.statsUrl}/stats` : ''),
      c.drainSeconds,
    );
  });

common(
  program
    .command('worker')
    .description('run a worker: serves a model to proxies through an inference backend'),
)
  .option(
    '--proxy <host:port>',
    'proxy worker port to serve; repeat for several (default 127.0.0.1:11001)',
    collect,
  )
  .addOption(
    new Option('--backend <kind>', 'inference backend (default builtin)').choices([
      'builtin',
      'openai-compatible',
    ]),
  )
  .option('--model <name>', 'model name to serve; repeat for several (default cocoon-tiny)', collect)
  .option(
    '--upstream <url>',
    'openai-compatible: engine base URL, e.g. http://127.0.0.1:8000/v1 (vLLM, SGLang, llama.cpp, Ollama)',
  )
  .option('--upstream-model <name>', "openai-compatible: the engine's served model name, if it differs")
  .option('--upstream-api-key <key>', 'openai-compatible: API key the engine expects')
  .option(
    '--token-delay-ms <ms>',
    'builtin: delay per generated token, to look like a real engine (default 0)',
  )
  .option('--max-concurrent <n>', 'most requests at once, split between proxies (default 60)')
  .option('--coefficient <n>', 'price coefficient, 1000 = 1x (default 1000)')
  .option('--stats-host <host>', 'address of the stats server (default 127.0.0.1)')
  .option('--stats-port <port>', "stats server port, or 'off' (default 12000)")
  .action(async (o) => {
    const c = loadConfig(workerConfigSchema, o.config, {
      ...o,
      config: undefined,
      model: undefined,
      models: o.model,
    });
    await runUntilSignal(
      async () => (await (await nodes()).buildWorker(c)).start(),
      (w: Awaited<ReturnType<typeof buildWorker>>) =>
        `worker '${c.name}' [trust: ${c.trust}] serving ${c.models.join(', ')} via ${c.backend} to ` +
        `${c.proxy.map((p) => `${p.host}:${p.port}`).join(', ')}` +
        (w.statsUrl ? `, stats ${w.statsUrl}/stats` : ''),
      c.drainSeconds,
    );
  });

common(program.command('client').description('run a client: the OpenAI API on localhost, through a proxy'))
  .option('--http-host <host>', 'address of the OpenAI API (default 127.0.0.1)')
  .option('--http-port <port>', 'port of the OpenAI API (default 10000)')
  .option('--proxy <host:port>', 'proxy client port; repeat for several (default 127.0.0.1:11002)', collect)
  .option('--proxies-from-root', 'also use every proxy registered in the root contract')
  .option('--max-attempts <n>', 'proxies one request may try before its first part (default 3)')
  .option('--max-tokens <n>', 'max tokens when a request names none (default 1024)')
  .option('--timeout-seconds <s>', 'request time budget when a request names none (default 120)')
  .option('--max-coefficient <n>', 'highest worker price coefficient to accept, 1000 = 1x (default 4000)')
  .option('--max-body-bytes <n>', 'largest request body (default 4 MiB)')
  .option('--max-concurrent-requests <n>', 'requests served at once before 429 (default 512)')
  .option('--api-key <key>', 'require this key from callers on every route; repeat for several', collect)
  .option('--allowed-origin <origin>', 'web origin whose pages may call the API (CORS); repeat', collect)
  .option('--allowed-host <name>', 'host name the API answers to besides IPs and localhost; repeat', collect)
  .action(async (o) => {
    const c = loadConfig(clientConfigSchema, o.config, {
      ...o,
      config: undefined,
      apiKey: undefined,
      apiKeys: o.apiKey,
      allowedOrigin: undefined,
      allowedOrigins: o.allowedOrigin,
      allowedHost: undefined,
      allowedHosts: o.allowedHost,
    });
    await runUntilSignal(
      async () => (await (await nodes()).buildClient(c)).start(),
      (cl: Awaited<ReturnType<typeof buildClient>>) =>
        `client '${c.name}' [trust: ${c.trust}] OpenAI API at ${cl.baseUrl}, via ${c.proxy.length > 1 ? 'proxies' : 'proxy'} ${c.proxy.map((p) => `${p.host}:${p.port}`).join(', ')}` +
        (c.proxiesFromRoot ? ' and those registered in the root' : ''),
      c.drainSeconds,
    );
  });

program
  .command('local')
  .description(
    'start a whole local network (proxy, worker with the built-in model, client), show a completion',
  )
  .option('--data-dir <dir>', 'where the nodes keep their keys (default ./.cocoon/local)')
  .option('--http-port <port>', 'client OpenAI API port (default 10000; 0 = any free port)')
  .option('--token-delay-ms <ms>', 'built-in model delay per token (default 15)')
  .option('--prompt <text>', 'the prompt of the demo completion')
  .option('--no-serve', 'exit after the demo completion instead of serving until Ctrl-C')
  .option('--chain-port <port>', 'port of the embedded TON chain API (default 10100; 0 = any free port)')
  .option('--free', 'run without payments (no chain, no charges)')
  .addOption(
    new Option('--log-level <level>', 'log level').choices([
      'trace',
      'debug',
      'info',
      'warn',
      'error',
      'silent',
    ]),
  )
  .action(async (f) => (await import('./local.ts')).runLocal(f));

program
  .command('chain')
  .description('run the embedded TON chain (sandbox, dev only) for daemons started separately, with a root')
  .option('--data-dir <dir>', 'where the chain state and governance wallet live (default ./.cocoon/local)')
  .option('--port <port>', 'port of its toncenter-style API (default 10100)')
  .action(async (o: { dataDir?: string; port?: string }) => {
    const { startLocalTon } = await import('../local/local-ton.ts');
    const ton = await startLocalTon(
      o.dataDir ?? '.cocoon/local',
      o.port === undefined ? 10100 : Number(o.port),
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
// no subcommand still runs its daemon.
registerWalletCommands(program);
registerRootCommands(program);
registerClientMoneyCommands(program);
registerEarningsCommands(program);
registerModelCommands(program);
registerWorkerAdminCommands(program);

program.parseAsync().catch((err) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`cocoon: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`cocoon: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
