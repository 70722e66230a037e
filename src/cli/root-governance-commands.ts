import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { type Address, type Cell, type Transaction, toNano } from '@ton/core';
import { Argument, type Command, Option } from 'commander';
import { parseModelIdentity } from '../attest/model-identity.ts';
import { ExitCode, HashKind, Op } from '../chain/contracts/opcodes.ts';
import type { RootParams } from '../chain/contracts/params.ts';
import {
  addHashBody,
  changeOwnerBody,
  delHashBody,
  RootContract,
  type RootData,
  registerProxyBody,
  setParamsBody,
  unregisterProxyBody,
  updateProxyBody,
} from '../chain/contracts/root-contract.ts';
import { formatTon } from '../chain/money.ts';
import {
  loadWalletFile,
  WALLET_FILE,
  type Wallet,
  WalletSender,
  walletFromMnemonic,
} from '../chain/wallet.ts';
import { ConfigError, hostPortSchema } from '../config/config.ts';
import {
  awaitEffect,
  type ChainFlags,
  CliError,
  chainFlags,
  chainFlagValues,
  describeError,
  out,
  parseAddress,
  printJson,
  type Reach,
  reachRoot,
  rows,
  run,
  walletError,
  walletText,
} from './chain-cli.ts';
import {
  deployRootCommand,
  loadConfigLine,
  PARAM_KEYS,
  PARAM_SCHEMAS,
  type ParamFlags,
  paramFlagValues,
  paramOptions,
  paramRows,
  paramsJson,
} from './root-deploy.ts';
import { governanceConfigSchema } from './wallet-commands.ts';

/**
 * `cocoon root show|deploy|set-params|allow|disallow|register-proxy|update-proxy|unregister-proxy|
 * change-owner`: governance of the root contract from the wallet that owns it (`--data-dir`, default
 * ~/.cocoon/governance). Every change is checked against the root's state first (a wallet that is not the
 * owner, a missing entry, a params version that does not rise: refused, nothing sent), then sent, then
 * followed to the root's transaction: the root's own refusal (its exit code) is reported as such.
 */

/** What a governance message carries; the root keeps its storage reserve and returns the rest. */
const GOVERNANCE_VALUE = toNano('0.1');

const GOVERNANCE_DIR_HELP = 'data dir of the governance wallet (default ~/.cocoon/governance)';

export const HASH_KINDS = ['proxy-image', 'worker-image', 'model'] as const;
type HashKindName = (typeof HASH_KINDS)[number];

const KIND: Record<HashKindName, { kind: HashKind; list: 'proxyHashes' | 'workerHashes' | 'modelHashes' }> = {
  'proxy-image': { kind: HashKind.proxy, list: 'proxyHashes' },
  'worker-image': { kind: HashKind.worker, list: 'workerHashes' },
  model: { kind: HashKind.model, list: 'modelHashes' },
};

const KIND_TEXT: Record<HashKindName, string> = {
  'proxy-image': 'proxy image',
  'worker-image': 'worker image',
  model: 'model',
};

/** What the root's exit codes mean, in the words of a governance command. */
const EXIT_MEANING: Record<number, string> = {
  [ExitCode.unknownOp]: 'unknown operation',
  [ExitCode.notAllowed]: "not allowed: the sending wallet is not the root's owner",
  [ExitCode.invalidParams]:
    'invalid parameters: the params version must rise, the worker fee stay within the price, ' +
    'multipliers and close delays within their bounds',
  [ExitCode.notEnoughValue]: 'not enough value attached',
  [ExitCode.noSuchEntry]: 'no such entry',
};

/** A hash as the root stores it: 64 lowercase hex digits. */
export const hashHex = (h: bigint) => h.toString(16).padStart(64, '0');

/**
 * A 256-bit hash from the command line: 64 hex digits (any case, optionally `0x` or `sha256:` first) as
 * `cocoon model-hash` prints a model's and a node's attestation reports an image's; for a model also its
 * identity `name@revision:<hash>` as a worker serves it.
 */
