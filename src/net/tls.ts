import { constants } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import * as tls from 'node:tls';
import { verifyPeerCertificate } from '../attest/certificate.ts';
import { AttestationError } from '../attest/errors.ts';
import type { AttestationVerifier, PeerIdentity, TrustTier } from '../attest/types.ts';
import { TRUST_TIER_RANK } from '../attest/types.ts';
import { CocoonError, ProtocolError, toWireError } from '../errors.ts';
import { encodeFrame, FrameType } from '../protocol/frames.ts';
import type { NodeRole } from '../protocol/version.ts';
import { Session, type SessionOptions } from './session.ts';

/** What this node presents: its key and its current RA-TLS certificate. */
export interface TlsCredentials {
  privateKeyPem: string;
  certPem: string;
}

/** Whom this node accepts as a peer on one link. */
export interface PeerTrust {
  verifiers: ReadonlyMap<string, AttestationVerifier>;
  /** Roles allowed on this link (a proxy's worker port takes only workers). */
  roles: readonly NodeRole[];
  /** Lowest trust tier accepted; `dev` accepts the software attestation. */
  minTier: TrustTier;
  /** Extra policy (allow-lists) run after the certificate checks; throw AttestationError to refuse. */
  policy?: (peer: PeerIdentity) => void;
  now?: () => Date;
}

const ALPN = ['cocoon/1'];

function baseTlsOptions(creds: TlsCredentials) {
  return {
    key: creds.privateKeyPem,
    cert: creds.certPem,
    minVersion: 'TLSv1.3' as const,
    ALPNProtocols: ALPN,
    // Frames are small and latency-bound: never let Nagle hold one back waiting for an ACK.
    noDelay: true,
    // Trust is decided by our own code after the handshake (verifyPeer), never by a CA.
    rejectUnauthorized: false,
  };
}

/** Runs every check on the peer of a finished TLS handshake. */
export async function verifyPeer(socket: tls.TLSSocket, trust: PeerTrust): Promise<PeerIdentity> {
  const cert = socket.getPeerX509Certificate();
  if (!cert) throw new AttestationError('no_certificate', 'peer presented no certificate');
  const peer = await verifyPeerCertificate(cert.raw, { verifiers: trust.verifiers, now: trust.now?.() });
  if (!trust.roles.includes(peer.role)) {
    throw new AttestationError(
      'role_refused',
      `a ${peer.role} may not connect here (expects ${trust.roles.join('/')})`,
    );
  }
  if (TRUST_TIER_RANK[peer.attestation.tier] < TRUST_TIER_RANK[trust.minTier]) {
    throw new AttestationError(
      'trust_tier_too_low',
      `peer trust tier '${peer.attestation.tier}' is below the required '${trust.minTier}'`,
    );
  }
  trust.policy?.(peer);
  return peer;
}

export interface PeerListenerOptions {
  host: string;
  port: number;
  credentials: TlsCredentials;
  trust: PeerTrust;
  session: Omit<SessionOptions, 'side'>;
  onSession: (session: Session, peer: PeerIdentity) => void;
  onRefused?: (err: CocoonError, remote: string) => void;
  /**
   * From TCP accept to a ready session (TLS handshake, certificate checks, HELLO); a connection that
   * takes longer is dropped with `handshake_timeout`. Default 10 s.
   */
  handshakeTimeoutMs?: number;
  /** Connections from one address still in their handshake; more are dropped at once (`too_many_handshakes`). Default 32. */
  maxPendingPerAddress?: number;
  /** Connections in their handshake over all addresses; more are dropped at once (`too_many_handshakes`). Default 1024. */
  maxPendingHandshakes?: number;
}

/** One accepted connection until its session is ready (or it is gone). */
interface PendingConnection {
  /** A refusal was already reported for it (one report per connection). */
  reported: boolean;
  session: Session | null;
  done: () => void;
}

/** The TCP socket under a server-side TLS socket (Node keeps it as `_parent`). */
function rawSocketOf(socket: tls.TLSSocket): Socket | undefined {
  return (socket as unknown as { _parent?: Socket })._parent;
}

export interface PeerListener {
  server: tls.Server;
  port: number;
  /** Swaps the certificate for new connections (rotation). */
  setCredentials(creds: TlsCredentials): void;
  close(): Promise<void>;
}

