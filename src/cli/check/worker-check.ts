import { Address } from '@ton/core';
import { peerTrust, type TrustSetup, trustLabel } from '../../attest/trust-setup.ts';
import type { PeerIdentity } from '../../attest/types.ts';
import { formatTon } from '../../chain/money.ts';
import type { WorkerConfig } from '../../config/config.ts';
import { CocoonError } from '../../errors.ts';
import { dialPeer } from '../../net/tls.ts';
import { proxyInfoSchema, type WorkerInfo } from '../../protocol/messages.ts';
import { describeError, type Reach } from '../chain-cli.ts';
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
import {
  daemonTrust,
  type ModelInfo,
  modelInfo,
  type OwnAttestation,
  ownAttestation,
  readNodeKey,
} from './identity.ts';
import { type CheckItem, CheckList } from './report.ts';

export interface CheckOptions {
  /** How long each probe (the chain, each proxy's dial) may take. */
  timeoutMs: number;
  /** After a session comes up, how long to wait for a late refusal (the proxy checks the announced models). */
  settleMs: number;
}

/** How one configured proxy answered a dial with the worker's credentials. */
export interface ProxyProbe {
  address: string;
  outcome: 'accepted' | 'refused' | 'refused_by_worker' | 'unreachable' | 'not_cocoon';
  /** The reason code: the proxy's (GOAWAY), ours, or the socket's. */
  code: string | null;
  message: string;
  proxy: { name: string; tier: string; image: string; proxyContract: string | null } | null;
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ECONNRESET',
  'EPIPE',
  'connect_timeout',
]);

/**
 * Dials one proxy as the worker daemon does (same credentials, same checks of the proxy, the same Hello
 * but `enabled: false`, so no request is routed to this probe), waits `settleMs` for a refusal that comes
 * after the handshake, and hangs up.
 */
export async function probeProxy(
  p: { host: string; port: number },
  name: string,
  setup: TrustSetup,
  credentials: OwnAttestation['credentials'],
  info: WorkerInfo,
  paid: boolean,
  o: CheckOptions,
): Promise<ProxyProbe> {
  const address = `${p.host}:${p.port}`;
  const base = peerTrust(setup, ['proxy']);
  // Set once the proxy passed our own checks: any error after that is the proxy refusing us.
  let verified: PeerIdentity | null = null;
  const trust = {
    ...base,
    policy: (peer: PeerIdentity) => {
      base.policy?.(peer);
      verified = peer;
    },
  };
  try {
    const { session, peer } = await dialPeer({
      host: p.host,
      port: p.port,
      credentials,
      trust,
      session: { hello: { role: 'worker', name, info } },
      connectTimeoutMs: o.timeoutMs,
    });
    const late = await new Promise<CocoonError | Error | null>((resolve) => {
      const t = setTimeout(() => resolve(null), o.settleMs);
      session.once('close', (err) => {
        clearTimeout(t);
        resolve(err ?? new Error('the proxy closed the session'));
      });
    });
    const hello = session.peerHello!;
    const contract = proxyInfoSchema.safeParse(hello.info);
    const proxy = {
      name: hello.name,
      tier: peer.attestation.tier,
      image: peer.attestation.imageHash,
      proxyContract: contract.success ? contract.data.proxyContract : null,
    };
    session.close();
    if (late) {
      return {
        address,
        outcome: 'refused',
        code: late instanceof CocoonError ? late.code : null,
        message: late.message,
        proxy,
      };
    }
    if (paid && !contract.success) {
      // The daemon's WorkerPayments.attach refuses such a proxy and hangs up.
      return {
        address,
        outcome: 'refused_by_worker',
        code: 'payments_unavailable',
        message:
          'this proxy does not pay on TON (its Hello names no proxy contract), and this worker is paid on TON: it hangs up',
        proxy,
      };
    }
    return { address, outcome: 'accepted', code: null, message: 'session up', proxy };
  } catch (err) {
    const e = err as Error & { code?: string | null };
    const code = typeof e.code === 'string' ? e.code : null;
    const v = verified as PeerIdentity | null;
    if (v) {
      return {
        address,
        outcome: 'refused',
        code,
        message: e.message,
        proxy: { name: '', tier: v.attestation.tier, image: v.attestation.imageHash, proxyContract: null },
      };
    }
    if (code && UNREACHABLE.has(code)) {
      return { address, outcome: 'unreachable', code: 'unreachable', message: e.message, proxy: null };
    }
    if (err instanceof CocoonError) {
      return { address, outcome: 'refused_by_worker', code, message: e.message, proxy: null };
    }
    return {
      address,
      outcome: 'not_cocoon',
      code: code ?? 'tls_error',
      message: `TLS with it failed: ${e.message}`,
      proxy: null,
    };
  }
}

