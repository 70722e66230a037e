import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { describeKeyProblem, unknownKeys, withMovedKeys } from './strict.ts';

/**
 * Configuration of each daemon: one zod schema per role with every default in one place (`--help` reads
 * them from here). Values come from the defaults, then a JSON config file (`--config`), then command-line
 * flags, later winning. A key no schema knows is refused, with the nearest known key.
 */

export const hostPortSchema = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'expected host:port')
  .transform((s) => {
    const i = s.lastIndexOf(':');
    return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
  });
const port = z.coerce.number().int().min(0).max(65535);
const optionalPort = z.union([port, z.literal('off').transform(() => null), z.null()]);
const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info');
const trust = z.enum(['dev', 'tdx']).default('dev');
const defaultDir = (role: string) => join(homedir(), '.cocoon', role);
const seconds = z.coerce.number().positive();
/** TON as decimal text ("0.5"); turned into nanoton by parseTon where it is used. */
const tonText = z.string().regex(/^\d+(\.\d{1,9})?$/, 'expected an amount of TON such as "0.5"');

/**
 * Where TON is: a toncenter-style HTTP API (the local chain `cocoon local` runs, testnet or mainnet) and
 * the root contract. Without `root`, payments are off and the daemon says so.
 */
/**
 * Allow-lists of peer images (hex SHA-256 of the measurements) and model content hashes. Absent: not
 * restricted (dev). `trustFromRoot`: take them from the root contract instead, enforced exactly.
 */
const hexHash = z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected a 64-hex-digit hash');
const policyFields = {
  allowedProxyImages: z.array(hexHash).optional(),
  allowedWorkerImages: z.array(hexHash).optional(),
  allowedModels: z.array(hexHash).optional(),
  trustFromRoot: z.boolean().default(false),
  /** trust tdx: Intel collateral from a PCCS (cached in <dataDir>/collateral) or a file. */
  pccsUrl: z.url().optional(),
  collateralFile: z.string().optional(),
  acceptTcbStatuses: z.array(z.string()).optional(),
  /** Validity of this node's RA-TLS certificates; re-issued at 3/4 of it, sessions end when a peer's expires. */
  certValiditySeconds: z.coerce
    .number()
    .positive()
    .default(24 * 3600),
};

/** How long SIGTERM waits for requests in flight before the daemon stops anyway. */
const drainSeconds = z.coerce.number().min(0).default(30);

const chainFields = {
  ...policyFields,
  chainEndpoint: z.url().default('http://127.0.0.1:10100'),
  chainApiKey: z.string().optional(),
  root: z.string().min(48).max(70).optional(),
  /** `disk`: signed state is flushed before a reply is released; `process`: it survives kill -9 only. */
  ledgerDurability: z.enum(['disk', 'process']).default('disk'),
};

/** The built-in model: a deterministic text generator (dev, tests, demos). `kind` may be left out. */
const builtinBackendSchema = z.strictObject({
  kind: z.literal('builtin').default('builtin'),
  /** Delay per generated token, to look like a real engine. */
  tokenDelayMs: z.coerce.number().min(0).default(0),
});

/** An OpenAI-compatible inference engine the worker forwards to (vLLM, SGLang, llama.cpp, Ollama). */
const openaiCompatibleBackendSchema = z.strictObject({
  kind: z.literal('openai-compatible'),
  /** The engine's base URL, e.g. http://127.0.0.1:8000/v1. */
  upstream: z.url({
    error: (iss) =>
      iss.input === undefined
        ? "required by backend 'openai-compatible': the engine's base URL, e.g. http://127.0.0.1:8000/v1"
        : undefined,
  }),
  /** The engine's served model name, if it differs from the model names the worker announces. */
  upstreamModel: z.string().min(1).optional(),
  /** API key the engine expects. */
  upstreamApiKey: z.string().min(1).optional(),
});

export const BACKEND_KINDS = ['builtin', 'openai-compatible'] as const;

/** The inference backend and its own options: `{"kind": "openai-compatible", "upstream": "http://…/v1"}`. */
export const backendSchema = z
  .discriminatedUnion('kind', [builtinBackendSchema, openaiCompatibleBackendSchema], {
    error: (iss) => {
      if (typeof iss.input === 'string') {
        return `expected an object with the backend's options: {"kind": ${JSON.stringify(iss.input)}, …}`;
      }
      return iss.code === 'invalid_union'
        ? `expected ${BACKEND_KINDS.map((k) => `'${k}'`).join(' or ')}`
        : undefined;
    },
  })
  .prefault({});
