import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildProxy } from '../../src/config/build-nodes.ts';
import { proxyConfigSchema } from '../../src/config/config.ts';
import type { LocalNetwork } from '../../src/local/local-network.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import { clientContractState, paidNetwork } from './paid-network.ts';
import { until } from './rogue-client.ts';

/**
 * A proxy that lost its ledger restarted its totals at 0: the client signed totals below what its contract
 * had already paid, which the contract refuses, so the client was served for free up to the previous
 * `charged`. Both sides now take the chain's `charged` as the floor of the next total (the client reads it
 * itself, never from the proxy).
 */
describe('a proxy that lost its ledger', () => {
  let net: LocalNetwork;
  let stop: () => Promise<void>;
  let dir: string;
  let restarted: ProxyNode | null = null;
  before(async () => {
    ({ net, stop, dir } = await paidNetwork(1));
  });
  after(async () => {
    await restarted?.stop();
    await stop();
  });

  const ask = async (baseUrl: string) => {
    const res = await fetch(`${baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'cocoon-tiny',
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 5,
      }),
    });
    return { status: res.status, body: (await res.json()) as { usage: { total_cost: number } } };
  };

  test('gives no free service: after the restart every bill is paid on-chain', async () => {
    const contract = net.client.payments!.payer.account!;
    for (let i = 0; i < 3; i++) assert.equal((await ask(net.client.baseUrl)).status, 200);
    await net.proxy.billing!.desk.settleDue(true);
    const charged = (await clientContractState(net, contract)).charged;
    assert.ok(charged > 0n);
    const { workerPort, clientPort } = net.proxy;
    await net.proxy.stop();
    rmSync(join(dir, 'proxy', 'ledger'), { recursive: true, force: true }); // the disk is gone
    restarted = await buildProxy(
      proxyConfigSchema.parse({
        name: 'local-proxy',
        dataDir: join(dir, 'proxy'),
        workerPort,
        clientPort,
        statsPort: null,
        logLevel: 'silent',
        chainEndpoint: net.ton!.endpoint,
        root: net.ton!.root.toString(),
        settleIntervalSeconds: 3600,
      }),
    );
    await restarted.start();
    await until(
      () => restarted!.registry.size === 1 && restarted!.clientSessions().length === 1,
      'rejoined',
      15_000,
    );
    let billed = 0n;
    let served = 0;
    const deadline = Date.now() + 15_000;
    // The client notices the restart on its own time (reconnect back-off): 503 until then.
    while (served < 3 && Date.now() < deadline) {
      const r = await ask(net.client.baseUrl);
      if (r.status === 200) {
        served++;
        billed += BigInt(r.body.usage.total_cost);
      } else {
        assert.equal(r.status, 503);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    assert.equal(served, 3);
    await restarted.billing!.desk.settleDue(true);
    const after = await clientContractState(net, contract);
    assert.equal(after.charged, charged + billed, 'every bill after the restart was redeemed on-chain');
  });
});
