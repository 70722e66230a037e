import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Address } from '@ton/core';
import { type Command, Option } from 'commander';
import { z } from 'zod';
import { GLOBAL_IDS, TonChain } from '../chain/ton-chain.ts';
import {
  createWalletFile,
  loadWalletFile,
  WALLET_FILE,
  WalletFileError,
  walletFromMnemonic,
} from '../chain/wallet.ts';
import {
  ConfigError,
  clientConfigSchema,
  loadConfig,
  proxyConfigSchema,
  workerConfigSchema,
} from '../config/config.ts';
import {
  type ChainFlags,
  CliError,
  chainFlags,
  chainFlagValues,
  describeError,
  out,
  parseAmount,
  printJson,
  type Reach,
  reachChain,
  rows,
  run,
  ton,
  walletError,
  walletText,
} from './chain-cli.ts';

/** `cocoon wallet create|show|fund`: the TON wallet (24-word mnemonic in `<dataDir>/wallet.json`) of a node. */

export const WALLET_ROLES = ['client', 'proxy', 'worker', 'governance'] as const;
type WalletRole = (typeof WALLET_ROLES)[number];

const chainPart = clientConfigSchema.pick({ chainEndpoint: true, chainApiKey: true, root: true });

/** The governance wallet (it owns the root): `cocoon deploy-root` and `cocoon wallet --role governance`. */
export const governanceConfigSchema = chainPart.extend({
  dataDir: z.string().default(join(homedir(), '.cocoon', 'governance')),
});

const anyWalletSchema = chainPart.extend({
  dataDir: z.string({ error: 'say which wallet: --role client|proxy|worker|governance or --data-dir <dir>' }),
});

interface WalletFlags extends ChainFlags {
  role?: WalletRole;
}

function walletConfig(f: WalletFlags): { dataDir: string; chainEndpoint: string; chainApiKey?: string } {
  const flags = chainFlagValues(f);
  // A config file is some node's, checked strictly against that node's keys: say whose.
  if (f.config && !f.role) {
    throw new ConfigError(
      `--config ${f.config}: say whose config it is with --role client|proxy|worker|governance`,
    );
  }
  if (!f.role && f.dataDir === undefined) {
    throw new ConfigError('say which wallet: --role client|proxy|worker|governance or --data-dir <dir>');
  }
  const c =
    f.role === 'client'
      ? loadConfig(clientConfigSchema, f.config, flags)
      : f.role === 'proxy'
        ? loadConfig(proxyConfigSchema, f.config, flags)
        : f.role === 'worker'
          ? loadConfig(workerConfigSchema, f.config, flags)
          : f.role === 'governance'
            ? loadConfig(governanceConfigSchema, f.config, flags)
            : loadConfig(anyWalletSchema, f.config, flags);
  return {
    dataDir: resolve(c.dataDir),
    chainEndpoint: c.chainEndpoint,
    ...(c.chainApiKey ? { chainApiKey: c.chainApiKey } : {}),
  };
}

/** The chain, if it answers within a few seconds; otherwise why not. */
async function tryReach(c: { chainEndpoint: string; chainApiKey?: string }): Promise<Reach | string> {
  try {
    return await reachChain(c, 8000);
  } catch (err) {
    return describeError(err);
  }
}

/** The wallet's address on each public network (a V5 wallet id includes the network's global id). */
async function publicAddresses(words: string[]) {
  const [mainnet, testnet] = await Promise.all([
    walletFromMnemonic(words, GLOBAL_IDS.mainnet),
    walletFromMnemonic(words, GLOBAL_IDS.testnet),
  ]);
  return {
    mainnet: walletText(mainnet.address, GLOBAL_IDS.mainnet),
    testnet: walletText(testnet.address, GLOBAL_IDS.testnet),
  };
}