export type BackendConfig = z.infer<typeof backendSchema>;

const toBuiltin = { to: ['backend', 'tokenDelayMs'], with: { kind: 'builtin' } };
const toEngine = (key: string) => ({ to: ['backend', key], with: { kind: 'openai-compatible' } });

export const workerConfigSchema = withMovedKeys(
  z.strictObject({
    name: z.string().min(1).default('worker'),
    dataDir: z.string().default(defaultDir('worker')),
    proxy: z
      .array(hostPortSchema)
      .min(1)
      .default([{ host: '127.0.0.1', port: 11001 }]),
    backend: backendSchema,
    models: z.array(z.string().min(1)).min(1).default(['cocoon-tiny']),
    maxConcurrent: z.coerce.number().int().min(1).default(60),
    coefficient: z.coerce.number().int().min(0).default(1000),
    statsHost: z.string().default('127.0.0.1'),
    statsPort: optionalPort.default(12000),
    ...chainFields,
    /** Redeem signed payouts once this much is due … */
    payoutAmountTon: tonText.default('1'),
    /** … or once something has been due this long. */
    payoutIntervalSeconds: seconds.default(60),
    drainSeconds,
    trust,
    logLevel,
  }),
  // Before issue 13 these sat at the top level.
  {
    tokenDelayMs: toBuiltin,
    upstream: toEngine('upstream'),
    upstreamModel: toEngine('upstreamModel'),
    upstreamApiKey: toEngine('upstreamApiKey'),
  },
);
export type WorkerConfig = z.infer<typeof workerConfigSchema>;

export const proxyConfigSchema = z.strictObject({
  name: z.string().min(1).default('proxy'),
  dataDir: z.string().default(defaultDir('proxy')),
  host: z.string().default('127.0.0.1'),
  workerPort: port.default(11001),
  clientPort: port.default(11002),
  statsHost: z.string().default('127.0.0.1'),
  statsPort: optionalPort.default(11000),
  ...chainFields,
  /** Redeem a client's authorisations once this much is unredeemed (at most half its stake) … */
  settleAmountTon: tonText.default('1'),
  /** … or once the oldest has waited this long. */
  settleIntervalSeconds: seconds.default(60),
  /** How often new worker payouts are signed. */
  payoutIntervalSeconds: seconds.default(5),
  /** How long a client has to sign a bill before the request fails. */
  billTimeoutSeconds: seconds.default(10),
  /** TON staked in the proxy contract when the proxy deploys it (at least the root's minimum). */
  stakeTon: tonText.optional(),
  /** Workers one request may try: a worker failing before the first token is replaced by another. */
  maxAttempts: z.coerce.number().int().min(1).max(10).default(3),
  drainSeconds,
  trust,
  logLevel,
});
export type ProxyConfig = z.infer<typeof proxyConfigSchema>;

