import type { Address } from '@ton/core';
import type { Command } from 'commander';
import { loadOrCreateNodeKey } from '../attest/identity.ts';
import {
  type ClientContract,
  clientCloseBody,
  clientRequestCloseBody,
  clientWithdrawBody,
} from '../chain/contracts/client-contract.ts';
import { ContractState, MIN_FORWARD_VALUE } from '../chain/contracts/opcodes.ts';
import { type ProxyRegistryEntry, RootContract } from '../chain/contracts/root-contract.ts';
import { clientDepositMessages } from '../chain/payments-chain.ts';
import { DEPOSIT_GAS, type NodeChain } from '../config/build-payments.ts';
import { type ClientConfig, clientConfigSchema, loadConfig } from '../config/config.ts';
import type { ClientChainState } from '../pay/client-account.ts';
import {
  awaitEffect,
  type ChainFlags,
  CliError,
  chainFlags,
  chainFlagValues,
  chainNow,
  openNode,
  out,
  parseAddress,
  parseAmount,
  printJson,
  type Reach,
  rows,
  run,
  stateName,
  ton,
  walletText,
  whenText,
} from './chain-cli.ts';

/**
 * `cocoon client deposit|withdraw|balance|close`: the client contract, derived from the client's wallet,
 * its node key and the proxy contract it pays (as the client daemon derives it).
 */

interface ClientFlags extends ChainFlags {
  proxy?: string;
  proxyContract?: string;
}

interface ClientCtx {
  c: ClientConfig;
  nc: NodeChain;
  reach: Reach;
  contract: ClientContract;
  proxy: { address: Address; endpoint: string | null };
}

function sameEndpoint(endpoint: string, want: { host: string; port: number }): boolean {
  const i = endpoint.lastIndexOf(':');
  if (i < 0) return false;
  const host = endpoint
    .slice(0, i)
    .replace(/^\[|\]$/g, '')
    .toLowerCase();
  return host === want.host.toLowerCase() && Number(endpoint.slice(i + 1)) === want.port;
}

const listProxies = (ps: ProxyRegistryEntry[]) =>
  ps.map((p) => `${p.address.toString()} (${p.endpoint})`).join(', ');

/** `--proxy-contract`, else the registered proxy at the configured `proxy` host:port, else the only one. */
async function pickProxy(
  nc: NodeChain,
  c: ClientConfig,
  flag: string | undefined,
): Promise<ClientCtx['proxy']> {
  const { proxies } = await nc.chain.open(RootContract.fromAddress(nc.root)).getRootData();
  if (flag) {
    const address = parseAddress(flag, 'proxy-contract');
    return { address, endpoint: proxies.find((p) => p.address.equals(address))?.endpoint ?? null };
  }
  // Money commands act on one client contract: the one with the first configured proxy.
  const first = c.proxy[0]!;
  const want = `${first.host}:${first.port}`;
  if (proxies.length === 0) {
    throw new CliError(
      `the root ${nc.root.toString()} has no registered proxies; pass --proxy-contract <address>`,
    );
  }
  const at = proxies.filter((p) => sameEndpoint(p.endpoint, first));
  if (at.length === 1) return { address: at[0]!.address, endpoint: at[0]!.endpoint };
  if (at.length > 1) {
    throw new CliError(
      `several proxies are registered at ${want}: ${listProxies(at)}; pick one with --proxy-contract`,
    );
  }
  if (proxies.length === 1) return { address: proxies[0]!.address, endpoint: proxies[0]!.endpoint };
  throw new CliError(
    `none of the root's proxies is at ${want}: ${listProxies(proxies)}; pick one with --proxy-contract <address> ` +
      'or --proxy <host:port>',
  );
}

async function openClient(f: ClientFlags): Promise<ClientCtx> {
  const c = loadConfig(clientConfigSchema, f.config, { ...chainFlagValues(f), proxy: f.proxy });
  const { nc, reach } = await openNode(c);
  const key = await loadOrCreateNodeKey(c.dataDir);
  const proxy = await pickProxy(nc, c, f.proxyContract);
  const contract = nc.payments.clientContractOf(nc.sender.address, key.publicKey, proxy.address);
  return { c, nc, reach, contract, proxy };
}

/** What the client contract has received and not paid back: charges only move it from balance to charged. */
const intake = (s: ClientChainState) => s.balance + s.charged;

const stateOf = (ctx: ClientCtx) => ctx.nc.payments.clientState(ctx.contract.address);

function accountJson(ctx: ClientCtx, s: ClientChainState, walletBalance: bigint) {
  return {
    contract: ctx.contract.address.toString(),
    proxyContract: ctx.proxy.address.toString(),
    proxyEndpoint: ctx.proxy.endpoint,
    deployed: s.deployed,
    state: s.deployed ? stateName(s.state) : 'not deployed',
    balance: s.balance,
    stake: s.deployed ? s.stake : ctx.nc.payments.rootParams.minClientStake,
    withdrawable: withdrawable(s),
    charged: s.charged,
    seqno: s.seqno.toString(),
    unlockAt: s.state === ContractState.closing ? s.unlockAt : null,
    wallet: { address: walletText(ctx.nc.sender.address, ctx.nc.payments.globalId), balance: walletBalance },
  };
}

