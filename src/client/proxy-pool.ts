import type { PeerIdentity } from '../attest/types.ts';
import { type CocoonError, ProtocolError, ServiceUnavailableError } from '../errors.ts';
import { PeerHealth } from '../net/peer-health.ts';
import { PeerLink, type PeerLinkOptions } from '../net/peer-link.ts';
import type { Session } from '../net/session.ts';
import type { Logger } from '../ops/log.ts';
import { type ControlMessage, controlSchema, parseMessage } from '../protocol/messages.ts';
import { OfferedCertificates, type ResolvedOffer } from '../protocol/offered-certificates.ts';
import type { ClientPayments } from './client-payments.ts';

/** How long a new session may take to confirm our account before it is retried. */
const CONFIRM_TIMEOUT_MS = 30_000;

export interface ProxyAddress {
  host: string;
  port: number;
}

/** One proxy the client keeps a session to, with what routing needs to know about it. */
export class ProxyConnection {
  readonly link: PeerLink;
  readonly health = new PeerHealth();
  inFlight = 0;
  total = 0;
  failed = 0;
  /** Exponentially weighted time to a request's first part, ms; null until the first request. */
  latencyMs: number | null = null;
  /** The proxy said it is shutting down: it finishes what it has, new requests go elsewhere. */
  draining = false;

  constructor(
    readonly address: string,
    linkOptions: PeerLinkOptions,
    /** Paying this proxy (one client contract per proxy); null when payments are off. */
    readonly payments: ClientPayments | null,
  ) {
    this.link = new PeerLink(linkOptions);
  }

  get session(): Session | null {
    const s = this.link.session;
    return s && !s.closed ? s : null;
  }

  /** Why this proxy cannot be used now, if we refused it (e.g. we cannot pay it): stats and 503s say it. */
  get refusal(): { code: string | null; message: string } | null {
    const r = this.link.refusal;
    return r ? { code: (r as CocoonError).code ?? null, message: r.message } : null;
  }

  /** Milliseconds until the next dial, while the link is down. */
  get retryInMs(): number | null {
    const at = this.link.retryAt;
    return at === null ? null : Math.max(0, at - Date.now());
  }

  /** Up, not shutting down, and (when paying) its account confirmed. */
  get usable(): boolean {
    return !!this.session && !this.draining && (this.payments === null || this.payments.isReady);
  }

  recordSuccess(firstPartMs: number): void {
    this.health.recordSuccess();
    this.latencyMs = this.latencyMs === null ? firstPartMs : this.latencyMs * 0.8 + firstPartMs * 0.2;
  }

  recordFailure(): void {
    this.failed++;
    this.health.recordFailure();
  }

  snapshot() {
    return {
      address: this.address,
      connected: !!this.session,
      tier: this.link.peer?.attestation.tier ?? null,
      usable: this.usable,
      healthy: this.usable && this.health.state === 'ok',
      refused: this.refusal,
      retryInMs: this.retryInMs,
      health: this.health.snapshot(),
      draining: this.draining,
      latencyMs: this.latencyMs === null ? null : Math.round(this.latencyMs * 100) / 100,
      inFlight: this.inFlight,
      total: this.total,
      failed: this.failed,
      connects: this.link.connects,
      lastError: this.link.lastError?.message ?? null,
      account: this.payments?.payer.account?.toString() ?? null,
    };
  }
}

export interface ProxyPoolOptions {
  /** The link settings shared by every proxy (credentials, trust, hello). */
  link: Omit<PeerLinkOptions, 'host' | 'port'>;
  /** A payments desk for each proxy, when the client pays. */
  newPayments?: () => ClientPayments;
  log: Logger;
  /** A proxy offers a worker for one of our requests (the client checks it before sending the body). */
  onOffer: (offer: ResolvedOffer, conn: ProxyConnection) => void;
}

/**
 * The proxies a client keeps sessions to (from config or the root contract): each reconnects by itself;
 * requests go to the usable one with the least expected wait, and move to another when one fails.
 */
export class ProxyPool {
  private readonly conns = new Map<string, ProxyConnection>();

  constructor(private readonly opts: ProxyPoolOptions) {}

  /** Swaps the certificate for every proxy link, and for links made later (rotation). */
  setCredentials(credentials: PeerLinkOptions['credentials']): void {
    this.opts.link = { ...this.opts.link, credentials };
    for (const c of this.conns.values()) c.link.setCredentials(credentials);
  }

  all(): ProxyConnection[] {
    return [...this.conns.values()];
  }

  /** Connects to proxies not yet known and lets go of those no longer listed (after their requests). */
  update(addresses: ProxyAddress[]): void {
    const wanted = new Map(addresses.map((a) => [formatAddress(a), a]));
    for (const [key, a] of wanted) if (!this.conns.has(key)) this.add(key, a);
    for (const [key, c] of this.conns) {
      if (wanted.has(key)) continue;
      this.conns.delete(key);
      c.draining = true;
      this.opts.log.info({ proxy: key }, 'proxy no longer listed; disconnecting after its requests');
      const stopWhenIdle = () => (c.inFlight === 0 ? c.link.stop() : setTimeout(stopWhenIdle, 100).unref());
      stopWhenIdle();
    }
  }

