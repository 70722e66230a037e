import type { KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Address } from '@ton/core';
import type { Command } from 'commander';
import { loadOrCreateNodeKey } from '../attest/identity.ts';
import { ContractState, MIN_FORWARD_VALUE } from '../chain/contracts/opcodes.ts';
import {
  ProxyContract,
  proxyCommissionAt,
  withdrawCommissionBody,
} from '../chain/contracts/proxy-contract.ts';
import { RootContract } from '../chain/contracts/root-contract.ts';
import { WorkerContract } from '../chain/contracts/worker-contract.ts';
import type { TonChain } from '../chain/ton-chain.ts';
import { type NodeChain, proxyContractOf } from '../config/build-payments.ts';
import { loadConfig, proxyConfigSchema, workerConfigSchema } from '../config/config.ts';
import { Ledger } from '../pay/ledger.ts';
import {
  type Signed,
  uintToPublicKey,
  verifyCell,
  type WorkerPayout,
  workerPayoutCell,
} from '../pay/signed-messages.ts';
import type { WorkerAccountRecord } from '../pay/worker-account.ts';
import {
  awaitEffect,
  type ChainFlags,
  CliError,
  chainFlags,
  chainFlagValues,
  chainNow,
  describeError,
  openNode,
  out,
  parseAddress,
  printJson,
  reachChain,
  reportError,
  rows,
  run,
  stateName,
  ton,
  walletText,
  whenText,
} from './chain-cli.ts';

/**
 * `cocoon worker earnings|payout` and `cocoon proxy earnings|payout`: what the signed state in a node's
 * ledger is worth on-chain, and redeeming it now.
 */

// ─── worker ───

/** A worker's newest signed payout per worker contract, as `Earnings` writes it (`payout/<raw address>`). */
interface PayoutRecord {
  seqno: string;
  workerTotal: string;
  proxyTotal: string;
  signature: string;
}

interface LedgerPayout {
  contract: Address;
  seqno: bigint;
  workerTotal: bigint;
  proxyTotal: bigint;
  signature: Buffer;
}

/** The ledger's payouts, or null when the node has no ledger yet (nothing is created by reading). */
function readPayouts(dataDir: string): { path: string; payouts: LedgerPayout[] | null } {
  const path = join(dataDir, 'ledger');
  if (!existsSync(path)) return { path, payouts: null };
  return { path, payouts: payoutsIn(Ledger.open(path, 'process')) };
}

function payoutsIn(ledger: Ledger): LedgerPayout[] {
  return [...ledger.entries<PayoutRecord>('payout/')].map(([k, r]) => ({
    contract: Address.parseRaw(k.slice('payout/'.length)),
    seqno: BigInt(r.seqno),
    workerTotal: BigInt(r.workerTotal),
    proxyTotal: BigInt(r.proxyTotal),
    signature: Buffer.from(r.signature, 'hex'),
  }));
}

interface WorkerOnChain {
  deployed: boolean;
  seqno: bigint;
  paidWorker: bigint;
  paidProxy: bigint;
  owner: Address | null;
  proxy: Address | null;
  proxyKey: bigint | null;
}

async function workerOnChain(chain: TonChain, contract: Address): Promise<WorkerOnChain> {
  if (!(await chain.isDeployed(contract))) {
    return {
      deployed: false,
      seqno: 0n,
      paidWorker: 0n,
      paidProxy: 0n,
      owner: null,
      proxy: null,
      proxyKey: null,
    };
  }
  const d = await chain.open(WorkerContract.fromAddress(contract)).getWorkerData();
  return { deployed: true, ...d };
}