export function parseHash(text: string, kind: HashKindName): bigint {
  let t = text.trim();
  if (kind === 'model' && t.includes('@')) {
    try {
      t = parseModelIdentity(t).hash ?? t;
    } catch (err) {
      throw new ConfigError(`model hash: ${(err as Error).message}`);
    }
  }
  t = t.replace(/^(0x|sha256:)/i, '');
  if (!/^[0-9a-fA-F]{64}$/.test(t)) {
    throw new ConfigError(
      `${KIND_TEXT[kind]} hash: expected 64 hex digits (a SHA-256 as \`cocoon model-hash\` prints it` +
        `${kind === 'model' ? ', or a model identity name@revision:<hash>' : ''}), got "${text}"`,
    );
  }
  return BigInt(`0x${t}`);
}

/** A registry seqno from the command line. */
function parseSeqno(text: string): number {
  if (!/^\d{1,10}$/.test(text.trim()) || Number(text) < 1 || Number(text) > 2 ** 32 - 1) {
    throw new ConfigError(
      `seqno: expected a proxy's registry number (1, 2, …; see cocoon root show), got "${text}"`,
    );
  }
  return Number(text);
}

/** A proxy's public endpoint `host:port` (IPv6 in brackets), as clients read it from the registry. */
function parseEndpoint(text: string): string {
  const r = hostPortSchema.safeParse(text);
  if (!r.success || r.data.port < 1 || r.data.port > 65535 || text.length > 255) {
    throw new ConfigError(
      `endpoint: expected the proxy's public host:port for clients (such as proxy.example.com:8443), got "${text}"`,
    );
  }
  return text;
}

// ─── the root and the governance wallet ───

interface GovernanceFlags extends ChainFlags {
  yes?: boolean;
  skipChecks?: boolean;
}

interface RootView {
  reach: Reach;
  root: Address;
  dataDir: string;
  endpoint: string;
  data: RootData;
}

async function readRoot(reach: Reach, root: Address): Promise<RootData> {
  try {
    return await reach.chain.open(RootContract.fromAddress(root)).getRootData();
  } catch (err) {
    throw new CliError(
      `${root.toString()} does not answer as a root contract (get_root_data: ${describeError(err)}); check --root`,
    );
  }
}

async function openRoot(f: ChainFlags): Promise<RootView> {
  const c = loadConfigLine(governanceConfigSchema, f.config, chainFlagValues(f));
  const { root, reach } = await reachRoot(c);
  return {
    reach,
    root,
    dataDir: resolve(c.dataDir),
    endpoint: c.chainEndpoint,
    data: await readRoot(reach, root),
  };
}

interface Governor {
  wallet: Wallet;
  sender: WalletSender;
}

/** The wallet in the data dir, which must own the root (unless `skipChecks`: then the root refuses). */
async function governor(v: RootView, skipChecks: boolean): Promise<Governor> {
  let words: string[];
  try {
    words = await loadWalletFile(join(v.dataDir, WALLET_FILE));
  } catch (err) {
    throw walletError(err, v.dataDir, true);
  }
  const wallet = await walletFromMnemonic(words, v.reach.globalId);
  if (!skipChecks && !v.data.owner.equals(wallet.address)) {
    throw new CliError(
      `the wallet ${walletText(wallet.address, v.reach.globalId)} (${join(v.dataDir, WALLET_FILE)}) does not own ` +
        `root ${v.root.toString()}; its owner is ${walletText(v.data.owner, v.reach.globalId)}, and the root ` +
        `accepts changes only from it; nothing sent (use the owner's --data-dir)`,
    );
  }
  const sender = new WalletSender(v.reach.chain.client, wallet, {
    pollIntervalMs: v.reach.local ? 100 : 1000,
  });
  return { wallet, sender };
}

interface Outcome {
  data: RootData;
  transaction: { lt: string; hash: string };
  versionBefore: number;
}

