import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { trustSetup } from '../../src/attest/trust-setup.ts';
import type { CocoonError } from '../../src/errors.ts';
import type { Session } from '../../src/net/session.ts';
import type { ProxyNode } from '../../src/proxy/proxy-node.ts';
import { Harness, post, until } from '../e2e/harness.ts';
import { rogueWorker } from './rogue-worker.ts';

const _dev = trustSetup('dev');
const ALLOWED = 'aa'.repeat(32);

/** An attested worker whose certificate attests `attested` and whose Hello announces `announced`. */
const worker = (proxy: ProxyNode, attested: string[] | undefined, announced: string[]) =>
  rogueWorker(proxy, announced[0]!, { name: 'sly', maxConcurrent: 4, attested: attested ?? null, announced });

function closed(s: Session): Promise<CocoonError | null> {
  return new Promise((res) => (s.closed ? res(s.closeError) : s.once('close', res)));
}

/**
 * Attack: the allow-list is checked against the certificate's claims, but a worker announces (in its Hello
 * or a later `worker.status`) a model its certificate does not attest, or carries no models in its claims
 * at all, so that it is routed requests for a model nobody allowed. Routing uses only what was checked.
 */
describe('attack: a worker serves a model off the allow-list', () => {
  const h = new Harness();
  after(() => h.stop());

  test('a Hello announcing a model the certificate does not attest is refused (model_not_attested)', async () => {
    const proxy = await h.proxy({ allowedModels: [ALLOWED] });
    const s = await worker(proxy, [`good@v1:${ALLOWED}`], ['good', 'forbidden']);
    await closed(s);
    await until(() => proxy.refusals.model_not_attested === 1, 'refused and counted');
    assert.equal(proxy.registry.size, 0);
    assert.deepEqual(proxy.modelList().models, []);
  });

  test('claims without any model (which pass every list) can announce nothing', async () => {
    const proxy = await h.proxy({ allowedModels: [ALLOWED] });
    const s = await worker(proxy, undefined, ['forbidden']);
    await closed(s);
    await until(() => proxy.refusals.model_not_attested === 1, 'refused and counted');
    assert.equal(proxy.registry.size, 0);
  });

  test('a worker.status adding an unattested model cuts the worker off; requests for it find no worker', async () => {
    const proxy = await h.proxy();
    await h.worker(proxy, { models: ['cocoon-tiny'] });
    const client = await h.client(proxy);
    const s = await worker(proxy, ['cocoon-tiny'], ['cocoon-tiny']);
    await until(() => proxy.registry.size === 2, 'the sly worker joined');
    s.sendControl({
      type: 'worker.status',
      info: { models: [{ name: 'forbidden', maxConcurrent: 4, coefficient: 1 }] },
    });
    assert.equal((await closed(s))?.code, 'model_not_attested');
    assert.equal(proxy.registry.size, 1);
    const r = await post(`${client.baseUrl}/chat/completions`, {
      model: 'forbidden',
      messages: [{ role: 'user', content: 'hi' }],
    });
    assert.equal(r.status, 404);
    const ok = await post(`${client.baseUrl}/chat/completions`, {
      model: 'cocoon-tiny',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 2,
    });
    assert.equal(ok.status, 200, 'the honest worker keeps serving');
  });
});