/** Accepts mutually authenticated TLS connections and turns each verified peer into a Session. */
export async function listenForPeers(opts: PeerListenerOptions): Promise<PeerListener> {
  const server = tls.createServer({
    ...baseTlsOptions(opts.credentials),
    handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
    requestCert: true,
    // No session tickets: a resumed TLS 1.3 session would skip the client certificate we must verify.
    secureOptions: constants.SSL_OP_NO_TICKET,
  });
  const sockets = new Set<tls.TLSSocket>();
  const handshakeMs = opts.handshakeTimeoutMs ?? 10_000;
  const maxPerAddress = opts.maxPendingPerAddress ?? 32;
  const maxPending = opts.maxPendingHandshakes ?? 1024;
  // Connections not yet a ready session, by TCP socket, and how many per remote address: a peer cannot
  // hold handshakes open (slowloris) for longer than `handshakeMs`, nor more than `maxPerAddress` at once.
  const pending = new WeakMap<Socket, PendingConnection>();
  const pendingByAddress = new Map<string, number>();
  let pendingCount = 0;
  const refuse = (conn: PendingConnection | undefined, e: CocoonError, remote: string) => {
    if (conn?.reported) return;
    if (conn) conn.reported = true;
    opts.onRefused?.(e, remote);
  };
  const rawSockets = new Set<Socket>();
  server.on('connection', (raw: Socket) => {
    rawSockets.add(raw);
    raw.once('close', () => rawSockets.delete(raw));
    const address = raw.remoteAddress ?? 'unknown';
    const remote = `${address}:${raw.remotePort}`;
    const fromAddress = pendingByAddress.get(address) ?? 0;
    if (fromAddress >= maxPerAddress || pendingCount >= maxPending) {
      const conn: PendingConnection = { reported: false, session: null, done: () => {} };
      pending.set(raw, conn);
      refuse(
        conn,
        new ProtocolError(
          fromAddress >= maxPerAddress
            ? `over ${maxPerAddress} handshakes at once from ${address}`
            : `over ${maxPending} handshakes at once`,
          'too_many_handshakes',
        ),
        remote,
      );
      raw.destroy();
      return;
    }
    pendingByAddress.set(address, fromAddress + 1);
    pendingCount++;
    let finished = false;
    const conn: PendingConnection = {
      reported: false,
      session: null,
      done: () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        pendingCount--;
        const n = (pendingByAddress.get(address) ?? 1) - 1;
        if (n > 0) pendingByAddress.set(address, n);
        else pendingByAddress.delete(address);
      },
    };
    const timer = setTimeout(() => {
      const e = new ProtocolError(`handshake not done within ${handshakeMs} ms`, 'handshake_timeout');
      // Once the session runs, its own refusal path reports (ready rejects with this error).
      if (conn.session) conn.session.fail(e);
      else {
        refuse(conn, e, remote);
        raw.destroy();
      }
      conn.done();
    }, handshakeMs);
    timer.unref();
    pending.set(raw, conn);
    raw.once('close', conn.done);
  });
  server.on('secureConnection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const raw = rawSocketOf(socket);
    const conn = raw ? pending.get(raw) : undefined;
    verifyPeer(socket, opts.trust).then(
      (peer) => {
        if (socket.destroyed) return;
        const session = new Session(socket, { ...opts.session, side: 'acceptor' });
        if (conn) conn.session = session;
        closeWhenCertificateExpires(session, peer);
        session.ready.then(
          () => {
            conn?.done();
            opts.onSession(session, peer);
          },
          (err) => refuse(conn, err, remote),
        );
      },
      (err) => {
        const e = err instanceof CocoonError ? err : new AttestationError('verify_failed', String(err));
        refuse(conn, e, remote);
        if (socket.destroyed) return;
        // Tell the peer why before hanging up, so its operator sees the reason.
        socket.end(encodeFrame(FrameType.GoAway, 0, JSON.stringify(toWireError(e))));
        setTimeout(() => socket.destroy(), 1000).unref();
      },
    );
  });
  server.on('tlsClientError', (err, socket) => {
    const raw = rawSocketOf(socket);
    // A peer that hung up mid-handshake has no address any more.
    const remote = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'gone';
    const timedOut = (err as NodeJS.ErrnoException).code === 'ERR_TLS_HANDSHAKE_TIMEOUT';
    refuse(
      raw ? pending.get(raw) : undefined,
      timedOut
        ? new ProtocolError(err.message, 'handshake_timeout')
        : new AttestationError('tls_error', err.message),
      remote,
    );
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(opts.port, opts.host, () => {
      server.off('error', rej);
      res();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    setCredentials: (creds) => server.setSecureContext(baseTlsOptions(creds)),
    close: () =>
      new Promise<void>((res) => {
        server.close(() => res());
        for (const s of sockets) s.destroy();
        for (const s of rawSockets) s.destroy(); // those still in their handshake
      }),
  };
}

/**
 * A session lives no longer than the certificate its peer showed: then it is closed, and the peer (which
 * rotates its certificate before expiry) reconnects with a fresh one and is verified again.
 */
function closeWhenCertificateExpires(session: Session, peer: PeerIdentity): void {
  const ms = Math.min(peer.notAfter.getTime() - Date.now(), 2 ** 31 - 1);
  const timer = setTimeout(
    () => session.close(new AttestationError('certificate_expired', 'peer certificate expired; reconnect')),
    Math.max(0, ms),
  );
  timer.unref();
  session.once('close', () => clearTimeout(timer));
}

export interface DialOptions {
  host: string;
  port: number;
  credentials: TlsCredentials;
  trust: PeerTrust;
  session: Omit<SessionOptions, 'side'>;
  connectTimeoutMs?: number;
}

/** Connects, verifies the peer, runs the protocol handshake; resolves with a ready Session. */
export function dialPeer(opts: DialOptions): Promise<{ session: Session; peer: PeerIdentity }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: opts.host, port: opts.port, ...baseTlsOptions(opts.credentials) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new AttestationError('connect_timeout', `connecting to ${opts.host}:${opts.port} timed out`));
    }, opts.connectTimeoutMs ?? 10_000);
    const fail = (err: unknown) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      verifyPeer(socket, opts.trust).then((peer) => {
        socket.off('error', fail);
        const session = new Session(socket, { ...opts.session, side: 'dialer' });
        closeWhenCertificateExpires(session, peer);
        session.ready.then(() => {
          clearTimeout(timer);
          resolve({ session, peer });
        }, fail);
      }, fail);
    });
  });
}