/** Why the root refused the message of `tx`, or null if it took it. */
function refusalOf(tx: Transaction): string | null {
  const d = tx.description;
  if (d.type !== 'generic') return `unexpected transaction type ${d.type}`;
  const c = d.computePhase;
  if (c.type === 'skipped') return `not executed (${c.reason})`;
  if (!c.success) return exitText(c.exitCode);
  // A refused non-bounceable message comes back as `returned query_id exit_code`.
  for (const m of tx.outMessages.values()) {
    try {
      const s = m.body.beginParse();
      if (s.remainingBits >= 32 + 64 + 32 && s.loadUint(32) === Op.returned) {
        s.skip(64);
        return exitText(s.loadInt(32));
      }
    } catch {
      // not a body we know: not a refusal notice
    }
  }
  if (d.aborted || (d.actionPhase && !d.actionPhase.success)) {
    return `the transaction was aborted (action phase result ${d.actionPhase?.resultCode ?? 'none'})`;
  }
  return null;
}

const exitText = (code: number) => `exit code ${code}${EXIT_MEANING[code] ? `, ${EXIT_MEANING[code]}` : ''}`;

/**
 * Sends one governance message (a fresh query id, so its transaction is told apart from any other), waits
 * for the root's transaction for it, and reports a refusal in one line; returns the root's new state.
 */
async function sendToRoot(
  v: RootView,
  g: Governor,
  op: string,
  body: (queryId: bigint) => Cell,
): Promise<Outcome> {
  const queryId = randomBytes(8).readBigUInt64BE();
  const cell = body(queryId);
  const hash = cell.hash();
  const rootText = v.root.toString();
  await g.sender.send([{ to: v.root, value: GOVERNANCE_VALUE, body: cell }]);
  const tx = await awaitEffect(
    v.reach,
    async () => {
      const txs = await v.reach.chain.client.getTransactions(v.root, { limit: 20, archival: false });
      return (
        txs.find((t) => {
          const m = t.inMessage;
          return (
            m?.info.type === 'internal' && m.info.src.equals(g.wallet.address) && m.body.hash().equals(hash)
          );
        }) ?? null
      );
    },
    `${op} was sent, but root ${rootText} has not processed it yet on ${v.endpoint}; check later with: cocoon root show --root ${rootText}`,
  );
  const refused = refusalOf(tx);
  if (refused) throw new CliError(`root ${rootText} refused ${op} (${refused}); nothing changed`);
  // The getters may answer from a block before the transaction's on a public API: wait until they show it.
  const data = await awaitEffect(
    v.reach,
    async () => {
      const d = await readRoot(v.reach, v.root);
      return d.version > v.data.version ? d : null;
    },
    `root ${rootText} took ${op} (transaction lt ${tx.lt}), but its getters do not show it yet on ${v.endpoint}; check later with: cocoon root show --root ${rootText}`,
  );
  return {
    data,
    transaction: { lt: tx.lt.toString(), hash: tx.hash().toString('hex') },
    versionBefore: v.data.version,
  };
}

// ─── output ───

function stateJson(v: RootView, d: RootData) {
  return {
    root: v.root.toString(),
    endpoint: v.endpoint,
    globalId: v.reach.globalId,
    owner: walletText(d.owner, v.reach.globalId),
    rawOwner: d.owner.toRawString(),
    version: d.version,
    params: paramsJson(d.params),
    allowLists: {
      proxyImages: d.proxyHashes.map(hashHex),
      workerImages: d.workerHashes.map(hashHex),
      models: d.modelHashes.map(hashHex),
    },
    lastProxySeqno: d.lastProxySeqno,
    proxies: d.proxies.map((p) => ({ seqno: p.seqno, address: p.address.toString(), endpoint: p.endpoint })),
  };
}

function stateText(v: RootView, d: RootData, ownerNote = ''): string {
  const list = (hashes: bigint[]) =>
    hashes.length ? hashes.map(hashHex).join('\n                ') : '(none: nothing is allowed)';
  const proxies = d.proxies.length
    ? d.proxies.map((p) => `#${p.seqno}  ${p.address.toString()}  ${p.endpoint}`).join('\n                ')
    : '(none)';
  return (
    `root ${v.root.toString()}\n` +
    rows([
      ['owner', `${walletText(d.owner, v.reach.globalId)}${ownerNote}`],
      ['network', `global id ${v.reach.globalId} (${v.endpoint})`],
      ['version', `${d.version} (rises with every change)`],
      ...paramRows(d.params),
    ]) +
    'allow-lists\n' +
    rows([
      ['proxy images', list(d.proxyHashes)],
      ['worker images', list(d.workerHashes)],
      ['models', list(d.modelHashes)],
    ]) +
    `proxies (last seqno ${d.lastProxySeqno})\n` +
    rows([['registered', proxies]])
  );
}