/** What to do about a proxy's answer. */
function probeFix(
  r: ProxyProbe,
  c: WorkerConfig,
  att: OwnAttestation,
  chain: ChainContext | null,
): string | undefined {
  const lists = chain ? rootLists(chain.data) : null;
  switch (r.outcome) {
    case 'accepted':
      return undefined;
    case 'unreachable':
    case 'not_cocoon':
      return (
        `start the proxy, or fix this address in "proxy" (config) / --proxy: it must be the proxy's worker port ` +
        '(its --worker-port, default 11001)'
      );
    case 'refused_by_worker':
      if (r.code === 'payments_unavailable') {
        return 'run the proxy with the same "root" and "chainEndpoint" as this worker, or remove "root" from the worker config';
      }
      if (r.code === 'image_not_allowed') {
        return c.trustFromRoot && chain && r.proxy
          ? allowFix('proxy-image', r.proxy.image, chain)
          : 'add the proxy image to "allowedProxyImages" in this worker\'s config, or remove the list';
      }
      if (r.code === 'trust_tier_too_low' || r.code === 'attestation_kind_refused') {
        return 'this worker needs a proxy in a TEE (trust tdx): use such a proxy, or run the worker with --trust dev for development';
      }
      return undefined;
    case 'refused':
      switch (r.code) {
        case 'image_not_allowed':
          return lists && !lists.workerImages.has(att.imageHash)
            ? allowFix('worker-image', att.imageHash, chain!)
            : `the proxy's own allow-list lacks ${att.imageHash}: ask its operator to add it to "allowedWorkerImages" (or use trustFromRoot)`;
        case 'model_not_allowed':
          return 'serve each model as name@revision:<hash> (cocoon model-hash <model dir> --name <name>) with a hash on the allow-list the proxy enforces';
        case 'role_refused':
          return "this is the proxy's client port: use its worker port (its --worker-port, default 11001)";
        case 'trust_tier_too_low':
        case 'attestation_kind_refused':
          return 'this proxy accepts only workers in a TEE: run the worker with --trust tdx inside a TDX guest';
        case 'payout_address_required':
          return 'this proxy pays workers on TON: set "root" and "chainEndpoint" in the worker config (and create its wallet: cocoon wallet create)';
        case 'version_mismatch':
          return 'upgrade cocoon on the older side';
        case 'model_not_attested':
          return 'announce only models the certificate names (models in the config)';
        default:
          return undefined;
      }
  }
}

function probeLine(r: ProxyProbe): string {
  const who = r.proxy
    ? `proxy${r.proxy.name ? ` '${r.proxy.name}'` : ''} (tier ${r.proxy.tier}, image ${r.proxy.image})`
    : 'proxy';
  switch (r.outcome) {
    case 'accepted':
      return (
        `accepts this worker: session up with ${who}` +
        (r.proxy?.proxyContract ? `, proxy contract ${r.proxy.proxyContract}` : ', no payments')
      );
    case 'refused':
      return `${who} refused this worker: ${r.code ?? 'no code'}: ${r.message}`;
    case 'refused_by_worker':
      return `this worker refuses the ${who}: ${r.code ?? 'no code'}: ${r.message}`;
    case 'unreachable':
      return `unreachable: ${r.message}`;
    case 'not_cocoon':
      return `not a Cocoon proxy's worker port (${r.message})`;
  }
}