  private add(key: string, a: ProxyAddress): void {
    const payments = this.opts.newPayments?.() ?? null;
    const base = this.opts.link;
    // A paying client names its wallet in its Hello: the proxy derives our client contract from it.
    const hello = payments ? { ...base.session.hello, info: payments.helloInfo } : base.session.hello;
    const link = { ...base, session: { ...base.session, hello }, host: a.host, port: a.port };
    const c = new ProxyConnection(key, link, payments);
    this.conns.set(key, c);
    const log = this.opts.log;
    c.link.on('up', (session, peer) => this.onUp(c, session, peer));
    // One line per backoff step.
    c.link.on('down', (err, { retryInMs, refused }) => {
      const fields = { proxy: key, err: err.message, code: (err as CocoonError).code, retryInMs };
      if (refused) log.warn(fields, 'proxy refused; retrying after backoff');
      else log.warn(fields, 'proxy link down');
    });
    c.link.start();
  }

  private onUp(c: ProxyConnection, session: Session, peer: PeerIdentity): void {
    c.draining = false;
    this.opts.log.info({ proxy: c.address, tier: peer.attestation.tier }, 'connected to proxy');
    const offered = new OfferedCertificates();
    session.on('control', (payload) => {
      let msg: ControlMessage;
      let offer: ResolvedOffer | null = null;
      try {
        msg = parseMessage(controlSchema, payload, 'control');
        if (msg.type === 'request.offer') offer = offered.resolve(msg);
      } catch (err) {
        session.fail(err);
        return;
      }
      if (msg.type === 'proxy.draining') {
        c.draining = true;
        this.opts.log.info({ proxy: c.address }, 'proxy is shutting down; new requests go elsewhere');
      } else if (offer) {
        this.opts.onOffer(offer, c);
      } else {
        c.payments?.onControl(msg);
      }
    });
    // A refusal hangs up this session (not a later one) and is retried with backoff.
    let refusedByUs = false;
    const refuse = (err: Error) => {
      refusedByUs = true;
      if (c.link.session === session) c.link.refuse(err);
    };
    if (!c.payments) {
      c.link.accepted();
      return;
    }
    // The proxy hung up before confirming our account (e.g. it cannot read our contract on its chain,
    // `chain_unavailable`): that is why it cannot be used now, in stats and 503s like our own refusals.
    let confirmed = false;
    session.once('close', (err) => {
      const planned = err?.code === 'certificate_expired';
      if (!confirmed && !refusedByUs && err && !planned) c.link.refusedByPeer(err);
    });
    try {
      c.payments.attach(session, peer, refuse);
      c.payments.ready(CONFIRM_TIMEOUT_MS).then(
        () => {
          confirmed = true;
          if (c.link.session === session) c.link.accepted();
        },
        (err: Error) => {
          if (!session.closed) refuse(err); // no account in time: try again later
        },
      );
    } catch (err) {
      // e.g. a proxy that does not take payments, or names no valid proxy contract
      refuse(new ProtocolError(`cannot pay this proxy: ${(err as Error).message}`, 'payments_unavailable'));
    }
  }

  /**
   * The proxy for the next try of a request: usable, not yet tried by it, healthy, with the least
   * expected wait ((in flight + 1) × recent latency). A cooling proxy serves only as the last resort.
   */
  choose(exclude: ReadonlySet<ProxyConnection>): ProxyConnection {
    const candidates = this.all().filter((c) => c.usable && !exclude.has(c));
    if (candidates.length === 0) {
      const refused = this.all().filter((c) => c.refusal && !c.usable);
      if (refused.length > 0 && !this.all().some((c) => c.usable)) {
        const retry = Math.min(...refused.map((c) => c.retryInMs ?? 1000));
        const why = refused.map((c) => `${c.address}: ${c.refusal!.message}`).join('; ');
        throw new ServiceUnavailableError(
          `No proxy can be used now (${why}); retrying with backoff.`,
          refused[0]!.refusal!.code ?? 'proxy_refused',
        ).retryAfterSeconds(retry / 1000);
      }
      if (this.all().some((c) => c.draining && c.session)) {
        throw new ServiceUnavailableError(
          'The proxies are shutting down; retry shortly.',
          'proxy_draining',
        ).retryAfterSeconds(1);
      }
      throw new ServiceUnavailableError(
        'Not connected to any proxy; retry shortly.',
        'no_proxy',
      ).retryAfterSeconds(1);
    }
    let fastest = Number.POSITIVE_INFINITY;
    for (const c of candidates) if (c.latencyMs !== null && c.latencyMs < fastest) fastest = c.latencyMs;
    if (!Number.isFinite(fastest)) fastest = 1;
    let best: ProxyConnection | null = null;
    let bestWeight = Number.POSITIVE_INFINITY;
    let lastResort: ProxyConnection | null = null;
    let lastResortWeight = Number.POSITIVE_INFINITY;
    for (const c of candidates) {
      const weight = (c.inFlight + 1) * (c.latencyMs ?? fastest) * c.health.weightFactor;
      if (!c.health.admits(c.inFlight)) {
        if (weight < lastResortWeight) [lastResort, lastResortWeight] = [c, weight];
      } else if (weight < bestWeight) {
        [best, bestWeight] = [c, weight];
      }
    }
    return (best ?? lastResort)!;
  }

  /** The first connected proxy (diagnostics, single-proxy setups). */
  get primary(): ProxyConnection | null {
    return this.all().find((c) => c.session) ?? this.all()[0] ?? null;
  }

  stop(): void {
    for (const c of this.conns.values()) c.link.stop();
  }
}

export function formatAddress(a: ProxyAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
