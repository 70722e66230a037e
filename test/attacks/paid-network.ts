import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Address, toNano } from '@ton/core';
import { ClientContract } from '../../src/chain/contracts/client-contract.ts';
import type { ClientNode } from '../../src/client/client-node.ts';
import { buildClient } from '../../src/config/build-nodes.ts';
import { clientConfigSchema } from '../../src/config/config.ts';
import { type LocalNetwork, startLocalNetwork } from '../../src/local/local-network.ts';
import type { WorkerAccount } from '../../src/pay/worker-account.ts';

/**
 * A paying network (embedded chain, root, staked proxy, one honest client with a deposit, the built-in
 * worker) for attacks on its money. Thresholds are far away: tests settle when they choose.
 */
export async function paidNetwork(
  tokenDelayMs = 2,
  chainClock?: () => number,
): Promise<{ net: LocalNetwork; dir: string; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-attack-'));
  const net = await startLocalNetwork({
    dataDir: dir,
    logLevel: 'silent',
    tokenDelayMs,
    payments: {
      settleIntervalSeconds: 3600,
      payoutIntervalSeconds: 3600,
      workerPayoutIntervalSeconds: 3600,
      ...(chainClock ? { chainClock } : {}),
    },
  });
  return {
    net,
    dir,
    stop: async () => {
      await net.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What the proxy owes the network's worker so far (fee, commission), accrued per request. */
export function workerAccrued(net: LocalNetwork): { worker: bigint; proxy: bigint } {
  const w = net.proxy.registry.all()[0]?.account as WorkerAccount | null | undefined;
  return { worker: w?.accruedWorker ?? 0n, proxy: w?.accruedProxy ?? 0n };
}

export async function clientContractState(net: LocalNetwork, contract: Address | string) {
  const a = typeof contract === 'string' ? Address.parse(contract) : contract;
  return net.ton!.chain.open(ClientContract.fromAddress(a)).getClientData();
}

/**
 * A paid network for one `describe`: started before its tests, stopped after them. Its fields are set
 * once the suite runs.
 */
export function paidSuite(tokenDelayMs = 2, chainClock?: () => number): { net: LocalNetwork; dir: string } {
  const env = {} as { net: LocalNetwork; dir: string };
  let stop = async () => {};
  before(async () => {
    const started = await paidNetwork(tokenDelayMs, chainClock);
    env.net = started.net;
    env.dir = started.dir;
    stop = started.stop;
  });
  after(() => stop());
  return env;
}

/** Another paying client of the network (its own wallet and a deposit with the proxy), with options of its own. */
export async function paidClient(
  net: LocalNetwork,
  dir: string,
  name: string,
  extra: Record<string, unknown>,
): Promise<ClientNode> {
  const ton = net.ton!;
  await ton.fundNode(dir, toNano('21'));
  await ton.ensureDeposit(dir, Address.parse(net.proxy.billing!.proxyContract), toNano('10'));
  const client = await buildClient(
    clientConfigSchema.parse({
      name,
      dataDir: dir,
      httpPort: 0,
      proxy: `127.0.0.1:${net.proxy.clientPort}`,
      logLevel: 'silent',
      chainEndpoint: ton.endpoint,
      root: ton.root.toString(),
      ...extra,
    }),
  );
  await client.start();
  await client.waitForProxy();
  await client.payments!.ready();
  return client;
}

/** What a client signed and the proxy billed, and how many requests each hop saw: an attack moves none. */
export function moneyAndRequests(net: LocalNetwork, client: ClientNode = net.client) {
  return {
    authorised: client.payments?.payer.authorisedTotal ?? 0n,
    billed: net.proxy.billing!.desk.stats().billedNano,
    workerRequests: net.worker.counters.total,
    proxyRequests: net.proxy.counters.total,
    clientRequests: client.counters.total,
  };
}
