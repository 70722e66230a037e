import { join, resolve } from 'node:path';
import { toNano } from '@ton/core';
import type { Command } from 'commander';
import { z } from 'zod';
import { loadContractCode } from '../chain/contracts/code.ts';
import { MAX_CLOSE_DELAY } from '../chain/contracts/opcodes.ts';
import type { RootParams } from '../chain/contracts/params.ts';
import { LOCAL_PARAMS } from '../chain/contracts/params.ts';
import { changeOwnerBody, RootContract } from '../chain/contracts/root-contract.ts';
import { formatTon, parseTon } from '../chain/money.ts';
import { loadWalletFile, WALLET_FILE, WalletSender, walletFromMnemonic } from '../chain/wallet.ts';
import { ConfigError, loadConfig } from '../config/config.ts';
import {
  awaitEffect,
  type ChainFlags,
  CliError,
  chainFlags,
  chainFlagValues,
  out,
  printJson,
  reachChain,
  rows,
  run,
  ton,
  walletError,
  walletText,
} from './chain-cli.ts';
import { governanceConfigSchema } from './wallet-commands.ts';

/** `cocoon deploy-root` (also `cocoon root deploy`): governance deploys the root contract (network
 * parameters, allow-lists, proxy registry). The parameter flags are shared with `cocoon root set-params`. */

/** Highest class multiplier the root accepts (10000 = 1×). */
export const MAX_MULTIPLIER = 1_000_000;