export interface WorkerCheck {
  list: CheckList;
  head: string;
  json: Record<string, unknown>;
}

const ROLE = 'worker';

export async function checkWorker(c: WorkerConfig, o: CheckOptions): Promise<WorkerCheck> {
  const list = new CheckList();
  const add = (item: Omit<CheckItem, 'section'> & { section?: string }, section = 'attestation') =>
    list.add({ section, ...item });

  // The chain first: the trust policy may come from the root.
  let chain: ChainContext | null = null;
  let reach: Reach | null = null;
  if (c.root) ({ reach, ctx: chain } = await checkChain(list, c, o.timeoutMs));
  else {
    add(
      {
        name: 'payments',
        status: 'info',
        message:
          'off: no root configured (no wallet, no on-chain allow-lists); set "root" and "chainEndpoint" to be paid on TON',
      },
      'chain',
    );
  }

  let setup: TrustSetup | null = null;
  try {
    setup = await daemonTrust(c, chain ? { chain: chain.reach.chain, address: chain.root } : null);
  } catch (err) {
    add({
      name: 'trust setup',
      status: 'fail',
      message: describeError(err),
      fix:
        c.trust === 'tdx'
          ? 'set "pccsUrl" or "collateralFile" in the config'
          : c.trustFromRoot
            ? 'the root must be readable (see chain above) for trustFromRoot'
            : undefined,
    });
  }

  const nodeKey = readNodeKey(c.dataDir);
  add({
    name: 'node key',
    status: 'info',
    message: nodeKey.exists
      ? `${nodeKey.key.publicKeyHex} (${nodeKey.path})`
      : `none yet: the worker makes ${nodeKey.path} on first start (a temporary key stands in for the check)`,
  });

  let att: OwnAttestation | null = null;
  if (setup) {
    try {
      att = await ownAttestation(nodeKey.key, 'worker', setup, c.models);
    } catch (err) {
      list.add(quoteFailure('worker', c.trust, err));
    }
  }
  const models = c.models.map(modelInfo);
  if (att) imageChecks(list, att, c.trust);
  for (const m of models) {
    add({
      name: 'model',
      status: m.error ? 'warn' : 'ok',
      message: m.error
        ? `${m.identity}: ${m.error}; peers see no content hash for it`
        : m.hash
          ? m.identity
          : `${m.identity} (a bare name: no content hash)`,
    });
  }

  // The root's lists: judged once the proxies have answered (see below).
  const listed: { item: CheckItem; kind: 'image' | 'model' }[] = [];
  if (chain && att) {
    const lists = rootLists(chain.data);
    const section = 'allow-lists';
    if (lists.workerImages.has(att.imageHash)) {
      add({ name: 'worker image', status: 'ok', message: `${att.imageHash} is on the root's list` }, section);
    } else {
      listed.push({
        kind: 'image',
        item: add(
          {
            name: 'worker image',
            status: 'fail',
            code: 'image_not_allowed',
            message:
              `${att.imageHash} is not on the root's worker-image list` +
              (att.kind === 'dev' ? ' (it is the dev image hash)' : ''),
            fix: allowFix('worker-image', att.imageHash, chain),
          },
          section,
        ),
      });
    }
    for (const m of models) listed.push(...modelListCheck(list, m, lists.models, chain));
  }

  let wallet: WalletFacts | null = null;
  if (c.root) {
    wallet = await checkWallet(list, c.dataDir, reach, '1');
    if (wallet && wallet.balance !== null && reach) {
      const empty = wallet.balance === 0n;
      add(
        {
          name: 'wallet',
          status: empty ? 'warn' : 'ok',
          message:
            walletLine(wallet) +
            (empty ? ": it pays the gas of redeeming this worker's payouts" : '; payouts are paid to it'),
          ...(empty ? { fix: fundFix(reach, c.dataDir, '1', wallet.address!) } : {}),
        },
        'wallet',
      );
    }
  }

  const probes: ProxyProbe[] = [];
  if (setup && att) {
    const perProxy = Math.max(1, Math.ceil(c.maxConcurrent / Math.max(1, c.proxy.length)));
    const info: WorkerInfo = {
      models: models.map((m) => ({ name: m.name, maxConcurrent: perProxy, coefficient: c.coefficient })),
      enabled: false,
      backend: c.backend.kind,
      ...(wallet?.address ? { payoutAddress: wallet.address } : {}),
    };
    const s = setup;
    const credentials = att.credentials;
    probes.push(
      ...(await Promise.all(
        c.proxy.map((p) => probeProxy(p, c.name, s, credentials, info, Boolean(c.root), o)),
      )),
    );
    const accepted = probes.filter((r) => r.outcome === 'accepted').length;
    const registry = chain ? chain.data.proxies : [];
    for (const r of probes) {
      let status: CheckItem['status'] =
        r.outcome === 'accepted' ? 'ok' : r.outcome === 'unreachable' && accepted > 0 ? 'warn' : 'fail';
      let message = probeLine(r);
      if (r.outcome === 'accepted' && r.proxy?.proxyContract && chain) {
        const contract = Address.parse(r.proxy.proxyContract);
        if (!registry.some((e) => e.address.equals(contract))) {
          status = 'warn';
          message += "; that contract is not registered in this worker's root";
        }
      }
      const fix =
        status === 'warn' && r.outcome === 'accepted'
          ? "clients paying through the root do not use this proxy: its operator's cocoon proxy check says how to register it"
          : probeFix(r, c, att, chain);
      add(
        { name: r.address, status, code: r.code ?? undefined, message, ...(fix ? { fix } : {}) },
        'proxies',
      );
    }
    // Not on the root's lists, yet every configured proxy took the worker: they do not enforce the root's
    // lists, so this worker runs; proxies that enforce them refuse it.
    if (probes.length > 0 && accepted === probes.length) {
      for (const l of listed) {
        l.item.status = 'warn';
        l.item.message +=
          "; the proxies configured here accept it anyway (they do not enforce the root's lists)";
      }
    }
  } else {
    add(
      { name: 'proxies', status: 'info', message: 'not dialled: this node has no credentials (see above)' },
      'proxies',
    );
  }

  const head = checkHead(ROLE, c, att);
  const json = {
    ...nodeJson(ROLE, c, att),
    models: models.map((m) => ({
      identity: m.identity,
      name: m.name,
      hash: m.hash,
      onRoot: chain && m.hash ? rootLists(chain.data).models.has(m.hash) : null,
    })),
    imageOnRoot: chain && att ? rootLists(chain.data).workerImages.has(att.imageHash) : null,
    chain: chainJson(c, reach, chain),
    wallet: walletJson(wallet),
    proxies: probes,
  };
  return { list, head, json };
}

