import { createServer } from 'node:net';
import * as tls from 'node:tls';
import { Address, toNano } from '@ton/core';
import { rawPublicKeyHex } from '../../attest/identity.ts';
import { ContractState, MIN_FORWARD_VALUE, STORAGE_RESERVE } from '../../chain/contracts/opcodes.ts';
import { ProxyContract } from '../../chain/contracts/proxy-contract.ts';
import { formatTon, parseTon } from '../../chain/money.ts';
import { TonPayments } from '../../chain/payments-chain.ts';
import { type NodeChain, proxyContractOf } from '../../config/build-payments.ts';
import type { ProxyConfig } from '../../config/config.ts';
import { describeError, type Reach, stateName, ton } from '../chain-cli.ts';
import {
  allowFix,
  type ChainContext,
  checkChain,
  checkWallet,
  fundFix,
  rootLists,
  type WalletFacts,
  walletLine,
} from './chain.ts';
import { daemonTrust, type OwnAttestation, ownAttestation, readNodeKey } from './identity.ts';
import { type CheckItem, CheckList } from './report.ts';
import {
  type CheckOptions,
  chainJson,
  checkHead,
  imageChecks,
  nodeJson,
  quoteFailure,
  walletJson,
} from './worker-check.ts';

/** An amount as a command takes it: "5.16", not "5.160000000". */
const tonArg = (nano: bigint) => formatTon(nano).replace(/\.?0+$/, '');

export interface PortFacts {
  name: string;
  host: string;
  port: number | null;
  state: 'free' | 'ours' | 'taken' | 'any' | 'off' | 'error';
  message: string;
}

/** Whether a port can be listened on: bind it for a moment. */
function tryListen(host: string, port: number): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (err) => resolve(err as NodeJS.ErrnoException));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(null)));
  });
}

/** Whether the TLS server on a port presents a certificate for this node key (the proxy is running). */
function presentsKey(host: string, port: number, keyHex: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host,
      port,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
      ALPNProtocols: ['cocoon/1'],
    });
    const done = (v: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('error', () => done(false));
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      let hex = '';
      try {
        hex = cert ? rawPublicKeyHex(cert.publicKey) : '';
      } catch {
        // not an Ed25519 certificate: not ours
      }
      done(hex === keyHex);
    });
  });
}

/** Whether a stats server here is this proxy's (its /jsonstats names the role and the node). */
async function statsIsOurs(host: string, port: number, name: string, timeoutMs: number): Promise<boolean> {
  try {
    const h = host.includes(':') ? `[${host}]` : host;
    const res = await fetch(`http://${h}:${port}/jsonstats`, { signal: AbortSignal.timeout(timeoutMs) });
    const s = (await res.json()) as { role?: string; name?: string };
    return s.role === 'proxy' && s.name === name;
  } catch {
    return false;
  }
}

