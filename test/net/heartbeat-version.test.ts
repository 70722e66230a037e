import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as tls from 'node:tls';
import { generateNodeKey } from '../../src/attest/identity.ts';
import { makeCredentials, trustSetup } from '../../src/attest/trust-setup.ts';
import type { CocoonError } from '../../src/errors.ts';
import { dialPeer, listenForPeers, type PeerTrust } from '../../src/net/tls.ts';
import { encodeFrame, FrameDecoder, FrameType } from '../../src/protocol/frames.ts';

const trust = trustSetup('dev');
const anyRole: PeerTrust = {
  verifiers: trust.verifiers,
  roles: ['client', 'proxy', 'worker'],
  minTier: 'dev',
};

describe('heartbeats and version negotiation', () => {
  const cleanup: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanup) await c();
  });

  test('a peer that answers the handshake and then goes silent is dropped after the idle timeout', async () => {
    const { credentials } = await makeCredentials(generateNodeKey(), 'proxy', trust.provider);
    const server = tls.createServer(
      {
        key: credentials.privateKeyPem,
        cert: credentials.certPem,
        requestCert: true,
        rejectUnauthorized: false,
      },
      (s) => {
        s.resume(); // read and ignore everything, answer nothing after Hello
        s.on('error', () => {});
        s.write(
          encodeFrame(
            FrameType.Hello,
            0,
            JSON.stringify({
              protocol: 'cocoon',
              minVersion: 1,
              maxVersion: 1,
              version: 1,
              role: 'proxy',
              name: 'mute',
            }),
          ),
        );
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanup.push(() => server.close());
    const { credentials: mine } = await makeCredentials(generateNodeKey(), 'client', trust.provider);
    const { session } = await dialPeer({
      host: '127.0.0.1',
      port: (server.address() as { port: number }).port,
      credentials: mine,
      trust: anyRole,
      session: { hello: { role: 'client', name: 'c' }, heartbeatMs: 40, idleTimeoutMs: 150 },
    });
    const t0 = Date.now();
    const err = await new Promise<CocoonError | null>((r) => session.once('close', r));
    assert.equal(err?.code, 'peer_timeout');
    assert.ok(Date.now() - t0 >= 140);
  });

  test('a live peer answers pings and stays connected well past the idle timeout', async () => {
    const { credentials } = await makeCredentials(generateNodeKey(), 'proxy', trust.provider);
    const listener = await listenForPeers({
      host: '127.0.0.1',
      port: 0,
      credentials,
      trust: anyRole,
      session: { hello: { role: 'proxy', name: 'p' }, heartbeatMs: 40, idleTimeoutMs: 150 },
      onSession: () => {},
    });
    cleanup.push(() => listener.close());
    const { credentials: mine } = await makeCredentials(generateNodeKey(), 'client', trust.provider);
    const { session } = await dialPeer({
      host: '127.0.0.1',
      port: listener.port,
      credentials: mine,
      trust: anyRole,
      session: { hello: { role: 'client', name: 'c' }, heartbeatMs: 40, idleTimeoutMs: 150 },
    });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(session.closed, false);
    assert.ok(session.framesIn >= 3, `expected pings/pongs, got ${session.framesIn} frames`);
    session.close();
  });

  test('a dialer speaking only a newer protocol version is refused with version_mismatch', async () => {
    const { credentials } = await makeCredentials(generateNodeKey(), 'proxy', trust.provider);
    const listener = await listenForPeers({
      host: '127.0.0.1',
      port: 0,
      credentials,
      trust: anyRole,
      session: { hello: { role: 'proxy', name: 'p' } },
      onSession: () => {},
    });
    cleanup.push(() => listener.close());
    const { credentials: mine } = await makeCredentials(generateNodeKey(), 'client', trust.provider);
    const socket = tls.connect({
      host: '127.0.0.1',
      port: listener.port,
      key: mine.privateKeyPem,
      cert: mine.certPem,
      rejectUnauthorized: false,
    });
    await new Promise<void>((r) => socket.once('secureConnect', () => r()));
    socket.write(
      encodeFrame(
        FrameType.Hello,
        0,
        JSON.stringify({ protocol: 'cocoon', minVersion: 2, maxVersion: 3, role: 'client', name: 'future' }),
      ),
    );
    const decoder = new FrameDecoder(1 << 20);
    const frame = await new Promise<{ type: number; payload: Buffer }>((resolve) =>
      socket.on('data', (d: Buffer) => {
        const f = decoder.push(d)[0];
        if (f) resolve(f);
      }),
    );
    socket.destroy();
    assert.equal(frame.type, FrameType.GoAway);
    assert.equal(JSON.parse(frame.payload.toString()).code, 'version_mismatch');
  });
});
