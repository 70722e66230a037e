import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { toNano } from '@ton/core';
import { clientRequestCloseBody } from '../../src/chain/contracts/client-contract.ts';
import { Harness } from '../e2e/harness.ts';
import { clientContractState, paidSuite } from './paid-network.ts';
import { call, RogueClient, until } from './rogue-client.ts';

/**
 * Attack: a client signs for what it is served, asks its contract to close, keeps being served on the
 * proxy's stale view, then disconnects, hoping its close delay runs out before the proxy redeems what it
 * signed. A closing contract gives no credit, the proxy notices within one refresh (connected or not) and
 * redeems at once, and it refuses to run with a close delay that does not leave it the time.
 */
describe('attack: ask to close, keep being served, leave before the proxy redeems', () => {
  const env = paidSuite(1);

  test('everything signed before and after request_close is redeemed; a closing contract is not served', async () => {
    const rogue = await RogueClient.join(env.net, join(env.dir, 'leaver'));
    const serve = async (id: string) => {
      const { stream } = rogue.open(call({ stream: false, maxTokens: 8 }), id);
      const paid = rogue.waitForBill(id).then(() => rogue.sign([id]));
      const r = await rogue.read(stream);
      await paid;
      return r;
    };
    assert.equal((await serve('before-close')).error, null);
    await rogue.wallet.send([{ to: rogue.contract, value: toNano('0.1'), body: clientRequestCloseBody() }]);
    assert.equal((await clientContractState(env.net, rogue.contract)).state, 1, 'closing on-chain');
    // Served once more on the proxy's view from before the close (at most one refresh old), then gone.
    await serve('on-stale-view');
    rogue.close();
    const desk = env.net.proxy.billing!.desk;
    const signed = desk.accountOf(rogue.contract)!.authorised;
    assert.ok(signed > 0n);
    await until(
      async () => (await clientContractState(env.net, rogue.contract)).charged === signed,
      'redeemed',
      15_000,
    );
    // Back again: nothing more is served against a closing contract.
    const again = await RogueClient.connect(env.net, join(env.dir, 'leaver'), rogue.contract);
    const { stream } = again.open(call());
    const r = await again.read(stream);
    assert.equal((r.error as { code?: string }).code, 'contract_closing');
    again.close();
  });

  test('a proxy whose settlement is too slow for the root’s close delay refuses to start', async () => {
    const h = new Harness();
    const proxyDir = join(env.dir, 'slow-proxy');
    await env.net.ton!.fundNode(proxyDir, toNano('30'));
    try {
      await assert.rejects(
        h.proxy({
          dataDir: proxyDir,
          chainEndpoint: env.net.ton!.endpoint,
          root: env.net.ton!.root.toString(),
          settleIntervalSeconds: 7 * 86_400,
        }),
        /client close delay \(86400 s\) is too short/,
      );
    } finally {
      await h.stop();
    }
  });
});
