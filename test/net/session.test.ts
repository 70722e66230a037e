import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as tls from 'node:tls';
import { createNodeCertificate } from '../../src/attest/certificate.ts';
import { DevAttestationProvider, DevAttestationVerifier } from '../../src/attest/dev/index.ts';
import { generateNodeKey } from '../../src/attest/identity.ts';
import { makeCredentials, trustSetup } from '../../src/attest/trust-setup.ts';
import type { AttestationProvider } from '../../src/attest/types.ts';
import { x509 } from '../../src/attest/x509.ts';
import type { CocoonError } from '../../src/errors.ts';
import type { Session } from '../../src/net/session.ts';
import { dialPeer, listenForPeers, type PeerTrust } from '../../src/net/tls.ts';

const trust = trustSetup('dev');
const anyRole: PeerTrust = {
  verifiers: trust.verifiers,
  roles: ['client', 'proxy', 'worker'],
  minTier: 'dev',
};

async function startEchoServer(t: Partial<PeerTrust> = {}) {
  const { credentials } = await makeCredentials(generateNodeKey(), 'proxy', trust.provider);
  const refused: CocoonError[] = [];
  const sessions: Session[] = [];
  const listener = await listenForPeers({
    host: '127.0.0.1',
    port: 0,
    credentials,
    trust: { ...anyRole, ...t },
    session: { hello: { role: 'proxy', name: 'echo' } },
    onRefused: (err) => refused.push(err),
    onSession: (session) => {
      sessions.push(session);
      session.on('stream', async (stream) => {
        try {
          for await (const part of stream) {
            const p = stream.write(part);
            if (p) await p;
          }
          stream.end({ echoed: stream.bytesIn, header: stream.header });
        } catch {
          // reset by the peer
        }
      });
    },
  });
  return { listener, refused, sessions };
}

/** Dials as a client presenting a hand-made certificate (`key` must be the key the certificate names). */
function dialWithCertificate(port: number, key: { privateKeyPem: string }, certPem: string) {
  return dialPeer({
    host: '127.0.0.1',
    port,
    credentials: { privateKeyPem: key.privateKeyPem, certPem },
    trust: anyRole,
    session: { hello: { role: 'client', name: 'tester' } },
  });
}

async function dial(port: number, role: 'client' | 'worker' = 'client') {
  const { credentials } = await makeCredentials(generateNodeKey(), role, trust.provider);
  return dialPeer({
    host: '127.0.0.1',
    port,
    credentials,
    trust: anyRole,
    session: { hello: { role, name: 'tester' } },
  });
}