async function create(f: WalletFlags): Promise<void> {
  const c = walletConfig(f);
  const path = join(c.dataDir, WALLET_FILE);
  let words: string[];
  try {
    words = (await createWalletFile(path)).mnemonic;
  } catch (err) {
    if (err instanceof WalletFileError) throw new CliError(err.message);
    throw err;
  }
  const reach = await tryReach(c);
  const keepSafe = 'back it up and keep it private: whoever has the words controls the funds';
  if (typeof reach !== 'string') {
    const w = await walletFromMnemonic(words, reach.globalId);
    if (f.json) {
      printJson(walletJson(path, w.address, reach));
      return;
    }
    out(
      `Created wallet ${path}\n` +
        rows([
          ['address', walletText(w.address, reach.globalId)],
          ['network', `global id ${reach.globalId} (${c.chainEndpoint})`],
          ['mnemonic', `24 words in ${path} (mode 0600); ${keepSafe}`],
        ]) +
        `Fund the address with TON before paying or being paid; check it with: cocoon wallet show --data-dir ${c.dataDir}\n`,
    );
    return;
  }
  const addresses = await publicAddresses(words);
  if (f.json) {
    printJson({ walletFile: path, address: null, chainError: reach, addresses });
    return;
  }
  out(
    `Created wallet ${path}\n` +
      rows([
        ['address', `unknown for ${c.chainEndpoint}: ${reach}`],
        ['on mainnet', addresses.mainnet],
        ['on testnet', addresses.testnet],
        ['mnemonic', `24 words in ${path} (mode 0600); ${keepSafe}`],
      ]),
  );
}

async function show(f: WalletFlags): Promise<void> {
  const c = walletConfig(f);
  const path = join(c.dataDir, WALLET_FILE);
  let words: string[];
  try {
    words = await loadWalletFile(path);
  } catch (err) {
    throw walletError(err, c.dataDir);
  }
  const reach = await tryReach(c);
  if (typeof reach === 'string') {
    const addresses = await publicAddresses(words);
    if (f.json) {
      printJson({ walletFile: path, address: null, balance: null, chainError: reach, addresses });
      return;
    }
    out(
      `wallet ${path}\n` +
        rows([
          ['address', `unknown for ${c.chainEndpoint}`],
          ['on mainnet', addresses.mainnet],
          ['on testnet', addresses.testnet],
          ['balance', `unknown: ${reach}`],
        ]),
    );
    return;
  }
  const w = await walletFromMnemonic(words, reach.globalId);
  const state = await reach.chain.client.getContractState(w.address);
  const status = walletStatus(state);
  if (f.json) {
    printJson({ ...walletJson(path, w.address, reach), balance: state.balance, status });
    return;
  }
  out(
    `wallet ${path}\n` +
      rows([
        ['address', walletText(w.address, reach.globalId)],
        ['network', `global id ${reach.globalId} (${c.chainEndpoint})`],
        ['balance', `${ton(state.balance)} (${status})`],
      ]),
  );
}

/**
 * `cocoon wallet fund <TON>`: the local dev chain's faucet mints TON into the wallet of the data dir; a
 * missing wallet is created first (and the output says so: its mnemonic is new, and in that file only).
 * Any other chain (no /cocoon/info: toncenter, testnet, mainnet) is refused with the way to fund the wallet
 * there, and nothing is created.
 */
async function fund(f: WalletFlags, amountText: string): Promise<void> {
  const c = walletConfig(f);
  const amount = parseAmount(amountText);
  const path = join(c.dataDir, WALLET_FILE);
  const chain = TonChain.connect({
    endpoint: c.chainEndpoint,
    ...(c.chainApiKey ? { apiKey: c.chainApiKey } : {}),
    timeoutMs: 8000,
  });
  const info = await chain.localInfo().catch(() => null);
  let words: string[] | null;
  try {
    words = await loadWalletFile(path);
  } catch (err) {
    if (!(err instanceof WalletFileError && err.code === 'wallet_not_found'))
      throw walletError(err, c.dataDir);
    words = null;
  }
  if (!info) throw await notLocal(c, words, c.dataDir);
  const created = words === null;
  if (words === null) {
    try {
      words = (await createWalletFile(path)).mnemonic;
    } catch (err) {
      if (err instanceof WalletFileError) throw new CliError(err.message);
      throw err;
    }
  }
  const w = await walletFromMnemonic(words, info.globalId);
  try {
    await chain.localFaucet(w.address, amount);
  } catch (err) {
    throw new CliError(
      `the local chain's faucet did not pay ${ton(amount)}: ${describeError(err)}` +
        (created ? ` (the new wallet ${path} was created, empty)` : ''),
    );
  }
  const state = await chain.client.getContractState(w.address);
  const status = walletStatus(state);
  const reach: Reach = { chain, endpoint: c.chainEndpoint, globalId: info.globalId, local: true };
  if (f.json) {
    printJson({
      ...walletJson(path, w.address, reach),
      created,
      funded: amount,
      balance: state.balance,
      status,
    });
    return;
  }
  out(
    (created
      ? `Created wallet ${path} (there was none): 24 new words in it (mode 0600), the only copy\n`
      : '') +
      `Funded wallet ${path} with ${ton(amount)} from the local chain's faucet (dev only)\n` +
      rows([
        ['address', walletText(w.address, info.globalId)],
        ['network', `global id ${info.globalId} (${c.chainEndpoint}, local)`],
        ['balance', `${ton(state.balance)} (${status})`],
      ]),
  );
}