/** Prints what a change did and the root's state afterwards. */
function report(
  f: GovernanceFlags,
  v: RootView,
  action: string,
  headline: string,
  o: Outcome,
  extra: Record<string, unknown> = {},
  lines: [string, string][] = [],
): void {
  if (f.json) {
    printJson({
      action,
      changed: true,
      ...extra,
      transaction: o.transaction,
      version: { before: o.versionBefore, after: o.data.version },
      state: stateJson(v, o.data),
    });
    return;
  }
  out(
    `${headline}\n` +
      rows([
        ...lines,
        [
          'transaction',
          `lt ${o.transaction.lt}, hash ${o.transaction.hash} (root version ${o.versionBefore} -> ${o.data.version})`,
        ],
      ]) +
      stateText(v, o.data),
  );
}

/** Prints that nothing needed sending (exit 0). */
function unchanged(f: GovernanceFlags, v: RootView, action: string, why: string): void {
  if (f.json) {
    printJson({ action, changed: false, reason: why, state: stateJson(v, v.data) });
    return;
  }
  out(`${why}; nothing sent\n${stateText(v, v.data)}`);
}

// ─── commands ───

async function show(f: ChainFlags): Promise<void> {
  const v = await openRoot(f);
  // Whether the wallet in --data-dir (if any) owns the root: a hint, never required.
  const words = await loadWalletFile(join(v.dataDir, WALLET_FILE)).catch(() => null);
  const mine = words
    ? (await walletFromMnemonic(words, v.reach.globalId)).address.equals(v.data.owner)
    : null;
  if (f.json) {
    printJson({ ...stateJson(v, v.data), ownerIsDataDirWallet: mine });
    return;
  }
  out(stateText(v, v.data, mine ? ` (the wallet in ${v.dataDir})` : ''));
}

const setParamsSchema = governanceConfigSchema.extend({
  paramsVersion: PARAM_SCHEMAS.paramsVersion.optional(),
  pricePerToken: PARAM_SCHEMAS.pricePerToken.optional(),
  workerFeePerToken: PARAM_SCHEMAS.workerFeePerToken.optional(),
  promptMult: PARAM_SCHEMAS.promptMult.optional(),
  cachedMult: PARAM_SCHEMAS.cachedMult.optional(),
  completionMult: PARAM_SCHEMAS.completionMult.optional(),
  reasoningMult: PARAM_SCHEMAS.reasoningMult.optional(),
  clientCloseDelay: PARAM_SCHEMAS.clientCloseDelay.optional(),
  proxyCloseDelay: PARAM_SCHEMAS.proxyCloseDelay.optional(),
  minClientStake: PARAM_SCHEMAS.minClientStake.optional(),
  minProxyStake: PARAM_SCHEMAS.minProxyStake.optional(),
});

const paramText = (value: number | bigint) =>
  typeof value === 'bigint' ? `${formatTon(value)} TON` : String(value);
/** `pricePerToken` → `price-per-token`, as the flag names it. */
const flagName = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const paramJson = (value: number | bigint) => (typeof value === 'bigint' ? formatTon(value) : value);

