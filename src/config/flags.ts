import { type Command, Option } from 'commander';
import type { z } from 'zod';
import { clientConfigSchema, proxyConfigSchema, workerConfigSchema } from './config.ts';
import { choicesAt, defaultAt, showDefault } from './strict.ts';

/**
 * The daemons' command-line flags and the config key each one sets. Help texts carry no defaults: `--help`
 * shows each key's default (and choices) read from the schema, so the two cannot drift apart.
 */

export interface DaemonFlag {
  /** As commander takes them: `--stats-port <port>`. */
  flags: string;
  /** The config key the flag sets, dotted for a nested one (`backend.upstream`); none for `--config`. */
  key?: string;
  help: string;
  /** May be given several times; the values make a list. */
  repeat?: boolean;
}

const common: DaemonFlag[] = [
  {
    flags: '--config <file>',
    help: 'JSON config file (keys as the flags, camelCase); flags override it',
  },
  { flags: '--name <name>', key: 'name', help: 'node name shown to peers and in stats' },
  { flags: '--data-dir <dir>', key: 'dataDir', help: 'where the node keeps its identity key and state' },
  {
    flags: '--drain-seconds <s>',
    key: 'drainSeconds',
    help: 'on SIGTERM, how long requests in flight may take to finish',
  },
  {
    flags: '--trust <mode>',
    key: 'trust',
    help: 'trust mode: dev = software attestation, no TEE; tdx = Intel TDX (needs --config pccsUrl or collateralFile)',
  },
  { flags: '--log-level <level>', key: 'logLevel', help: 'log level (JSON logs on stderr)' },
];

const stats = (): DaemonFlag[] => [
  { flags: '--stats-host <host>', key: 'statsHost', help: 'address of the stats server' },
  { flags: '--stats-port <port>', key: 'statsPort', help: "stats server port, or 'off'" },
];

export const DAEMONS = {
  proxy: {
    schema: proxyConfigSchema,
    flags: [
      ...common,
      { flags: '--host <host>', key: 'host', help: 'address to listen on' },
      { flags: '--worker-port <port>', key: 'workerPort', help: 'port for workers' },
      { flags: '--client-port <port>', key: 'clientPort', help: 'port for clients' },
      ...stats(),
      {
        flags: '--max-attempts <n>',
        key: 'maxAttempts',
        help: 'workers one request may try before its first token',
      },
    ],
  },
  worker: {
    schema: workerConfigSchema,
    flags: [
      ...common,
      {
        flags: '--proxy <host:port>',
        key: 'proxy',
        help: 'proxy worker port to serve; repeat for several',
        repeat: true,
      },
      {
        flags: '--backend <kind>',
        key: 'backend.kind',
        help: 'inference backend; in a config file "backend": {"kind": ..., and its options}',
      },
      {
        flags: '--model <name>',
        key: 'models',
        help: 'model name to serve; repeat for several',
        repeat: true,
      },
      {
        flags: '--upstream <url>',
        key: 'backend.upstream',
        help: 'openai-compatible: engine base URL, e.g. http://127.0.0.1:8000/v1 (vLLM, SGLang, llama.cpp, Ollama)',
      },
      {
        flags: '--upstream-model <name>',
        key: 'backend.upstreamModel',
        help: "openai-compatible: the engine's served model name, if it differs",
      },
      {
        flags: '--upstream-api-key <key>',
        key: 'backend.upstreamApiKey',
        help: 'openai-compatible: API key the engine expects',
      },
      {
        flags: '--token-delay-ms <ms>',
        key: 'backend.tokenDelayMs',
        help: 'builtin: delay per generated token, to look like a real engine',
      },
      {
        flags: '--max-concurrent <n>',
        key: 'maxConcurrent',
        help: 'most requests at once, split between proxies',
      },
      { flags: '--coefficient <n>', key: 'coefficient', help: 'price coefficient, 1000 = 1x' },
      ...stats(),
    ],
  },
  client: {
    schema: clientConfigSchema,
    flags: [
      ...common,
      { flags: '--http-host <host>', key: 'httpHost', help: 'address of the OpenAI API' },
      { flags: '--http-port <port>', key: 'httpPort', help: 'port of the OpenAI API' },
      {
        flags: '--proxy <host:port>',
        key: 'proxy',
        help: 'proxy client port; repeat for several',
        repeat: true,
      },
      {
        flags: '--proxies-from-root',
        key: 'proxiesFromRoot',
        help: 'also use every proxy registered in the root contract',
      },
      {
        flags: '--max-attempts <n>',
        key: 'maxAttempts',
        help: 'proxies one request may try before its first part',
      },
      { flags: '--max-tokens <n>', key: 'maxTokens', help: 'max tokens when a request names none' },
      {
        flags: '--timeout-seconds <s>',
        key: 'timeoutSeconds',
        help: 'request time budget when a request names none',
      },
      {
        flags: '--max-coefficient <n>',
        key: 'maxCoefficient',
        help: 'highest worker price coefficient to accept, 1000 = 1x',
      },
      { flags: '--max-body-bytes <n>', key: 'maxBodyBytes', help: 'largest request body, in bytes' },
      {
        flags: '--max-concurrent-requests <n>',
        key: 'maxConcurrentRequests',
        help: 'requests served at once before 429',
      },
      {
        flags: '--api-key <key>',
        key: 'apiKeys',
        help: 'require this key from callers on every route; repeat for several',
        repeat: true,
      },
      {
        flags: '--allowed-origin <origin>',
        key: 'allowedOrigins',
        help: 'web origin whose pages may call the API (CORS); repeat',
        repeat: true,
      },
      {
        flags: '--allowed-host <name>',
        key: 'allowedHosts',
        help: 'host name the API answers to besides IPs and localhost; repeat',
        repeat: true,
      },
    ],
  },
} satisfies Record<string, { schema: z.ZodType; flags: DaemonFlag[] }>;

export type DaemonRole = keyof typeof DAEMONS;

const pathOf = (key: string) => key.split('.');
const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

/** A flag as commander takes it: its help ends with the schema's default; choices from the schema. */
export function daemonOption(schema: z.ZodType, f: DaemonFlag): Option {
  const shown = f.key ? showDefault(defaultAt(schema, pathOf(f.key))) : undefined;
  const o = new Option(f.flags, shown === undefined ? f.help : `${f.help} (default ${shown})`);
  const choices = f.key ? choicesAt(schema, pathOf(f.key)) : undefined;
  if (choices) o.choices(choices);
  // No commander default, ever: an unset flag must not override the config file.
  return f.repeat ? o.argParser(collect) : o;
}

/** Adds a daemon's flags to its command. */
export function addDaemonFlags(cmd: Command, role: DaemonRole): Command {
  const { schema, flags } = DAEMONS[role];
  for (const f of flags) cmd.addOption(daemonOption(schema, f));
  return cmd;
}

/** The flags commander parsed, as config keys (nested where the key is dotted), for `loadConfig`. */
export function flagsToConfig(role: DaemonRole, opts: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of DAEMONS[role].flags as DaemonFlag[]) {
    const v = opts[new Option(f.flags).attributeName()];
    if (!f.key || v === undefined) continue;
    const path = pathOf(f.key);
    let at = out;
    for (const k of path.slice(0, -1)) {
      at[k] ??= {};
      at = at[k] as Record<string, unknown>;
    }
    at[path[path.length - 1]!] = v;
  }
  return out;
}