/** Why `wallet fund` cannot work on this chain, and how to fund the wallet (if any) there instead. */
async function notLocal(
  c: { chainEndpoint: string; chainApiKey?: string },
  words: string[] | null,
  dataDir: string,
): Promise<CliError> {
  const reach = await tryReach(c);
  if (typeof reach === 'string' && /cannot reach/.test(reach)) return new CliError(reach);
  const head =
    `${c.chainEndpoint} is not a local dev chain (it has no /cocoon/info): \`cocoon wallet fund\` only mints ` +
    'TON on the chain of `cocoon chain` or `cocoon local`.';
  const testnetWay = (addr: string) =>
    `On testnet, get test TON for ${addr} from the Telegram faucet bot @testgiver_ton_bot, or transfer TON to it from another wallet`;
  if (words === null) {
    return new CliError(
      `${head} There is no wallet in ${dataDir} either (nothing created): create one with ` +
        `cocoon wallet create --data-dir ${dataDir}, then on testnet get test TON for its address from the ` +
        'Telegram faucet bot @testgiver_ton_bot, or transfer TON to it from another wallet.',
    );
  }
  if (typeof reach !== 'string') {
    const w = await walletFromMnemonic(words, reach.globalId);
    const addr = walletText(w.address, reach.globalId);
    if (reach.globalId === GLOBAL_IDS.mainnet) {
      return new CliError(
        `${head} On mainnet, transfer TON to the wallet's address ${addr} from another wallet.`,
      );
    }
    return new CliError(`${head} ${testnetWay(addr)} (global id ${reach.globalId}).`);
  }
  const addresses = await publicAddresses(words);
  return new CliError(
    `${head} ${testnetWay(addresses.testnet)}; on mainnet, transfer TON to ${addresses.mainnet}.`,
  );
}

const walletStatus = (state: { state: string; balance: bigint }) =>
  state.state === 'active' ? 'deployed' : state.balance > 0n ? 'funded, not deployed yet' : 'empty';

export function registerWalletCommands(program: Command): void {
  const wallet = program
    .command('wallet')
    .description("a node's TON wallet: the 24-word mnemonic in <data dir>/wallet.json");
  const roleOption = () =>
    new Option('--role <role>', "use the role's default data dir (~/.cocoon/<role>)").choices(WALLET_ROLES);
  chainFlags(
    wallet
      .command('create')
      .description('create a new wallet in the data dir (never overwrites one) and print its address')
      .addOption(roleOption()),
    'where to create wallet.json (or use --role)',
  ).action(run(create));
  chainFlags(
    wallet
      .command('show')
      .description("print the wallet's address and, if the chain is reachable, its balance")
      .addOption(roleOption()),
    'the data dir holding wallet.json (or use --role)',
  ).action(run(show));
  chainFlags(
    wallet
      .command('fund <ton>')
      .description(
        "local dev chain only: mint TON into the wallet (created if missing) from the chain's faucet and " +
          'print its balance (on testnet or mainnet it says how to fund the wallet instead)',
      )
      .addOption(roleOption()),
    'the data dir of the wallet (or use --role); on the local chain a missing wallet is created',
    false,
  ).action(run(fund));
}

/** A wallet as `--json` shows it once the chain (and so its network) is known. */
function walletJson(path: string, address: Address, reach: Reach) {
  return {
    walletFile: path,
    address: walletText(address, reach.globalId),
    rawAddress: address.toRawString(),
    globalId: reach.globalId,
    endpoint: reach.endpoint,
  };
}