describe('mutual TLS sessions', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanup) await c();
  });

  test('handshake verifies both sides and negotiates the protocol version', async () => {
    const srv = await startEchoServer();
    cleanup.push(() => srv.listener.close());
    const { session, peer } = await dial(srv.listener.port);
    cleanup.push(() => session.close());
    assert.equal(peer.role, 'proxy');
    assert.equal(peer.attestation.tier, 'dev');
    assert.equal(session.version, 1);
    assert.equal(session.peerHello?.name, 'echo');
  });

  test('many concurrent streams are multiplexed on one connection, each echoed intact', async () => {
    const srv = await startEchoServer();
    cleanup.push(() => srv.listener.close());
    const { session } = await dial(srv.listener.port);
    cleanup.push(() => session.close());
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const s = session.openStream({ n: i });
        for (let k = 0; k < 10; k++) await s.write(`${i}:${k};`);
        s.end();
        const body = (await s.readAll()).toString();
        return { i, body, trailer: s.trailer as { header: { n: number } } };
      }),
    );
    for (const r of results) {
      assert.equal(r.body, Array.from({ length: 10 }, (_, k) => `${r.i}:${k};`).join(''));
      assert.equal(r.trailer.header.n, r.i);
    }
    assert.equal(session.openStreams, 0);
  });

  test('flow control: a 20 MiB body through a 1 MiB window arrives intact', async () => {
    const srv = await startEchoServer();
    cleanup.push(() => srv.listener.close());
    const { session } = await dial(srv.listener.port);
    cleanup.push(() => session.close());
    const s = session.openStream({});
    const chunk = Buffer.alloc(256 * 1024, 7);
    const reading = s.readAll();
    for (let k = 0; k < 80; k++) await s.write(chunk);
    s.end();
    const body = await reading;
    assert.equal(body.length, 80 * chunk.length);
  });

  test('a reset reaches the other side and aborts its signal', async () => {
    const { credentials } = await makeCredentials(generateNodeKey(), 'proxy', trust.provider);
    let serverAbort: Promise<unknown> | null = null;
    const listener = await listenForPeers({
      host: '127.0.0.1',
      port: 0,
      credentials,
      trust: anyRole,
      session: { hello: { role: 'proxy', name: 's' } },
      onSession: (session) =>
        session.on('stream', (stream) => {
          serverAbort = new Promise((res) =>
            stream.signal.addEventListener('abort', () => res(stream.signal.reason)),
          );
        }),
    });
    cleanup.push(() => listener.close());
    const { session } = await dial(listener.port);
    cleanup.push(() => session.close());
    const s = session.openStream({});
    await s.write('x');
    while (!serverAbort) await new Promise((r) => setTimeout(r, 5));
    s.reset(new Error('caller left'));
    const reason = (await serverAbort) as CocoonError;
    assert.equal(reason.status, 500);
  });

  test('a node presenting no certificate is refused', async () => {
    const srv = await startEchoServer();
    cleanup.push(() => srv.listener.close());
    const socket = tls.connect({ host: '127.0.0.1', port: srv.listener.port, rejectUnauthorized: false });
    socket.resume();
    await new Promise<void>((res) => socket.on('close', () => res()).on('error', () => {}));
    assert.equal(srv.refused.at(-1)?.code, 'no_certificate');
  });

  test('a certificate not signed by its own key is refused', async () => {
    const srv = await startEchoServer();
    cleanup.push(() => srv.listener.close());
    const key = generateNodeKey();
    const cert = await createNodeCertificate({
      key,
      signingKey: generateNodeKey(),
      provider: trust.provider,
      claims: { role: 'client', protocol: { min: 1, max: 1 } },
    });
    await assert.rejects(
      dialWithCertificate(srv.listener.port, key, cert.certPem),
      (e: CocoonError) => e.code === 'bad_signature',
    );
    assert.equal(srv.refused.at(-1)?.code, 'bad_signature');
  });

  test('claims naming another key than the TLS key are refused', async () => {
    const srv = await startEchoServer();
    cleanup.push(() => srv.listener.close());
    const key = generateNodeKey();
    const other = generateNodeKey();
    // A provider that quotes honestly but over claims that name `other`'s key.
    const liar: AttestationProvider = new DevAttestationProvider();
    const cert = await createNodeCertificate({
      key: { ...key, publicKeyHex: other.publicKeyHex },
      provider: liar,
      claims: { role: 'client', protocol: { min: 1, max: 1 } },
    });
    await assert.rejects(
      dialWithCertificate(srv.listener.port, key, cert.certPem),
      (e: CocoonError) => e.code === 'claims_key_mismatch',
    );
  });

  test('a quote over other report data than the claims hash is refused', async () => {
    const srv = await startEchoServer();
    cleanup.push(() => srv.listener.close());
    const key = generateNodeKey();
    // A provider that quotes over something else than SHA-512 of the claims (a replayed quote).
    const replayer: AttestationProvider = {
      kind: 'dev',
      quote: () => new DevAttestationProvider().quote(Buffer.alloc(64, 7)),
    };
    const cert = await createNodeCertificate({
      key,
      provider: replayer,
      claims: { role: 'client', protocol: { min: 1, max: 1 } },
    });
    await assert.rejects(
      dialWithCertificate(srv.listener.port, key, cert.certPem),
      (e: CocoonError) => e.code === 'report_data_mismatch',
    );
  });

  test('an unknown critical extension is refused', async () => {
    const srv = await startEchoServer();
    cleanup.push(() => srv.listener.close());
    const key = generateNodeKey();
    const cert = await createNodeCertificate({
      key,
      provider: trust.provider,
      claims: { role: 'client', protocol: { min: 1, max: 1 } },
      extraExtensions: [new x509.Extension('1.2.3.4.5', true, new Uint8Array([1]))],
    });
    await assert.rejects(
      dialWithCertificate(srv.listener.port, key, cert.certPem),
      (e: CocoonError) => e.code === 'unknown_critical_extension',
    );
  });

  test('a peer whose role may not use the link is refused', async () => {
    const srv = await startEchoServer({ roles: ['worker'] });
    cleanup.push(() => srv.listener.close());
    await assert.rejects(dial(srv.listener.port, 'client'), (e: CocoonError) => e.code === 'role_refused');
    const ok = await dial(srv.listener.port, 'worker');
    ok.session.close();
  });

  test('a dev attestation is refused where a TEE tier is required', async () => {
    const srv = await startEchoServer({ minTier: 'tee-cpu' });
    cleanup.push(() => srv.listener.close());
    await assert.rejects(dial(srv.listener.port), (e: CocoonError) => e.code === 'trust_tier_too_low');
  });

  test('a dev attestation is refused by a node in tdx trust (no dev verifier, TEE tier required)', async () => {
    const tdx = trustSetup('tdx', { collateralFile: '/nonexistent.json', collateralCacheDir: '/tmp' });
    const srv = await startEchoServer({ verifiers: tdx.verifiers, minTier: tdx.minPeerTier });
    cleanup.push(() => srv.listener.close());
    await assert.rejects(dial(srv.listener.port));
    for (let i = 0; i < 100 && srv.refused.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(srv.refused[0]?.code, 'attestation_kind_refused', srv.refused[0]?.message);
  });

  test('an expired certificate is refused', async () => {
    const verifier = new DevAttestationVerifier();
    const srv = await startEchoServer({ verifiers: new Map([[verifier.kind, verifier]]) });
    cleanup.push(() => srv.listener.close());
    const key = generateNodeKey();
    const cert = await createNodeCertificate({
      key,
      provider: trust.provider,
      claims: { role: 'client', protocol: { min: 1, max: 1 } },
      now: new Date(Date.now() - 48 * 3600_000),
    });
    await assert.rejects(
      dialWithCertificate(srv.listener.port, key, cert.certPem),
      (e: CocoonError) => e.code === 'certificate_expired',
    );
  });

  test('garbage after the handshake closes only that session; the server keeps serving', async () => {
    const srv = await startEchoServer();
    cleanup.push(() => srv.listener.close());
    const { session } = await dial(srv.listener.port);
    const closed = new Promise<CocoonError | null>((res) => session.once('close', res));
    session.socket.write(Buffer.from([0, 0, 0, 9, 0xee, 0, 0, 0, 1, 1, 2, 3, 4]));
    const err = await closed;
    assert.match(String(err?.message), /unknown frame type/);
    const again = await dial(srv.listener.port);
    const s = again.session.openStream({});
    s.end();
    await s.readAll();
    again.session.close();
  });
});
