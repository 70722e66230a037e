import { join, resolve } from 'node:path';
import { toNano } from '@ton/core';
import type { Command } from 'commander';
import { z } from 'zod';
import { loadContractCode } from '../chain/contracts/code.ts';
import type { RootParams } from '../chain/contracts/params.ts';
import { changeOwnerBody, RootContract } from '../chain/contracts/root-contract.ts';
import { formatTon, parseTon } from '../chain/money.ts';
import { loadWalletFile, WalletSender, walletFromMnemonic } from '../chain/wallet.ts';
import { WALLET_FILE } from '../config/build-payments.ts';
import { ConfigError, loadConfig } from '../config/config.ts';
import { LOCAL_PARAMS } from '../local/local-ton.ts';
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

/** `cocoon deploy-root`: governance deploys the root contract (network parameters, proxy registry). */

/** Highest class multiplier the root accepts (10000 = 1×). */
const MAX_MULTIPLIER = 1_000_000;

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
const P = LOCAL_PARAMS;

const deployRootSchema = governanceConfigSchema.extend({
  paramsVersion: uint32.default(P.paramsVersion),
  pricePerToken: tonAmount.default(P.pricePerToken),
  workerFeePerToken: tonAmount.default(P.workerFeePerToken),
  promptMult: multiplier.default(P.promptMult),
  cachedMult: multiplier.default(P.cachedMult),
  completionMult: multiplier.default(P.completionMult),
  reasoningMult: multiplier.default(P.reasoningMult),
  clientCloseDelay: uint32.default(P.clientCloseDelay),
  proxyCloseDelay: uint32.default(P.proxyCloseDelay),
  minClientStake: tonAmount.default(P.minClientStake),
  minProxyStake: tonAmount.default(P.minProxyStake),
});

type ParamFlags = { [K in keyof RootParams]?: string };

/** What the deploying message carries; the root keeps 0.01 TON and returns the rest. */
const DEPLOY_VALUE = toNano('0.1');

function paramsJson(p: RootParams) {
  return {
    ...p,
    pricePerToken: formatTon(p.pricePerToken),
    workerFeePerToken: formatTon(p.workerFeePerToken),
    minClientStake: formatTon(p.minClientStake),
    minProxyStake: formatTon(p.minProxyStake),
  };
}

async function deployRoot(f: ChainFlags & ParamFlags): Promise<void> {
  const c = loadConfig(deployRootSchema, f.config, {
    ...chainFlagValues(f),
    root: undefined,
    paramsVersion: f.paramsVersion,
    pricePerToken: f.pricePerToken,
    workerFeePerToken: f.workerFeePerToken,
    promptMult: f.promptMult,
    cachedMult: f.cachedMult,
    completionMult: f.completionMult,
    reasoningMult: f.reasoningMult,
    clientCloseDelay: f.clientCloseDelay,
    proxyCloseDelay: f.proxyCloseDelay,
    minClientStake: f.minClientStake,
    minProxyStake: f.minProxyStake,
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
      ]) +
      `Point the nodes at it with --root ${address} (or "root" in their config files).\n`,
  );
}

export function registerRootCommands(program: Command): void {
  const cmd = program
    .command('deploy-root')
    .description(
      'governance: deploy a root contract owned by the wallet in --data-dir (default ~/.cocoon/governance)',
    );
  chainFlags(cmd, 'data dir of the governance wallet (default ~/.cocoon/governance)', false)
    .option('--params-version <n>', `parameters version (default ${P.paramsVersion})`)
    .option('--price-per-token <ton>', `price per token (default ${formatTon(P.pricePerToken)})`)
    .option(
      '--worker-fee-per-token <ton>',
      `the worker's share per token (default ${formatTon(P.workerFeePerToken)})`,
    )
    .option('--prompt-mult <n>', `prompt token multiplier, 10000 = 1x (default ${P.promptMult})`)
    .option('--cached-mult <n>', `cached prompt token multiplier (default ${P.cachedMult})`)
    .option('--completion-mult <n>', `completion token multiplier (default ${P.completionMult})`)
    .option('--reasoning-mult <n>', `reasoning token multiplier (default ${P.reasoningMult})`)
    .option('--client-close-delay <s>', `client close delay, seconds (default ${P.clientCloseDelay})`)
    .option('--proxy-close-delay <s>', `proxy close delay, seconds (default ${P.proxyCloseDelay})`)
    .option('--min-client-stake <ton>', `least client stake (default ${formatTon(P.minClientStake)})`)
    .option('--min-proxy-stake <ton>', `least proxy stake (default ${formatTon(P.minProxyStake)})`)
    .action(run(deployRoot));
}
