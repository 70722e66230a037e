/**
 * Test peers for the transport: a real listener with a real Session per peer (every session it made is
 * kept, with why it closed), an honest dialer, and a raw attacker — a properly attested TLS peer that
 * writes frames by hand and reads (or refuses to read) whatever it likes.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { generateNodeKey } from '../../src/attest/identity.ts';
import { makeCredentials, trustSetup } from '../../src/attest/trust-setup.ts';
import type { CocoonError } from '../../src/errors.ts';
import type { Session, SessionOptions } from '../../src/net/session.ts';
import type { Stream } from '../../src/net/stream.ts';
import {
  dialPeer,
  listenForPeers,
  type PeerListener,
  type PeerListenerOptions,
  type PeerTrust,
  type TlsCredentials,
} from '../../src/net/tls.ts';
import { encodeFrame, type Frame, FrameDecoder, FrameType } from '../../src/protocol/frames.ts';
import type { NodeRole } from '../../src/protocol/version.ts';

export const dev = trustSetup('dev');
export const anyRole: PeerTrust = {
  verifiers: dev.verifiers,
  roles: ['client', 'proxy', 'worker'],
  minTier: 'dev',
};

export async function credentialsFor(role: NodeRole): Promise<TlsCredentials> {
  return (await makeCredentials(generateNodeKey(), role, dev.provider)).credentials;
}

export type SessionTweaks = Partial<Omit<SessionOptions, 'side' | 'hello'>>;

/** Echoes every part back and ends with `{echoed}`: an honest service that reads what it is sent. */
export async function echo(stream: Stream): Promise<void> {
  try {
    for await (const part of stream) {
      const p = stream.write(part);
      if (p) await p;
    }
    stream.end({ echoed: stream.bytesIn });
  } catch {
    // reset by the peer
  }
}

/** Answers at once and never reads what the caller sends (as the proxy's `models` call does). */
export function answerWithoutReading(stream: Stream): void {
  void stream.write(JSON.stringify({ data: [{ id: 'm' }] }));
  stream.end();
}

export interface TestServer {
  listener: PeerListener;
  port: number;
  sessions: Session[];
  refused: CocoonError[];
  /** Resolves with the next session the listener made ready (or the one already made, by index). */
  session(index: number): Promise<Session>;
  close(): Promise<void>;
}

export async function startServer(
  o: {
    session?: SessionTweaks;
    listener?: Partial<
      Pick<PeerListenerOptions, 'handshakeTimeoutMs' | 'maxPendingPerAddress' | 'maxPendingHandshakes'>
    >;
    /** Serves every call but the honest peer's echo calls (default: echo everything). */
    onStream?: (s: Stream, session: Session) => void;
  } = {},
): Promise<TestServer> {
  const sessions: Session[] = [];
  const refused: CocoonError[] = [];
  const waiting: (() => void)[] = [];
  const listener = await listenForPeers({
    host: '127.0.0.1',
    port: 0,
    credentials: await credentialsFor('proxy'),
    trust: anyRole,
    session: { hello: { role: 'proxy', name: 'server' }, ...o.session },
    ...o.listener,
    onRefused: (err) => refused.push(err),
    onSession: (session) => {
      sessions.push(session);
      // Calls `{method: 'echo'}` (the honest peer's, see `served`) are always echoed.
      session.on('stream', (s) =>
        (s.header as { method?: string })?.method === 'echo' || !o.onStream
          ? void echo(s)
          : o.onStream(s, session),
      );
      for (const w of waiting.splice(0)) w();
    },
  });
  return {
    listener,
    port: listener.port,
    sessions,
    refused,
    async session(index) {
      while (!sessions[index]) await new Promise<void>((r) => waiting.push(r));
      return sessions[index]!;
    },
    close: () => listener.close(),
  };
}

/** An honest peer: the real dialer and Session. */
export async function dial(port: number, tweaks: SessionTweaks = {}): Promise<Session> {
  const { session } = await dialPeer({
    host: '127.0.0.1',
    port,
    credentials: await credentialsFor('client'),
    trust: anyRole,
    session: { hello: { role: 'client', name: 'honest' }, ...tweaks },
  });
  return session;
}