/** The check item of a node that cannot make its own attestation quote, for either role. */
export function quoteFailure(role: 'worker' | 'proxy', mode: 'dev' | 'tdx', err: unknown): CheckItem {
  return {
    section: 'attestation',
    name: 'quote',
    status: 'fail',
    code: (err as { code?: string }).code ?? 'quote_failed',
    message: `cannot make this node's attestation quote: ${describeError(err)}`,
    fix:
      mode === 'tdx'
        ? `run the ${role} inside a TDX guest (configfs-tsm), or with --trust dev for development`
        : undefined,
  };
}

/** The first line of a check's report (and a clear word on dev trust), for either role. */
export function checkHead(
  role: 'worker' | 'proxy',
  c: { name: string; trust: 'dev' | 'tdx' },
  att: OwnAttestation | null,
): string {
  return (
    `cocoon ${role} check: ${role} '${c.name}' [trust: ${trustLabel(c.trust)}]` +
    (att?.kind === 'dev'
      ? '\n  DEV TRUST: the image hash below is the dev image hash, not a measured one'
      : '')
  );
}

/** Who the node is, in a check's JSON: the same fields for either role. */
export function nodeJson(
  role: 'worker' | 'proxy',
  c: { name: string; dataDir: string; trust: 'dev' | 'tdx' },
  att: OwnAttestation | null,
) {
  return {
    role,
    name: c.name,
    dataDir: c.dataDir,
    trust: { mode: c.trust, label: trustLabel(c.trust), dev: c.trust === 'dev' },
    attestation: att
      ? {
          kind: att.kind,
          tier: att.tier,
          imageHash: att.imageHash,
          devImage: att.kind === 'dev',
          verifyError: att.verifyError,
        }
      : null,
  };
}