const tonAmount = z.string().transform((s, ctx) => {
  try {
    return parseTon(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
const uint32 = z.coerce
  .number()
  .int()
  .min(0)
  .max(2 ** 32 - 1);
const multiplier = z.coerce.number().int().min(0).max(MAX_MULTIPLIER);
/** The root refuses longer close delays (`set_params`); a deployed root must not start with one either. */
const closeDelay = z.coerce.number().int().min(0).max(MAX_CLOSE_DELAY);
const P = LOCAL_PARAMS;

/** The schema of each network parameter, as a flag or a config-file key gives it. */
export const PARAM_SCHEMAS = {
  paramsVersion: uint32,
  pricePerToken: tonAmount,
  workerFeePerToken: tonAmount,
  promptMult: multiplier,
  cachedMult: multiplier,
  completionMult: multiplier,
  reasoningMult: multiplier,
  clientCloseDelay: closeDelay,
  proxyCloseDelay: closeDelay,
  minClientStake: tonAmount,
  minProxyStake: tonAmount,
} as const;

export const PARAM_KEYS = Object.keys(PARAM_SCHEMAS) as (keyof RootParams)[];

const deployRootSchema = governanceConfigSchema.extend({
  paramsVersion: PARAM_SCHEMAS.paramsVersion.default(P.paramsVersion),
  pricePerToken: tonAmount.default(P.pricePerToken),
  workerFeePerToken: tonAmount.default(P.workerFeePerToken),
  promptMult: multiplier.default(P.promptMult),
  cachedMult: multiplier.default(P.cachedMult),
  completionMult: multiplier.default(P.completionMult),
  reasoningMult: multiplier.default(P.reasoningMult),
  clientCloseDelay: closeDelay.default(P.clientCloseDelay),
  proxyCloseDelay: closeDelay.default(P.proxyCloseDelay),
  minClientStake: tonAmount.default(P.minClientStake),
  minProxyStake: tonAmount.default(P.minProxyStake),
});

export type ParamFlags = { [K in keyof RootParams]?: string };

/** The parameter flags' values, keyed as the config file names them. */
export function paramFlagValues(f: ParamFlags): ParamFlags {
  return Object.fromEntries(PARAM_KEYS.map((k) => [k, f[k]]));
}

/** What the deploying message carries; the root keeps 0.01 TON and returns the rest. */
const DEPLOY_VALUE = toNano('0.1');

export function paramsJson(p: RootParams) {
  return {
    ...p,
    pricePerToken: formatTon(p.pricePerToken),
    workerFeePerToken: formatTon(p.workerFeePerToken),
    minClientStake: formatTon(p.minClientStake),
    minProxyStake: formatTon(p.minProxyStake),
  };
}

/** The parameters as `rows` lines. */
export function paramRows(params: RootParams): [string, string][] {
  return [
    ['params version', String(params.paramsVersion)],
    ['price per token', ton(params.pricePerToken)],
    ['worker fee per token', ton(params.workerFeePerToken)],
    [
      'multipliers',
      `prompt ${params.promptMult}, cached ${params.cachedMult}, completion ${params.completionMult}, ` +
        `reasoning ${params.reasoningMult} (10000 = 1x)`,
    ],
    ['close delays', `client ${params.clientCloseDelay} s, proxy ${params.proxyCloseDelay} s`],
    ['min client stake', ton(params.minClientStake)],
    ['min proxy stake', ton(params.minProxyStake)],
  ];
}

/**
 * Adds a flag per network parameter. `unset` says what an unset flag means: deploy-root's default, or
 * set-params' "keeps the current value".
 */
export function paramOptions(
  cmd: Command,
  unset: (defaultText: string) => string,
  versionUnset = unset(String(P.paramsVersion)),
): Command {
  return cmd
    .option('--params-version <n>', `parameters version (${versionUnset})`)
    .option('--price-per-token <ton>', `price per token (${unset(formatTon(P.pricePerToken))})`)
    .option(
      '--worker-fee-per-token <ton>',
      `the worker's share per token (${unset(formatTon(P.workerFeePerToken))})`,
    )
    .option('--prompt-mult <n>', `prompt token multiplier, 10000 = 1x (${unset(String(P.promptMult))})`)
    .option('--cached-mult <n>', `cached prompt token multiplier (${unset(String(P.cachedMult))})`)
    .option('--completion-mult <n>', `completion token multiplier (${unset(String(P.completionMult))})`)
    .option('--reasoning-mult <n>', `reasoning token multiplier (${unset(String(P.reasoningMult))})`)
    .option(
      '--client-close-delay <s>',
      `client close delay, seconds, at most ${MAX_CLOSE_DELAY} (${unset(String(P.clientCloseDelay))})`,
    )
    .option(
      '--proxy-close-delay <s>',
      `proxy close delay, seconds, at most ${MAX_CLOSE_DELAY} (${unset(String(P.proxyCloseDelay))})`,
    )
    .option('--min-client-stake <ton>', `least client stake (${unset(formatTon(P.minClientStake))})`)
    .option('--min-proxy-stake <ton>', `least proxy stake (${unset(formatTon(P.minProxyStake))})`);
}

/** `loadConfig`, its "invalid configuration" issues on one line (errors are one line; exit 2). */
export function loadConfigLine<S extends z.ZodType>(
  schema: S,
  configPath: string | undefined,
  flags: Record<string, unknown>,
): z.infer<S> {
  try {
    return loadConfig(schema, configPath, flags);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const [head, ...issues] = err.message.split('\n').map((l) => l.trim());
    throw new ConfigError(issues.length ? `${head} ${issues.join('; ')}` : err.message);
  }
}

async function deployRoot(f: ChainFlags & ParamFlags): Promise<void> {
  const c = loadConfigLine(deployRootSchema, f.config, {
    ...chainFlagValues(f),
    root: undefined,
    ...paramFlagValues(f),
  });
  const params: RootParams = {
    paramsVersion: c.paramsVersion,
    pricePerToken: c.pricePerToken,
    workerFeePerToken: c.workerFeePerToken,
    promptMult: c.promptMult,
    cachedMult: c.cachedMult,
    completionMult: c.completionMult,
    reasoningMult: c.reasoningMult,
    clientCloseDelay: c.clientCloseDelay,
    proxyCloseDelay: c.proxyCloseDelay,
    minClientStake: c.minClientStake,
    minProxyStake: c.minProxyStake,
  };
  if (params.workerFeePerToken > params.pricePerToken) {
    throw new ConfigError(
      `workerFeePerToken: ${ton(params.workerFeePerToken)} is above the price per token ${ton(params.pricePerToken)}`,
    );
  }
  const dataDir = resolve(c.dataDir);
  let words: string[];
  try {
    words = await loadWalletFile(join(dataDir, WALLET_FILE));
  } catch (err) {
    throw walletError(err, dataDir, true);
  }
  const reach = await reachChain(c);
  const wallet = await walletFromMnemonic(words, reach.globalId);
  const root = RootContract.fromInit({ owner: wallet.address, params }, await loadContractCode('root'));
  const address = root.address.toString();
  if (await reach.chain.isDeployed(root.address)) {
    throw new CliError(
      `a root owned by this wallet with these parameters is already deployed at ${address}; nothing sent`,
    );
  }
  const sender = new WalletSender(reach.chain.client, wallet, { pollIntervalMs: reach.local ? 100 : 1000 });
  // Deployed by its first owner operation; handing ownership to the owner itself changes nothing else.
  await sender.send([
    { to: root.address, value: DEPLOY_VALUE, body: changeOwnerBody(wallet.address), init: root.init! },
  ]);
  await awaitEffect(
    reach,
    async () => (await reach.chain.isDeployed(root.address)) || null,
    `the deployment of ${address} was sent, but the root is not active on ${c.chainEndpoint}; check the wallet's transactions`,
  );
  const owner = walletText(wallet.address, reach.globalId);
  if (f.json) {
    printJson({ root: address, owner, endpoint: c.chainEndpoint, params: paramsJson(params) });
    return;
  }
  out(
    `Deployed root contract ${address}\n` +
      rows([
        ['owner', `${owner} (wallet ${join(dataDir, WALLET_FILE)})`],
        ['network', `global id ${reach.globalId} (${c.chainEndpoint})`],
        ...paramRows(params),
      ]) +
      `Point the nodes at it with --root ${address} (or "root" in their config files).\n`,
  );
}

/** The options and action of deploying a root, on `cmd` (`cocoon deploy-root`, `cocoon root deploy`). */
export function deployRootCommand(cmd: Command): Command {
  return paramOptions(
    chainFlags(cmd, 'data dir of the governance wallet (default ~/.cocoon/governance)', false),
    (d) => `default ${d}`,
  ).action(run(deployRoot));
}