async function checkPorts(
  list: CheckList,
  c: ProxyConfig,
  keyHex: string | null,
  o: CheckOptions,
): Promise<PortFacts[]> {
  const ports: { name: string; host: string; port: number | null; flag: string; tls: boolean }[] = [
    { name: 'worker port', host: c.host, port: c.workerPort, flag: '--worker-port', tls: true },
    { name: 'client port', host: c.host, port: c.clientPort, flag: '--client-port', tls: true },
    { name: 'stats port', host: c.statsHost, port: c.statsPort, flag: '--stats-port', tls: false },
  ];
  const facts: PortFacts[] = [];
  let running = false;
  for (const p of ports) {
    const where = `${p.host}:${p.port}`;
    const fact = (state: PortFacts['state'], message: string, status: CheckItem['status'], fix?: string) => {
      facts.push({ name: p.name, host: p.host, port: p.port, state, message });
      list.add({ section: 'ports', name: p.name, status, message, ...(fix ? { fix } : {}) });
    };
    if (p.port === null) {
      fact('off', 'off', 'ok');
      continue;
    }
    if (p.port === 0) {
      fact(
        'any',
        `${p.host}:0: any free port, chosen at start` +
          (p.name === 'client port' ? " (clients need a fixed one: the root's registry names it)" : ''),
        p.name === 'client port' && c.root ? 'warn' : 'info',
      );
      continue;
    }
    const err = await tryListen(p.host, p.port);
    if (!err) {
      fact('free', `${where} is free`, 'ok');
      continue;
    }
    if (err.code === 'EADDRINUSE') {
      const ours = p.tls
        ? keyHex !== null && (await presentsKey(p.host, p.port, keyHex, o.timeoutMs))
        : running && (await statsIsOurs(p.host, p.port, c.name, o.timeoutMs));
      if (ours) {
        running = true;
        fact('ours', `${where} is in use by this proxy (it is running)`, 'ok');
      } else {
        fact(
          'taken',
          `${where} is in use by another program`,
          'fail',
          `stop what listens there, or give the proxy another port (${p.flag} <port>, or its key in the config)`,
        );
      }
      continue;
    }
    fact(
      'error',
      `cannot listen on ${where}: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '),
      'fail',
      err.code === 'EACCES'
        ? `ports below 1024 need privileges: choose another (${p.flag} <port>)`
        : err.code === 'EADDRNOTAVAIL'
          ? `${p.host} is not an address of this machine: set --host / --stats-host`
          : undefined,
    );
  }
  return facts;
}

export interface ContractFacts {
  address: string | null;
  deployed: boolean | null;
  state: string | null;
  stake: string | null;
  minStake: string;
  registered: { seqno: number; endpoint: string } | null;
}

async function checkContract(
  list: CheckList,
  c: ProxyConfig,
  chain: ChainContext,
  wallet: WalletFacts,
  key: { exists: boolean; key: Parameters<typeof proxyContractOf>[1] },
): Promise<ContractFacts> {
  const section = 'contract';
  const params = chain.data.params;
  const min = params.minProxyStake;
  const facts: ContractFacts = {
    address: null,
    deployed: null,
    state: null,
    stake: null,
    minStake: formatTon(min),
    registered: null,
  };
  let stake = min;
  if (c.stakeTon) {
    stake = parseTon(c.stakeTon);
    if (stake < min) {
      list.add({
        section,
        name: 'stake',
        status: 'fail',
        code: 'stake_below_minimum',
        message: `stakeTon ${c.stakeTon} is below the root's minimum proxy stake of ${ton(min)}`,
        fix: `set "stakeTon" to at least "${formatTon(min)}" in the config (or leave it out: the minimum)`,
      });
    }
  }
  const deployCost = stake + 2n * MIN_FORWARD_VALUE + STORAGE_RESERVE;
  const needFunds = (what: string) => {
    if (wallet.balance === null || wallet.balance >= deployCost + MIN_FORWARD_VALUE) return false;
    list.add({
      section,
      name: 'funds',
      status: 'fail',
      code: 'insufficient_funds',
      message: `${what}: its wallet needs about ${ton(deployCost + MIN_FORWARD_VALUE)} (stake ${ton(stake)} and gas), it has ${ton(wallet.balance)}`,
      fix: fundFix(
        chain.reach,
        c.dataDir,
        tonArg(deployCost + MIN_FORWARD_VALUE - wallet.balance),
        wallet.address!,
      ),
    });
    return true;
  };
  if (!key.exists) {
    list.add({
      section,
      name: 'proxy contract',
      status: 'warn',
      message:
        'address not known yet: it derives from the node key, which the proxy makes on first start; ' +
        `then it deploys the contract with a stake of ${ton(stake)}`,
      fix:
        `cocoon proxy show --data-dir ${c.dataDir} --root ${chain.root.toString()} --chain-endpoint ${chain.reach.endpoint} ` +
        'makes the key and prints the contract address; governance then registers it (cocoon root register-proxy)',
    });
    needFunds('the proxy deploys its contract on first start');
    return facts;
  }
  const rootAddress = chain.root;
  const payments = await TonPayments.connect(
    chain.reach.chain.client,
    rootAddress,
    chain.reach.globalId,
    null,
  );
  const owner = Address.parseRaw(wallet.rawAddress!);
  // The daemon's derivation (owner wallet, root, node key, worker code); it reads only these.
  const contract = proxyContractOf(
    { sender: { address: owner }, root: rootAddress, payments } as unknown as NodeChain,
    key.key,
  ).address;
  facts.address = contract.toString();
  const deployed = await chain.reach.chain.isDeployed(contract);
  facts.deployed = deployed;
  if (deployed) {
    const d = await chain.reach.chain.open(ProxyContract.fromAddress(contract)).getProxyData();
    facts.state = stateName(d.state);
    facts.stake = formatTon(d.stake);
    if (d.state !== ContractState.open) {
      list.add({
        section,
        name: 'proxy contract',
        status: 'fail',
        code: 'contract_not_open',
        message: `${contract.toString()} is ${stateName(d.state)}: clients and workers are bound to an open proxy contract`,
        fix: 'a closing contract does not reopen: run the proxy with a new data dir (a new key makes a new contract) and have that registered',
      });
    } else if (d.stake < min) {
      list.add({
        section,
        name: 'proxy contract',
        status: 'fail',
        code: 'stake_below_minimum',
        message: `${contract.toString()}: stake ${ton(d.stake)} is below the root's minimum ${ton(min)}`,
        fix: `add at least ${ton(min - d.stake)} of stake to the contract (its add_stake message from the owner wallet; no cocoon command sends it yet)`,
      });
    } else {
      list.add({
        section,
        name: 'proxy contract',
        status: 'ok',
        message: `${contract.toString()} deployed, open, stake ${ton(d.stake)} (root minimum ${ton(min)})`,
      });
    }
    if (d.state === ContractState.open && d.closeDelay < params.proxyCloseDelay) {
      list.add({
        section,
        name: 'close delay',
        status: 'warn',
        message: `${d.closeDelay} s, below the root's ${params.proxyCloseDelay} s: clients refuse it until the proxy raises it (it does on start)`,
        fix: 'restart the proxy (it sends raise_close_delay from its wallet)',
      });
    }
  } else {
    const short = needFunds('not deployed yet; the proxy deploys it on start');
    if (!short) {
      list.add({
        section,
        name: 'proxy contract',
        status: 'info',
        message: `${contract.toString()} not deployed yet: the proxy deploys it on start with a stake of ${ton(stake)} from its wallet`,
      });
    }
  }
  const entry = chain.data.proxies.find((p) => p.address.equals(contract)) ?? null;
  if (entry) {
    facts.registered = { seqno: entry.seqno, endpoint: entry.endpoint };
    const port = Number(entry.endpoint.slice(entry.endpoint.lastIndexOf(':') + 1));
    const mismatch = c.clientPort !== 0 && port !== c.clientPort;
    list.add({
      section,
      name: 'registered',
      status: mismatch ? 'warn' : 'ok',
      message:
        `as #${entry.seqno} at ${entry.endpoint}` +
        (mismatch ? `, but this proxy takes clients on port ${c.clientPort}` : ''),
      ...(mismatch
        ? {
            fix: `governance runs: cocoon root update-proxy ${entry.seqno} ${contract.toString()} <public host>:${c.clientPort} --root ${rootAddress.toString()} --chain-endpoint ${chain.reach.endpoint}`,
          }
        : {}),
    });
  } else {
    list.add({
      section,
      name: 'registered',
      status: 'fail',
      code: 'proxy_not_registered',
      message:
        'not in the root: clients refuse to pay it (proxy_not_registered), and clients reading proxies from the root do not find it',
      fix:
        `governance runs: cocoon root register-proxy ${contract.toString()} <public host>:${c.clientPort || '<client port>'} ` +
        `--root ${rootAddress.toString()} --chain-endpoint ${chain.reach.endpoint}`,
    });
  }
  return facts;
}