/** The attestation lines shared by both roles: what the certificate carries, and a clear word on dev. */
export function imageChecks(list: CheckList, att: OwnAttestation, mode: 'dev' | 'tdx'): void {
  const dev = att.kind === 'dev';
  list.add({
    section: 'attestation',
    name: 'image hash',
    status: dev ? 'warn' : 'ok',
    message: dev
      ? `${att.imageHash} — a DEV image hash: software attestation, no TEE; every dev node has this hash and it proves nothing about the code or the machine`
      : `${att.imageHash} (${att.kind} quote, tier ${att.tier})`,
    ...(dev ? { fix: 'for production, run with --trust tdx inside a TDX guest' } : {}),
  });
  if (att.verifyError) {
    list.add({
      section: 'attestation',
      name: 'own quote',
      status: 'fail',
      code: 'quote_not_verified',
      message: `does not pass the ${mode} verifier peers run: ${att.verifyError}`,
      fix: 'check "pccsUrl" / "collateralFile" and "acceptTcbStatuses" in the config',
    });
  }
}

function modelListCheck(
  list: CheckList,
  m: ModelInfo,
  allowed: Set<string>,
  chain: ChainContext,
): { item: CheckItem; kind: 'model' }[] {
  const section = 'allow-lists';
  if (m.hash && allowed.has(m.hash)) {
    list.add({
      section,
      name: 'model',
      status: 'ok',
      message: `${m.identity}: its hash is on the root's list`,
    });
    return [];
  }
  const item = list.add(
    m.hash
      ? {
          section,
          name: 'model',
          status: 'fail',
          code: 'model_not_allowed',
          message: `${m.identity}: hash ${m.hash} is not on the root's model list`,
          fix: allowFix('model', m.hash, chain),
        }
      : {
          section,
          name: 'model',
          status: 'fail',
          code: 'model_not_allowed',
          message: `${m.identity} has no content hash, and the root allow-lists models by hash`,
          fix: `serve it as ${m.name}@<revision>:<hash> (cocoon model-hash <model dir> --name ${m.name}), with the hash on the root's model list`,
        },
  );
  return [{ item, kind: 'model' }];
}

export function chainJson(
  c: { chainEndpoint: string; root?: string | undefined },
  reach: Reach | null,
  chain: ChainContext | null,
) {
  if (!c.root) return { payments: false, endpoint: c.chainEndpoint, reachable: null, root: null };
  return {
    payments: true,
    endpoint: c.chainEndpoint,
    reachable: reach !== null,
    local: reach?.local ?? null,
    globalId: reach?.globalId ?? null,
    root: c.root,
    rootReadable: chain !== null,
    rootVersion: chain?.data.version ?? null,
  };
}

export function walletJson(w: WalletFacts | null) {
  return w
    ? {
        file: w.file,
        address: w.address,
        balance: w.balance === null ? null : formatTon(w.balance),
        status: w.status,
      }
    : null;
}