async function setParams(f: GovernanceFlags & ParamFlags): Promise<void> {
  const c = loadConfigLine(setParamsSchema, f.config, { ...chainFlagValues(f), ...paramFlagValues(f) });
  const given = PARAM_KEYS.filter((k) => c[k] !== undefined);
  if (given.length === 0) {
    throw new ConfigError(
      'nothing to set: give at least one parameter flag (--price-per-token, --min-client-stake, …; see cocoon root set-params --help)',
    );
  }
  const v = await openRoot(f);
  const current = v.data.params;
  const next: RootParams = { ...current };
  for (const k of given) (next as unknown as Record<string, unknown>)[k] = c[k];
  if (c.paramsVersion === undefined) {
    if (current.paramsVersion >= 2 ** 32 - 1) {
      throw new CliError(`the params version is at its maximum ${current.paramsVersion}; it cannot rise`);
    }
    next.paramsVersion = current.paramsVersion + 1;
  }
  if (!f.skipChecks) {
    if (next.paramsVersion <= current.paramsVersion) {
      throw new CliError(
        `--params-version ${next.paramsVersion} is not above the current ${current.paramsVersion}: the root ` +
          `requires every set_params to raise it (omit the flag to use ${current.paramsVersion + 1}); nothing sent`,
      );
    }
    if (next.workerFeePerToken > next.pricePerToken) {
      throw new CliError(
        `the worker fee per token ${formatTon(next.workerFeePerToken)} TON would be above the price per token ` +
          `${formatTon(next.pricePerToken)} TON, which the root refuses; nothing sent`,
      );
    }
  }
  const g = await governor(v, !!f.skipChecks);
  const changes = PARAM_KEYS.filter((k) => next[k] !== current[k]);
  const o = await sendToRoot(v, g, 'set_params', (q) => setParamsBody(next, q));
  const changed = Object.fromEntries(
    changes.map((k) => [k, { from: paramJson(current[k]), to: paramJson(next[k]) }]),
  );
  report(
    f,
    v,
    'set-params',
    `Set the parameters of root ${v.root.toString()} (params version ${current.paramsVersion} -> ${next.paramsVersion})`,
    o,
    { root: v.root.toString(), params: paramsJson(next), paramsChanged: changed },
    changes.map((k) => [flagName(k), `${paramText(current[k])} -> ${paramText(next[k])}`]),
  );
}

async function allowOrDisallow(
  allow: boolean,
  f: GovernanceFlags,
  kindText: string,
  hashText: string,
): Promise<void> {
  if (!(HASH_KINDS as readonly string[]).includes(kindText)) {
    throw new ConfigError(`kind: expected ${HASH_KINDS.join(', ')}, got "${kindText}"`);
  }
  const kindName = kindText as HashKindName;
  const { kind, list } = KIND[kindName];
  const hash = parseHash(hashText, kindName);
  const hex = hashHex(hash);
  const action = allow ? 'allow' : 'disallow';
  const v = await openRoot(f);
  const listed = v.data[list].includes(hash);
  const what = `${KIND_TEXT[kindName]} hash ${hex}`;
  if (!f.skipChecks && allow && listed) {
    await governor(v, false); // a wallet that does not own the root is told so first
    unchanged(f, v, action, `${what} is already allowed by root ${v.root.toString()}`);
    return;
  }
  if (!f.skipChecks && !allow && !listed) {
    throw new CliError(
      `${what} is not on root ${v.root.toString()}'s ${KIND_TEXT[kindName]} allow-list; nothing sent`,
    );
  }
  const g = await governor(v, !!f.skipChecks);
  const op = `${allow ? 'add' : 'del'}_${kindName === 'model' ? 'model' : kindName.split('-')[0]}_hash`;
  const o = await sendToRoot(v, g, op, (q) =>
    allow ? addHashBody(kind, hash, q) : delHashBody(kind, hash, q),
  );
  report(
    f,
    v,
    action,
    allow
      ? `Allowed ${what} in root ${v.root.toString()}`
      : `Removed ${what} from root ${v.root.toString()}'s allow-list`,
    o,
    { root: v.root.toString(), kind: kindName, hash: hex },
  );
}