export interface ProxyCheck {
  list: CheckList;
  head: string;
  json: Record<string, unknown>;
}

export async function checkProxy(c: ProxyConfig, o: CheckOptions): Promise<ProxyCheck> {
  const list = new CheckList();
  const add = (item: Omit<CheckItem, 'section'>, section = 'attestation') => list.add({ section, ...item });

  let chain: ChainContext | null = null;
  let reach: Reach | null = null;
  if (c.root) ({ reach, ctx: chain } = await checkChain(list, c, o.timeoutMs));
  else {
    add(
      {
        name: 'payments',
        status: 'info',
        message:
          'off: no root configured (free service: no wallet, no proxy contract, no on-chain allow-lists)',
      },
      'chain',
    );
  }

  let att: OwnAttestation | null = null;
  const nodeKey = readNodeKey(c.dataDir);
  add({
    name: 'node key',
    status: 'info',
    message: nodeKey.exists
      ? `${nodeKey.key.publicKeyHex} (${nodeKey.path})`
      : `none yet: the proxy makes ${nodeKey.path} on first start (a temporary key stands in for the check)`,
  });
  try {
    const setup = await daemonTrust(c, chain ? { chain: chain.reach.chain, address: chain.root } : null);
    try {
      att = await ownAttestation(nodeKey.key, 'proxy', setup);
    } catch (err) {
      list.add(quoteFailure('proxy', c.trust, err));
    }
  } catch (err) {
    add({
      name: 'trust setup',
      status: 'fail',
      message: describeError(err),
      fix: c.trust === 'tdx' ? 'set "pccsUrl" or "collateralFile" in the config' : undefined,
    });
  }
  if (att) imageChecks(list, att, c.trust);

  if (chain && att) {
    const lists = rootLists(chain.data);
    if (lists.proxyImages.has(att.imageHash)) {
      add(
        { name: 'proxy image', status: 'ok', message: `${att.imageHash} is on the root's list` },
        'allow-lists',
      );
    } else {
      add(
        {
          name: 'proxy image',
          status: 'fail',
          code: 'image_not_allowed',
          message:
            `${att.imageHash} is not on the root's proxy-image list` +
            (att.kind === 'dev' ? ' (it is the dev image hash)' : '') +
            ': clients and workers that take their lists from the root refuse this proxy',
          fix: allowFix('proxy-image', att.imageHash, chain),
        },
        'allow-lists',
      );
    }
    if (c.trustFromRoot && lists.workerImages.size === 0) {
      add(
        {
          name: 'worker images',
          status: 'warn',
          message: 'the root lists no worker image: with trustFromRoot this proxy accepts no worker',
          fix: "governance allows the workers' images: cocoon root allow worker-image <hash> (cocoon worker check prints a worker's hash)",
        },
        'allow-lists',
      );
    }
  }

  const ports = await checkPorts(list, c, nodeKey.exists ? nodeKey.key.publicKeyHex : null, o);

  let wallet: WalletFacts | null = null;
  let contract: ContractFacts | null = null;
  if (c.root) {
    const need = chain ? chain.data.params.minProxyStake + toNano('1') : toNano('11');
    wallet = await checkWallet(list, c.dataDir, reach, tonArg(need));
    if (wallet && wallet.balance !== null && reach) {
      const low = wallet.balance < MIN_FORWARD_VALUE * 2n;
      add(
        {
          name: 'wallet',
          status: low ? 'warn' : 'ok',
          message: walletLine(wallet) + (low ? ": it pays the gas of settling clients' bills" : ''),
          ...(low ? { fix: fundFix(reach, c.dataDir, '1', wallet.address!) } : {}),
        },
        'wallet',
      );
    }
    if (chain && wallet?.rawAddress) {
      try {
        contract = await checkContract(list, c, chain, wallet, nodeKey);
      } catch (err) {
        add({ name: 'proxy contract', status: 'fail', message: describeError(err) }, 'contract');
      }
    } else {
      add(
        {
          name: 'proxy contract',
          status: 'info',
          message: 'not checked: it derives from the wallet and the root (see above)',
        },
        'contract',
      );
    }
  }

  const head = checkHead('proxy', c, att);
  const json = {
    ...nodeJson('proxy', c, att),
    imageOnRoot: chain && att ? rootLists(chain.data).proxyImages.has(att.imageHash) : null,
    chain: chainJson(c, reach, chain),
    wallet: walletJson(wallet),
    ports,
    contract,
  };
  return { list, head, json };
}
