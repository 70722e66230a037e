import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Harness, post, until } from './harness.ts';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '../../bin/cocoon.mjs');
const ask = { model: 'cocoon-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };

describe('a worker changed live by its operator (admin endpoint and `cocoon worker admin`)', () => {
  const h = new Harness();
  after(() => h.stop());

  test('disable takes it out of routing, enable brings it back, coefficient reprices it', async () => {
    const proxy = await h.proxy();
    const dataDir = join(h.dataDir, 'admin-worker');
    const worker = await h.worker(proxy, { name: 'operated', dataDir });
    const client = await h.client(proxy);
    const url = `${client.baseUrl}/chat/completions`;
    const admin = async (...args: string[]) =>
      (
        await run(process.execPath, [
          bin,
          'worker',
          'admin',
          ...args,
          '--data-dir',
          dataDir,
          '--stats-url',
          worker.statsUrl!,
        ])
      ).stdout;
    const seen = () => proxy.registry.all()[0]!.info;

    assert.match(await admin('disable'), /worker disabled, coefficient 1000/);
    await until(() => !seen().enabled, 'the proxy saw the worker disabled');
    const refused = await post(url, ask);
    assert.equal(refused.status, 503);

    assert.match(await admin('enable'), /worker enabled/);
    await until(() => seen().enabled, 'the proxy saw the worker enabled');
    assert.equal((await post(url, ask)).status, 200);

    assert.match(await admin('coefficient', '5000'), /coefficient 5000/);
    await until(() => seen().models[0]!.coefficient === 5000, 'the proxy saw the new price');
    const tooDear = await post(url, ask); // the client accepts at most 4000 by default
    assert.equal(tooDear.status, 503);
    assert.equal(tooDear.json.error?.code, 'coefficient_too_low');
    assert.equal((await post(url, { ...ask, max_coefficient: 5000 })).status, 200);
  });

  test('the admin endpoint refuses a wrong token, a wrong method and a bad coefficient, changing nothing', async () => {
    const proxy = await h.proxy();
    const worker = await h.worker(proxy, { name: 'guarded' });
    const base = `${worker.statsUrl}/admin`;
    const wrong = await fetch(`${base}/disable`, {
      method: 'POST',
      headers: { authorization: 'Bearer nope' },
    });
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { error: { type: string } }).error.type, 'authentication_error');
    assert.equal((await fetch(`${base}/disable`)).status, 405);
    const token = worker.adminToken!;
    const bad = await fetch(`${base}/coefficient`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({ coefficient: -1 }),
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { param: string } }).error.param, 'coefficient');
    assert.deepEqual(worker.adminStatus(), { enabled: true, coefficient: 1000 });
  });
});