async function registerProxy(f: GovernanceFlags, contractText: string, endpointText: string): Promise<void> {
  const proxy = parseAddress(contractText, 'proxy contract');
  const endpoint = parseEndpoint(endpointText);
  const v = await openRoot(f);
  const same = v.data.proxies.find((p) => p.address.equals(proxy) && p.endpoint === endpoint);
  if (same && !f.skipChecks) {
    throw new CliError(
      `proxy contract ${proxy.toString()} at ${endpoint} is already registered in root ${v.root.toString()} as ` +
        `#${same.seqno}; nothing sent (change an entry with cocoon root update-proxy)`,
    );
  }
  const g = await governor(v, !!f.skipChecks);
  const deployed = await v.reach.chain.isDeployed(proxy);
  const o = await sendToRoot(v, g, 'register_proxy', (q) => registerProxyBody(proxy, endpoint, q));
  const seqno = o.data.lastProxySeqno;
  const note = deployed
    ? []
    : ([
        [
          'note',
          `no contract is deployed at ${proxy.toString()} yet (the proxy deploys its contract on its first start)`,
        ],
      ] as [string, string][]);
  report(
    f,
    v,
    'register-proxy',
    `Registered proxy #${seqno} in root ${v.root.toString()}: ${proxy.toString()} at ${endpoint}`,
    o,
    { root: v.root.toString(), seqno, address: proxy.toString(), endpoint, proxyDeployed: deployed },
    note,
  );
}

async function updateProxy(
  f: GovernanceFlags,
  seqnoText: string,
  contractText: string,
  endpointText: string,
): Promise<void> {
  const seqno = parseSeqno(seqnoText);
  const proxy = parseAddress(contractText, 'proxy contract');
  const endpoint = parseEndpoint(endpointText);
  const v = await openRoot(f);
  const entry = v.data.proxies.find((p) => p.seqno === seqno);
  if (!f.skipChecks) {
    if (!entry) throw noSuchProxy(v, seqno);
    if (entry.address.equals(proxy) && entry.endpoint === endpoint) {
      await governor(v, false);
      unchanged(
        f,
        v,
        'update-proxy',
        `proxy #${seqno} of root ${v.root.toString()} is already ${proxy.toString()} at ${endpoint}`,
      );
      return;
    }
  }
  const g = await governor(v, !!f.skipChecks);
  const o = await sendToRoot(v, g, 'update_proxy', (q) => updateProxyBody(seqno, proxy, endpoint, q));
  report(
    f,
    v,
    'update-proxy',
    `Updated proxy #${seqno} in root ${v.root.toString()}: ${proxy.toString()} at ${endpoint}`,
    o,
    {
      root: v.root.toString(),
      seqno,
      address: proxy.toString(),
      endpoint,
      previous: entry ? { address: entry.address.toString(), endpoint: entry.endpoint } : null,
    },
    entry ? [['was', `${entry.address.toString()} at ${entry.endpoint}`]] : [],
  );
}

function noSuchProxy(v: RootView, seqno: number): CliError {
  const known = v.data.proxies.map((p) => `#${p.seqno}`).join(', ');
  return new CliError(
    `root ${v.root.toString()} has no proxy #${seqno} (registered: ${known || 'none'}); nothing sent`,
  );
}

async function unregisterProxy(f: GovernanceFlags, seqnoText: string): Promise<void> {
  const seqno = parseSeqno(seqnoText);
  const v = await openRoot(f);
  const entry = v.data.proxies.find((p) => p.seqno === seqno);
  if (!entry && !f.skipChecks) throw noSuchProxy(v, seqno);
  const g = await governor(v, !!f.skipChecks);
  const o = await sendToRoot(v, g, 'unregister_proxy', (q) => unregisterProxyBody(seqno, q));
  report(
    f,
    v,
    'unregister-proxy',
    `Unregistered proxy #${seqno} from root ${v.root.toString()}`,
    o,
    {
      root: v.root.toString(),
      seqno,
      previous: entry ? { address: entry.address.toString(), endpoint: entry.endpoint } : null,
    },
    entry ? [['was', `${entry.address.toString()} at ${entry.endpoint}`]] : [],
  );
}