export const clientConfigSchema = z.strictObject({
  name: z.string().min(1).default('client'),
  dataDir: z.string().default(defaultDir('client')),
  httpHost: z.string().default('127.0.0.1'),
  httpPort: port.default(10000),
  /** One proxy or several (requests fail over between them). */
  proxy: z
    .preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(hostPortSchema).min(1))
    .default([{ host: '127.0.0.1', port: 11002 }]),
  /** Also use every proxy registered in the root contract (re-read each minute). */
  proxiesFromRoot: z.boolean().default(false),
  /**
   * End-to-end encryption: each request's body is sealed to the worker serving it, so the proxy reads no
   * prompt and no completion. `false` is an explicit choice, labelled at start-up and in `/jsonstats`.
   */
  e2e: z.boolean().default(true),
  /**
   * Workers' receipts: each reply signed by its worker, checked against what the client read, logged and
   * returned. `false` (only with `e2e: false`: a sealed prompt is bounded by nothing else) is an explicit
   * choice, labelled at start-up and in `/jsonstats`; then nothing binds a reply to the worker checked.
   */
  receipts: z.boolean().default(true),
  /**
   * How long a receipt may sit written but not yet fsynced (ms): the reply waits for the write, not the
   * fsync, so a process crash loses none; a power cut may lose the last moment's. 0: fsync every reply.
   */
  receiptSyncMs: z.coerce.number().int().min(0).max(10_000).default(100),
  /** Proxies one request may try before its first part reaches the caller. */
  maxAttempts: z.coerce.number().int().min(1).max(10).default(3),
  maxTokens: z.coerce.number().int().min(1).default(1024),
  timeoutSeconds: z.coerce.number().positive().default(120),
  maxCoefficient: z.coerce.number().int().min(0).default(4000),
  /** Lowest worker trust tier accepted (a request may ask for more with `min_trust_tier`). */
  minTrustTier: z.enum(['dev', 'tee-cpu', 'tee-gpu']).default('dev'),
  maxBodyBytes: z.coerce
    .number()
    .int()
    .min(1024)
    .default(4 * 1024 * 1024),
  maxConcurrentRequests: z.coerce.number().int().min(1).default(512),
  /** With keys set, every route of the API (stats and metrics included) needs one. */
  apiKeys: z.array(z.string().min(1)).default([]),
  /** Host names the API answers to besides IP literals and localhost (a DNS-rebinding defence). */
  allowedHosts: z.array(z.string().min(1)).default([]),
  /** Web origins (`http://localhost:3000`) whose pages may call the API; all others are refused. */
  allowedOrigins: z
    .array(z.string().regex(/^https?:\/\/[^/]+$/, 'an origin is scheme://host[:port]'))
    .default([]),
  /** Seconds a caller may take to send its headers, and its whole request; idle keep-alive seconds. */
  headersTimeoutSeconds: z.coerce.number().positive().default(10),
  requestTimeoutSeconds: z.coerce.number().positive().default(30),
  idleTimeoutSeconds: z.coerce.number().positive().default(5),
  /** Open connections to the API at most. */
  maxConnections: z.coerce.number().int().min(1).default(1024),
  ...chainFields,
  // The proxy's ledger is the authoritative record (fsync'd); the client's guards its seqnos and is
  // reconciled with the proxy's on every connect, so surviving kill -9 is enough for it.
  ledgerDurability: z.enum(['disk', 'process']).default('process'),
  drainSeconds,
  trust,
  logLevel,
});
export type ClientConfig = z.infer<typeof clientConfigSchema>;

export class ConfigError extends Error {}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The flags that were given: undefined values (and objects left empty by dropping them) do not count. */
function given(v: Obj): Obj {
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) {
    const y = isObj(x) ? given(x) : x;
    if (y !== undefined && !(isObj(y) && Object.keys(y).length === 0)) out[k] = y;
  }
  return out;
}

/**
 * Flags over the file: objects merge key by key (`--upstream-api-key` keeps the file's backend.upstream),
 * unless their `kind` differs — then the flags' object replaces the file's (`--backend builtin`).
 */
function merge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    const sameKind =
      isObj(b) && isObj(v) && (v.kind === undefined || b.kind === undefined || v.kind === b.kind);
    out[k] = sameKind ? merge(b, v) : v;
  }
  return out;
}

const has = (o: unknown, path: readonly string[]): boolean =>
  path.length === 0 || (isObj(o) && Object.hasOwn(o, path[0]!) && has(o[path[0]!], path.slice(1)));

/**
 * Merges defaults < config file < flags and validates. Keys the schema does not know are refused (naming
 * the source, and the nearest known key); other errors name the offending key.
 */
export function loadConfig<S extends z.ZodType>(
  schema: S,
  configPath: string | undefined,
  flags: Record<string, unknown>,
): z.infer<S> {
  let file: Obj = {};
  if (configPath) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(configPath, 'utf8'));
    } catch (err) {
      throw new ConfigError(`cannot read config file ${configPath}: ${(err as Error).message}`);
    }
    if (!isObj(parsed)) throw new ConfigError(`config file ${configPath} must hold a JSON object`);
    file = parsed;
  }
  const defined = given(flags);
  const input = merge(file, defined);
  const problems = unknownKeys(schema, input).map((p) =>
    describeKeyProblem(p, has(defined, p.path) ? 'in the flags' : `in ${configPath}`),
  );
  if (problems.length === 1) throw new ConfigError(problems[0]!);
  if (problems.length > 1) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  const r = schema.safeParse(input);
  if (!r.success) {
    const msgs = r.error.issues.map((i) => `  ${i.path.join('.') || '(config)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${msgs.join('\n')}`);
  }
  return r.data;
}