const withdrawable = (s: ClientChainState) =>
  s.deployed && s.state === ContractState.open && s.balance > s.stake ? s.balance - s.stake : 0n;

function accountRows(ctx: ClientCtx, s: ClientChainState, walletBalance: bigint, now: number): string {
  const head = `client contract ${ctx.contract.address.toString()}\n`;
  const proxy: [string, string] = [
    'proxy contract',
    `${ctx.proxy.address.toString()}${ctx.proxy.endpoint ? ` (${ctx.proxy.endpoint})` : ' (not registered in the root)'}`,
  ];
  const wallet = `wallet ${walletText(ctx.nc.sender.address, ctx.nc.payments.globalId)}\n${rows([['balance', ton(walletBalance)]])}`;
  if (!s.deployed) {
    return (
      head +
      rows([
        proxy,
        ['state', 'not deployed yet (the first deposit creates it)'],
        ['balance', ton(0n)],
        ['stake', `${ton(ctx.nc.payments.rootParams.minClientStake)} (from the root, once deployed)`],
      ]) +
      wallet
    );
  }
  return (
    head +
    rows([
      proxy,
      ['state', stateName(s.state)],
      ['balance', ton(s.balance)],
      [
        'stake',
        s.state === ContractState.open
          ? `${ton(s.stake)} (must stay in the balance while open)`
          : ton(s.stake),
      ],
      ['withdrawable', ton(withdrawable(s))],
      ['charged', `${ton(s.charged)} (paid to the proxy so far)`],
      ['unlock time', s.state === ContractState.closing ? whenText(s.unlockAt, now) : '-'],
    ]) +
    wallet
  );
}

async function balance(f: ClientFlags): Promise<void> {
  const ctx = await openClient(f);
  const [s, w, now] = await Promise.all([
    stateOf(ctx),
    ctx.nc.chain.getBalance(ctx.nc.sender.address),
    chainNow(ctx.reach),
  ]);
  if (f.json) printJson(accountJson(ctx, s, w));
  else out(accountRows(ctx, s, w, now));
}

async function deposit(f: ClientFlags, amountText: string): Promise<void> {
  const amount = parseAmount(amountText);
  const ctx = await openClient(f);
  const addr = ctx.contract.address;
  const before = await stateOf(ctx);
  if (before.deployed && before.state !== ContractState.open) {
    throw new CliError(
      `client contract ${addr.toString()} is ${stateName(before.state)}: it takes no deposits` +
        (before.state === ContractState.closing ? ' (`cocoon client close` pays it out once unlocked)' : ''),
    );
  }
  // The top-up, and (the first time, or after the root raised them) the root's stake and close delay.
  await ctx.nc.sender.send(
    clientDepositMessages(ctx.contract, before, amount, ctx.nc.payments.rootParams, DEPOSIT_GAS),
  );
  const after = await awaitEffect(
    ctx.reach,
    async () => {
      const s = await stateOf(ctx);
      const p = ctx.nc.payments.rootParams;
      return s.deployed &&
        intake(s) >= intake(before) + amount &&
        s.stake >= p.minClientStake &&
        s.closeDelay >= p.clientCloseDelay
        ? s
        : null;
    },
    `the deposit was sent, but client contract ${addr.toString()} did not take it (refused or not landed yet); ` +
      'the unused value returns to the wallet',
  );
  const w = await ctx.nc.chain.getBalance(ctx.nc.sender.address);
  if (f.json) {
    printJson({ action: 'deposit', amount, created: !before.deployed, ...accountJson(ctx, after, w) });
    return;
  }
  out(
    `Deposited ${ton(amount)} into client contract ${addr.toString()}${before.deployed ? '' : ' (created it)'}\n` +
      rows([
        ['balance', ton(after.balance)],
        ['stake', ton(after.stake)],
        ['withdrawable', ton(withdrawable(after))],
        ['wallet balance', ton(w)],
      ]),
  );
}