async function workerEarnings(f: ChainFlags): Promise<void> {
  const c = loadConfig(workerConfigSchema, f.config, chainFlagValues(f));
  const { path, payouts } = readPayouts(c.dataDir);
  if (!payouts || payouts.length === 0) {
    if (f.json) printJson({ ledger: path, contracts: [], totalDue: 0n });
    else out(`No signed payouts in ${path}: this worker has not been paid by any proxy yet.\n`);
    return;
  }
  let chainError: string | null = null;
  let chain: TonChain | null = null;
  try {
    chain = (await reachChain(c, 10_000)).chain;
  } catch (err) {
    chainError = describeError(err);
  }
  const items = await Promise.all(
    payouts.map(async (p) => ({ p, on: chain ? await workerOnChain(chain, p.contract) : null })),
  );
  const due = (x: (typeof items)[number]) =>
    x.on && x.p.workerTotal > x.on.paidWorker ? x.p.workerTotal - x.on.paidWorker : 0n;
  const totalDue = items.reduce((s, x) => s + due(x), 0n);
  if (f.json) {
    printJson({
      ledger: path,
      chainError,
      contracts: items.map((x) => ({
        contract: x.p.contract.toString(),
        deployed: x.on?.deployed ?? null,
        proxyContract: x.on?.proxy?.toString() ?? null,
        seqno: x.p.seqno.toString(),
        signed: x.p.workerTotal,
        paid: x.on ? x.on.paidWorker : null,
        due: x.on ? due(x) : null,
      })),
      totalDue: chain ? totalDue : null,
    });
    return;
  }
  let text = '';
  for (const x of items) {
    const where = x.on?.proxy
      ? `proxy contract ${x.on.proxy.toString()}`
      : x.on
        ? 'not deployed yet'
        : 'chain unknown';
    text +=
      `worker contract ${x.p.contract.toString()} (${where})\n` +
      rows([
        ['signed total', `${ton(x.p.workerTotal)} (payout seqno ${x.p.seqno})`],
        ['paid on-chain', x.on ? ton(x.on.paidWorker) : `unknown: ${chainError}`],
        ['due', x.on ? ton(due(x)) : 'unknown'],
      ]);
  }
  if (chain)
    text += `total due: ${ton(totalDue)}${totalDue > 0n ? ' (redeem now: cocoon worker payout)' : ''}\n`;
  out(text);
}

interface PayoutInit {
  owner: Address;
  proxyContract: Address;
  proxyKey: KeyObject;
}

/**
 * The (owner, proxy contract, proxy key) a worker contract was made with. On-chain data when it is
 * deployed; otherwise the ledger keeps only the signed payout, so try the root's registered proxies (or
 * `--proxy-contract`) with our wallet as owner until one gives this address.
 */
async function payoutInit(
  nc: NodeChain,
  p: LedgerPayout,
  on: WorkerOnChain,
  proxyFlag: Address | null,
): Promise<PayoutInit> {
  if (on.deployed) {
    return { owner: on.owner!, proxyContract: on.proxy!, proxyKey: uintToPublicKey(on.proxyKey!) };
  }
  const candidates = proxyFlag
    ? [proxyFlag]
    : (await nc.chain.open(RootContract.fromAddress(nc.root)).getRootData()).proxies.map((e) => e.address);
  for (const proxyContract of candidates) {
    if (!(await nc.chain.isDeployed(proxyContract))) continue;
    const d = await nc.chain.open(ProxyContract.fromAddress(proxyContract)).getProxyData();
    const proxyKey = uintToPublicKey(d.proxyKey);
    const derived = nc.payments.workerContract(nc.sender.address, proxyContract, proxyKey);
    if (derived.equals(p.contract)) return { owner: nc.sender.address, proxyContract, proxyKey };
  }
  const tried = proxyFlag
    ? `proxy contract ${proxyFlag.toString()}`
    : `the root's ${candidates.length} registered prox${candidates.length === 1 ? 'y' : 'ies'}`;
  throw new CliError(
    `worker contract ${p.contract.toString()} is not deployed yet, and the ledger keeps only the signed payout, ` +
      `not the proxy contract and proxy key it was made for; ${tried} with this wallet as owner do not give ` +
      'this address. Missing: the proxy contract address and the proxy public key (pass --proxy-contract ' +
      '<address> if you know it, or run the worker daemon: it learns both when it connects to the proxy)',
  );
}

interface PayoutFlags extends ChainFlags {
  proxyContract?: string;
}

