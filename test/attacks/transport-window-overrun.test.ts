import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { FrameType } from '../../src/protocol/frames.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import { Harness, post } from '../e2e/harness.ts';
import { RawPeer, served, startServer, violationOf } from '../net/peers.ts';

// Attack: ignore flow control and keep sending DATA after the window granted is spent.
const KiB = 1024;
const ask = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 };

describe('window overrun', () => {
  test('against a Session: cut off with flow_control_violation, holding at most the window', async () => {
    const srv = await startServer({ session: { streamWindowBytes: 64 * KiB }, onStream: () => {} });
    after(() => srv.close());
    const attacker = await RawPeer.connect(srv.port);
    const s = await srv.session(0);
    attacker.send(FrameType.Open, 1, '{}');
    for (let i = 0; i < 100; i++) attacker.send(FrameType.Data, 1, Buffer.alloc(16 * KiB)); // 1.6 MiB
    assert.equal(await violationOf(s), 'flow_control_violation');
    assert.equal(await attacker.goAwayCode(), 'flow_control_violation');
    assert.ok(s.peakBufferedBytes <= 64 * KiB + 4 * 64 + 2, `held ${s.peakBufferedBytes}`);
    assert.ok(await served(srv.port, 1024 * KiB, { streamWindowBytes: 64 * KiB }));
  });

  test('against a real proxy: counted as flow_control_violation; the proxy keeps serving', async () => {
    const h = new Harness();
    after(() => h.stop());
    const proxy: ProxyNode = await h.proxy();
    await h.worker(proxy);
    const client = await h.client(proxy);
    const url = `${client.baseUrl}/chat/completions`;
    const attacker = await RawPeer.connect(proxy.clientPort);
    attacker.send(FrameType.Open, 1, JSON.stringify({ method: 'models' }));
    attacker.send(FrameType.Data, 1, Buffer.alloc(1024 * KiB)); // the whole default window
    attacker.send(FrameType.Data, 1, Buffer.alloc(1)); // one byte more
    assert.equal(await attacker.goAwayCode(), 'flow_control_violation');
    assert.equal(proxy.refusals.flow_control_violation, 1, JSON.stringify(proxy.refusals));
    assert.equal((await post(url, ask)).status, 200, 'the proxy still serves');
  });
});