async function withdraw(f: ClientFlags, amountText: string): Promise<void> {
  const amount = parseAmount(amountText);
  const ctx = await openClient(f);
  const addr = ctx.contract.address.toString();
  const before = await stateOf(ctx);
  if (!before.deployed) throw new CliError(`client contract ${addr} is not deployed: nothing to withdraw`);
  if (before.state !== ContractState.open) {
    throw new CliError(
      `client contract ${addr} is ${stateName(before.state)}: withdrawals need an open contract` +
        (before.state === ContractState.closing
          ? ' (`cocoon client close` pays out everything once unlocked)'
          : ''),
    );
  }
  if (before.balance - amount < before.stake) {
    throw new CliError(
      `cannot withdraw ${ton(amount)}: the balance is ${ton(before.balance)} and the stake of ${ton(before.stake)} ` +
        `must stay, so at most ${ton(withdrawable(before))} can be withdrawn (all of it: cocoon client close); ` +
        'nothing was sent',
    );
  }
  await ctx.nc.sender.send([
    { to: ctx.contract.address, value: MIN_FORWARD_VALUE, body: clientWithdrawBody(amount) },
  ]);
  const after = await awaitEffect(
    ctx.reach,
    async () => {
      const s = await stateOf(ctx);
      return intake(s) <= intake(before) - amount ? s : null;
    },
    `the withdrawal was sent, but client contract ${addr} did not pay it (refused or not landed yet)`,
  );
  const w = await ctx.nc.chain.getBalance(ctx.nc.sender.address);
  if (f.json) {
    printJson({ action: 'withdraw', amount, ...accountJson(ctx, after, w) });
    return;
  }
  out(
    `Withdrew ${ton(amount)} from client contract ${addr} to wallet ${walletText(ctx.nc.sender.address, ctx.nc.payments.globalId)}\n` +
      rows([
        ['balance', ton(after.balance)],
        ['stake', ton(after.stake)],
        ['withdrawable', ton(withdrawable(after))],
        ['wallet balance', ton(w)],
      ]),
  );
}

async function close(f: ClientFlags): Promise<void> {
  const ctx = await openClient(f);
  const addr = ctx.contract.address.toString();
  const before = await stateOf(ctx);
  const now = await chainNow(ctx.reach);
  if (!before.deployed) throw new CliError(`client contract ${addr} is not deployed: nothing to close`);
  if (before.state === ContractState.closed) {
    if (f.json) printJson({ action: 'none', state: 'closed', contract: addr });
    else out(`Client contract ${addr} is already closed; nothing to do.\n`);
    return;
  }
  if (before.state === ContractState.closing && now < before.unlockAt) {
    throw new CliError(
      `closing of client contract ${addr} was already requested; the final close is possible from ` +
        `${whenText(before.unlockAt, now)}`,
    );
  }
  if (before.state === ContractState.open) {
    await ctx.nc.sender.send([
      { to: ctx.contract.address, value: MIN_FORWARD_VALUE, body: clientRequestCloseBody() },
    ]);
    const after = await awaitEffect(
      ctx.reach,
      async () => {
        const s = await stateOf(ctx);
        return s.state === ContractState.closing ? s : null;
      },
      `the close request was sent, but client contract ${addr} is still open (refused or not landed yet)`,
    );
    if (f.json) {
      printJson({
        action: 'request_close',
        contract: addr,
        state: 'closing',
        unlockAt: after.unlockAt,
        balance: after.balance,
      });
      return;
    }
    out(
      `Requested closing of client contract ${addr} (request_close).\n` +
        rows([
          ['state', 'closing: no more deposits or withdrawals; the proxy can still redeem what you signed'],
          ['balance', ton(after.balance)],
          ['final close', `possible from ${whenText(after.unlockAt, await chainNow(ctx.reach))}`],
        ]) +
        'Then run `cocoon client close` again: it pays the whole balance to the wallet.\n',
    );
    return;
  }
  // closing and unlocked: the final close pays the balance to the wallet
  await ctx.nc.sender.send([{ to: ctx.contract.address, value: MIN_FORWARD_VALUE, body: clientCloseBody() }]);
  const after = await awaitEffect(
    ctx.reach,
    async () => {
      const s = await stateOf(ctx);
      return s.state === ContractState.closed ? s : null;
    },
    `the close was sent, but client contract ${addr} is not closed (refused or not landed yet)`,
  );
  const w = await ctx.nc.chain.getBalance(ctx.nc.sender.address);
  const refunded = before.balance - after.balance;
  if (f.json) {
    printJson({ action: 'close', contract: addr, state: 'closed', refunded, walletBalance: w });
    return;
  }
  out(
    `Closed client contract ${addr} (close): paid ${ton(refunded)} to wallet ` +
      `${walletText(ctx.nc.sender.address, ctx.nc.payments.globalId)}\n` +
      rows([['wallet balance', ton(w)]]),
  );
}

export function registerClientMoneyCommands(program: Command): void {
  const client = program.commands.find((c) => c.name() === 'client');
  if (!client) throw new Error("no 'client' command to add to");
  const sub = (name: string, description: string) =>
    chainFlags(client.command(name).description(description))
      .option(
        '--proxy <host:port>',
        'proxy client port, to pick its contract in the root (default 127.0.0.1:11002)',
      )
      .option(
        '--proxy-contract <address>',
        'the proxy contract to pay (default: the registered proxy at --proxy)',
      );
  sub(
    'deposit <ton>',
    'top up the client contract from the wallet (creates the contract the first time)',
  ).action(run(deposit));
  sub('withdraw <ton>', 'take TON back from the client contract to the wallet (its stake must stay)').action(
    run(withdraw),
  );
  sub('balance', "show the client contract (balance, stake, charged, state) and the wallet's balance").action(
    run(balance),
  );
  sub(
    'close',
    'request closing the client contract, or close it and take the balance once the delay passed',
  ).action(run(close));
}