async function workerPayout(f: PayoutFlags): Promise<void> {
  const c = loadConfig(workerConfigSchema, f.config, chainFlagValues(f));
  const proxyFlag = f.proxyContract ? parseAddress(f.proxyContract, 'proxy-contract') : null;
  if (!existsSync(join(c.dataDir, 'ledger'))) {
    throw new CliError(`no ledger in ${c.dataDir}: this worker has no signed payouts to redeem`);
  }
  const { nc, reach } = await openNode(c);
  const payouts = payoutsIn(nc.ledger);
  const results: Record<string, unknown>[] = [];
  let failed = 0;
  for (const p of payouts) {
    const contract = p.contract.toString();
    try {
      const on = await workerOnChain(nc.chain, p.contract);
      const due = p.workerTotal - on.paidWorker;
      if (due <= 0n) {
        results.push({ contract, action: 'none', due: 0n, paid: on.paidWorker });
        if (!f.json)
          out(
            `worker contract ${contract}: nothing due (paid ${ton(on.paidWorker)} of ${ton(p.workerTotal)})\n`,
          );
        continue;
      }
      const init = await payoutInit(nc, p, on, proxyFlag);
      const payload: WorkerPayout = {
        globalId: nc.payments.globalId,
        contract: p.contract,
        seqno: p.seqno,
        workerTotal: p.workerTotal,
        proxyTotal: p.proxyTotal,
      };
      const signed: Signed<WorkerPayout> = {
        payload,
        cell: workerPayoutCell(payload),
        signature: p.signature,
      };
      if (!verifyCell(signed.cell, signed.signature, init.proxyKey)) {
        throw new CliError(
          `the payout for worker contract ${contract} is not signed by its proxy's key on this network; not sent`,
        );
      }
      await nc.payments.redeemPayout(signed, init);
      const after = await awaitEffect(
        reach,
        async () => {
          const s = await workerOnChain(nc.chain, p.contract);
          return s.paidWorker >= p.workerTotal ? s : null;
        },
        `the payout for worker contract ${contract} was sent, but it did not pay (the proxy contract ` +
          `${init.proxyContract.toString()} may lack the funds; the signed payout stays in the ledger for a retry)`,
      );
      const owner = walletText(init.owner, nc.payments.globalId);
      results.push({
        contract,
        action: 'payout',
        seqno: p.seqno.toString(),
        paidNow: due,
        paid: after.paidWorker,
        owner,
      });
      if (!f.json) {
        out(
          `worker contract ${contract}: redeemed payout seqno ${p.seqno}, ${ton(due)} paid to ${owner} ` +
            `(${ton(after.paidWorker)} paid in total)\n`,
        );
      }
    } catch (err) {
      failed++;
      results.push({ contract, action: 'failed', error: describeError(err) });
      if (!f.json) reportError(err);
    }
  }
  if (payouts.length === 0 && !f.json)
    out(`No signed payouts in ${join(c.dataDir, 'ledger')}: nothing to redeem.\n`);
  if (f.json) printJson({ results });
  if (failed > 0) throw new CliError(`${failed} of ${payouts.length} payouts could not be redeemed`);
}

// ─── proxy ───

interface ClientRecord {
  owner: string;
  key: string;
  auth: { seqno: string; total: string; signature: string } | null;
}

async function openProxy(f: ChainFlags) {
  const c = loadConfig(proxyConfigSchema, f.config, chainFlagValues(f));
  const { nc, reach } = await openNode(c);
  const key = await loadOrCreateNodeKey(c.dataDir);
  const contract = proxyContractOf(nc, key);
  return { c, nc, reach, contract };
}

const notDeployed = (address: Address) =>
  new CliError(
    `proxy contract ${address.toString()} is not deployed (the proxy deploys it with its stake when it starts ` +
      'with payments on)',
  );

/**
 * `cocoon proxy show`: the proxy's contract address (derived from its wallet and node key, so it is known
 * before the contract exists), whether it is deployed and with what stake, and its entry in the root's
 * registry, which clients require before they pay it.
 */