async function changeOwner(f: GovernanceFlags, ownerText: string): Promise<void> {
  const owner = parseAddress(ownerText, 'new owner');
  const v = await openRoot(f);
  const ownerOut = walletText(owner, v.reach.globalId);
  if (!f.skipChecks && owner.equals(v.data.owner)) {
    await governor(v, false);
    unchanged(f, v, 'change-owner', `${ownerOut} already owns root ${v.root.toString()}`);
    return;
  }
  const g = await governor(v, !!f.skipChecks);
  if (!f.yes) {
    throw new CliError(
      `change-owner gives root ${v.root.toString()} to ${ownerOut}: the wallet in ${v.dataDir} can no longer ` +
        `govern it, and only ${ownerOut} can give it back; repeat with --yes to do it (nothing sent)`,
    );
  }
  const o = await sendToRoot(v, g, 'change_owner', (q) => changeOwnerBody(owner, q));
  report(
    f,
    v,
    'change-owner',
    `Root ${v.root.toString()} now belongs to ${ownerOut}; the wallet in ${v.dataDir} no longer governs it`,
    o,
    {
      root: v.root.toString(),
      previousOwner: walletText(v.data.owner, v.reach.globalId),
      owner: ownerOut,
    },
    [['previous owner', walletText(v.data.owner, v.reach.globalId)]],
  );
}

export function registerRootGovernanceCommands(program: Command): void {
  const root = program
    .command('root')
    .description(
      'governance of the root contract: show it; deploy it; set its parameters, allow-lists and proxy ' +
        'registry, or give it to another owner, from the wallet that owns it',
    );
  // Sends even what the root's state says it will refuse, to see the root refuse it itself (tests).
  const skipChecks = () =>
    new Option('--skip-checks', "send without checking the root's state first").hideHelp();
  const governed = (cmd: Command) => chainFlags(cmd, GOVERNANCE_DIR_HELP).addOption(skipChecks());

  chainFlags(
    root
      .command('show')
      .description(
        'print the root: owner, parameters, allow-lists (proxy images, worker images, models) and registered proxies (read-only)',
      ),
    `${GOVERNANCE_DIR_HELP}; only to say whether its wallet owns the root`,
  ).action(run(show));

  deployRootCommand(
    root
      .command('deploy')
      .description(
        'deploy a root contract owned by the wallet in --data-dir (the same as cocoon deploy-root)',
      ),
  );

  paramOptions(
    governed(
      root
        .command('set-params')
        .description(
          'change network parameters; unset flags keep their current value, the params version rises by 1 unless given',
        ),
    ),
    () => 'unset: keeps the current value',
    'must rise; unset: the current one + 1',
  ).action(run(setParams));

  // Checked by the action, so a wrong kind is one line (exit 2) like every other error.
  const kindArg = () => new Argument('<kind>', 'which allow-list: proxy-image, worker-image or model');
  const hashArg = () =>
    new Argument(
      '<hash>',
      '64 hex digits (as cocoon model-hash prints it, or an attestation image hash); for a model also name@revision:<hash>',
    );
  governed(
    root
      .command('allow')
      .description('add a hash to an allow-list of the root')
      .addArgument(kindArg())
      .addArgument(hashArg()),
  ).action(run((f: GovernanceFlags, kind, hash) => allowOrDisallow(true, f, kind!, hash!)));
  governed(
    root
      .command('disallow')
      .description('remove a hash from an allow-list of the root')
      .addArgument(kindArg())
      .addArgument(hashArg()),
  ).action(run((f: GovernanceFlags, kind, hash) => allowOrDisallow(false, f, kind!, hash!)));

  governed(
    root
      .command('register-proxy <proxy-contract> <host:port>')
      .description('add a proxy to the registry clients read: its proxy contract and public host:port'),
  ).action(run((f: GovernanceFlags, contract, endpoint) => registerProxy(f, contract!, endpoint!)));
  governed(
    root
      .command('update-proxy <seqno> <proxy-contract> <host:port>')
      .description(
        'replace registry entry #seqno (see cocoon root show) with this proxy contract and host:port',
      ),
  ).action(
    run((f: GovernanceFlags, seqno, contract, endpoint) => updateProxy(f, seqno!, contract!, endpoint!)),
  );
  governed(
    root
      .command('unregister-proxy <seqno>')
      .description('remove registry entry #seqno (see cocoon root show)'),
  ).action(run((f: GovernanceFlags, seqno) => unregisterProxy(f, seqno!)));

  governed(
    root
      .command('change-owner <address>')
      .description('give the root to another owner (its wallet address); needs --yes')
      .option('--yes', 'confirm: the wallet in --data-dir can no longer govern the root afterwards'),
  ).action(run((f: GovernanceFlags, address) => changeOwner(f, address!)));
}