/** The honest peer is served: a body of `bytes` echoed back intact through the flow-controlled stream. */
export async function served(
  port: number,
  bytes = 3 * 1024 * 1024,
  tweaks: SessionTweaks = {},
): Promise<boolean> {
  const session = await dial(port, tweaks);
  try {
    const s = session.openStream({ method: 'echo' });
    const reading = s.readAll();
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let sent = 0; sent < bytes; sent += chunk.length) await s.write(chunk);
    s.end();
    return (await reading).length === bytes;
  } finally {
    session.close();
  }
}

/** Why a session closed, once it did: the violation we recorded (or null for an ordinary close). */
export function violationOf(session: Session): Promise<string | null> {
  if (session.closed) return Promise.resolve(session.violation?.code ?? null);
  return new Promise((res) => session.once('close', () => res(session.violation?.code ?? null)));
}

export function hello(role: NodeRole = 'client', name = 'rogue'): Buffer {
  return encodeFrame(
    FrameType.Hello,
    0,
    JSON.stringify({ protocol: 'cocoon', minVersion: 1, maxVersion: 1, role, name }),
  );
}

/** An attested peer that speaks the protocol by hand. */
export class RawPeer {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: tls.TLSSocket) {
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      try {
        for (const f of this.decoder.push(d)) this.frames.push(f);
      } catch {
        socket.destroy();
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((res) => socket.once('close', () => res()));
    void this.closed.then(() => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Connects with a valid certificate; with `sayHello`, also does the protocol handshake. */
  static async connect(
    port: number,
    { sayHello = true, localAddress }: { sayHello?: boolean; localAddress?: string } = {},
  ): Promise<RawPeer> {
    const creds = await credentialsFor('client');
    // tls.connect passes net options (localAddress) through to the TCP connection.
    const options: tls.ConnectionOptions & { localAddress?: string } = {
      host: '127.0.0.1',
      port,
      localAddress,
      key: creds.privateKeyPem,
      cert: creds.certPem,
      rejectUnauthorized: false,
    };
    const socket = tls.connect(options);
    await new Promise<void>((res, rej) => socket.once('secureConnect', () => res()).once('error', rej));
    const peer = new RawPeer(socket);
    if (sayHello) {
      socket.write(hello());
      await peer.next((f) => f.type === FrameType.Hello);
    }
    return peer;
  }

  send(type: FrameType, streamId: number, payload?: Buffer | string): boolean {
    return this.socket.write(encodeFrame(type, streamId, payload));
  }

  /** Waits for a frame matching `match` (seen before or later); rejects if the connection closes first. */
  async next(match: (f: Frame) => boolean): Promise<Frame> {
    for (;;) {
      const f = this.frames.find(match);
      if (f) return f;
      if (this.socket.destroyed) throw new Error('connection closed');
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** The GOAWAY the other side sent before hanging up, if any. */
  async goAwayCode(): Promise<string | null> {
    await this.closed;
    const g = this.frames.find((f) => f.type === FrameType.GoAway);
    return g ? (JSON.parse(g.payload.toString()) as { code: string }).code : null;
  }

  resets(): { id: number; code: string }[] {
    return this.frames
      .filter((f) => f.type === FrameType.Reset)
      .map((f) => ({ id: f.streamId, code: (JSON.parse(f.payload.toString()) as { code: string }).code }));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A bare TCP connection that never starts TLS (or whatever bytes it is given). */
export function tcpConnect(port: number, localAddress?: string): Promise<net.Socket> {
  return new Promise((res, rej) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress }, () => res(s));
    s.once('error', rej);
  });
}

export function waitClosed(s: net.Socket): Promise<void> {
  return s.destroyed ? Promise.resolve() : new Promise((res) => s.once('close', () => res()));
}

/** Polls `cond` every few ms until it holds (bounded), for state that changes on the event loop. */
export async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