async function proxyShow(f: ChainFlags): Promise<void> {
  const { nc, contract } = await openProxy(f);
  const address = contract.address;
  const deployed = await nc.chain.isDeployed(address);
  const d = deployed ? await nc.chain.open(ProxyContract.fromAddress(address)).getProxyData() : null;
  const registry = await nc.chain.open(RootContract.fromAddress(nc.root)).getRootData();
  const entry = registry.proxies.find((p) => p.address.equals(address)) ?? null;
  const wallet = walletText(nc.sender.address, nc.payments.globalId);
  if (f.json) {
    printJson({
      contract: address.toString(),
      deployed,
      state: d ? stateName(d.state) : null,
      stake: d?.stake ?? null,
      registered: entry ? { seqno: entry.seqno, endpoint: entry.endpoint } : null,
      root: nc.root.toString(),
      wallet,
    });
    return;
  }
  out(
    `proxy contract ${address.toString()}\n` +
      rows([
        [
          'deployed',
          deployed
            ? `yes, ${stateName(d!.state)}, stake ${ton(d!.stake)}`
            : 'no (the proxy deploys it with its stake when it starts with payments on)',
        ],
        [
          'in the root',
          entry
            ? `registered as #${entry.seqno} at ${entry.endpoint}`
            : `not registered: clients will not pay it until governance runs 'cocoon root register-proxy ${address.toString()} <host:port>'`,
        ],
        ['root', nc.root.toString()],
        ['wallet', wallet],
      ]),
  );
}

async function proxyEarnings(f: ChainFlags): Promise<void> {
  const { c, nc, reach, contract } = await openProxy(f);
  if (!(await nc.chain.isDeployed(contract.address))) throw notDeployed(contract.address);
  const d = await nc.chain.open(ProxyContract.fromAddress(contract.address)).getProxyData();
  // Σ unredeemed client authorisations: the newest signed total of each client minus what its contract paid
  let unredeemed = 0n;
  let clients = 0;
  let owing = 0;
  for (const [k, r] of nc.ledger.entries<ClientRecord>('client/')) {
    clients++;
    if (!r.auth) continue;
    const s = await nc.payments.clientState(Address.parseRaw(k.slice('client/'.length)));
    const u = BigInt(r.auth.total) - s.charged;
    if (u > 0n) {
      unredeemed += u;
      owing++;
    }
  }
  // signed worker payouts not redeemed yet: the workers' fees, and the commission they carry
  let toWorkers = 0n;
  let commissionPending = 0n;
  let workers = 0;
  for (const [k, r] of nc.ledger.entries<WorkerAccountRecord>('worker/')) {
    workers++;
    if (!r.signed) continue;
    const paid = await nc.payments.workerPaid(Address.parseRaw(k.slice('worker/'.length)));
    const w = BigInt(r.signed.workerTotal) - paid.workerTotal;
    const p = BigInt(r.signed.proxyTotal) - paid.proxyTotal;
    if (w > 0n) toWorkers += w;
    if (p > 0n) commissionPending += p;
  }
  const w = await nc.chain.getBalance(nc.sender.address);
  const now = await chainNow(reach);
  const cm = proxyCommissionAt(d, now);
  const wallet = walletText(nc.sender.address, nc.payments.globalId);
  if (f.json) {
    printJson({
      contract: contract.address.toString(),
      state: stateName(d.state),
      stake: d.stake,
      pool: d.pool,
      commission: cm.withdrawable,
      commissionMaturing: cm.maturing,
      nextMaturity: cm.nextMaturity,
      closeDelay: d.closeDelay,
      unlockAt: d.state === ContractState.closing ? d.unlockAt : null,
      unredeemedClientAuths: unredeemed,
      clients,
      clientsOwing: owing,
      unredeemedWorkerPayouts: toWorkers,
      commissionInUnredeemedPayouts: commissionPending,
      workers,
      wallet: { address: wallet, balance: w },
    });
    return;
  }
  out(
    `proxy contract ${contract.address.toString()}\n` +
      rows([
        ['state', stateName(d.state)],
        ['stake', ton(d.stake)],
        ['pool', `${ton(d.pool)} (charged from clients, pays the workers)`],
        [
          'commission',
          `${ton(cm.withdrawable)}${cm.withdrawable > 0n ? ' (withdraw: cocoon proxy payout)' : ''}`,
        ],
        [
          'commission maturing',
          cm.nextMaturity === null
            ? ton(0n)
            : `${ton(cm.maturing)} (backs worker payouts; matures in parts, next ${whenText(cm.nextMaturity, now)})`,
        ],
        ['unlock time', d.state === ContractState.closing ? whenText(d.unlockAt, now) : '-'],
      ]) +
      `ledger ${join(c.dataDir, 'ledger')}\n` +
      rows([
        ['unredeemed client authorisations', `${ton(unredeemed)} (${owing} of ${clients} clients)`],
        ['signed worker payouts not redeemed', `${ton(toWorkers)} (${workers} workers)`],
        ['commission in those payouts', ton(commissionPending)],
      ]) +
      `wallet ${wallet}\n` +
      rows([['balance', ton(w)]]),
  );
}

async function proxyPayout(f: ChainFlags): Promise<void> {
  const { nc, reach, contract } = await openProxy(f);
  const addr = contract.address.toString();
  if (!(await nc.chain.isDeployed(contract.address))) throw notDeployed(contract.address);
  const proxyC = nc.chain.open(ProxyContract.fromAddress(contract.address));
  const before = await proxyC.getProxyData();
  const now = await chainNow(reach);
  const cm = proxyCommissionAt(before, now);
  const wallet = walletText(nc.sender.address, nc.payments.globalId);
  if (cm.withdrawable === 0n) {
    if (f.json) {
      printJson({
        action: 'none',
        contract: addr,
        commission: 0n,
        commissionMaturing: cm.maturing,
        nextMaturity: cm.nextMaturity,
      });
    } else {
      out(
        `No commission to withdraw from proxy contract ${addr} (it grows as workers redeem their payouts, ` +
          `and matures ${before.closeDelay}–${2 * before.closeDelay} s after)` +
          (cm.nextMaturity === null
            ? '.\n'
            : `; ${ton(cm.maturing)} is maturing, the next part ${whenText(cm.nextMaturity, now)}.\n`),
      );
    }
    return;
  }
  await nc.sender.send([{ to: contract.address, value: MIN_FORWARD_VALUE, body: withdrawCommissionBody() }]);
  await awaitEffect(
    reach,
    async () => {
      // paid: what would be withdrawable at the same moment has dropped
      const d = await proxyC.getProxyData();
      return proxyCommissionAt(d, now).withdrawable < cm.withdrawable ? true : null;
    },
    `withdraw_commission was sent, but proxy contract ${addr} did not pay (refused or not landed yet)`,
  );
  const w = await nc.chain.getBalance(nc.sender.address);
  if (f.json) {
    printJson({
      action: 'withdraw_commission',
      contract: addr,
      amount: cm.withdrawable,
      wallet,
      walletBalance: w,
    });
    return;
  }
  out(
    `Withdrew the commission of ${ton(cm.withdrawable)} from proxy contract ${addr} to wallet ${wallet}\n` +
      rows([['wallet balance', ton(w)]]),
  );
}

export function registerEarningsCommands(program: Command): void {
  const role = (name: string) => {
    const cmd = program.commands.find((c) => c.name() === name);
    if (!cmd) throw new Error(`no '${name}' command to add to`);
    return cmd;
  };
  const worker = role('worker');
  chainFlags(
    worker
      .command('earnings')
      .description('for each worker contract in the ledger: signed total, paid on-chain, due'),
  ).action(run(workerEarnings));
  chainFlags(
    worker
      .command('payout')
      .description(
        "redeem the newest signed payout of each worker contract now (the worker's wallet pays gas)",
      ),
  )
    .option(
      '--proxy-contract <address>',
      "the proxy contract, if the worker contract is not deployed yet and the root's proxies do not match",
    )
    .action(run(workerPayout));
  const proxy = role('proxy');
  chainFlags(
    proxy
      .command('earnings')
      .description(
        'the proxy contract (stake, pool, commission, state) and what its ledger has not redeemed',
      ),
  ).action(run(proxyEarnings));
  chainFlags(
    proxy.command('show').description("the proxy's contract address, its stake and its entry in the root"),
  ).action(run(proxyShow));
  chainFlags(
    proxy.command('payout').description("withdraw the proxy contract's commission to the proxy's wallet"),
  ).action(run(proxyPayout));
}
