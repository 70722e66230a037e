import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Address } from '@ton/core';
import { generateNodeKey } from '../../src/attest/identity.ts';
import { makeCredentials, trustSetup } from '../../src/attest/trust-setup.ts';
import { dialPeer } from '../../src/net/tls.ts';
import type { Ledger } from '../../src/pay/ledger.ts';
import { paidSuite } from './paid-network.ts';
import { openPlainCall } from './plain-call.ts';
import { call, until } from './rogue-client.ts';

const dev = trustSetup('dev');

/**
 * Attack: every Hello opened a permanent ledger account, with no deposit needed, and a restarted proxy
 * read all of them from the chain at once. Strangers now cost nothing that outlives their session: an
 * account is written once it has signed something, and forgotten when an unsigned one disconnects.
 */
describe('attack: open accounts for free, one per Hello', () => {
  const env = paidSuite();

  test('60 strangers without a deposit leave no ledger record and no account behind', async () => {
    const desk = env.net.proxy.billing!.desk;
    const ledger = (desk as unknown as { opts: { ledger: Ledger } }).opts.ledger;
    const records = () => [...ledger.entries('client/')].length;
    const recordsBefore = records();
    const accountsBefore = desk.stats().clients;
    for (let i = 0; i < 60; i++) {
      const { credentials } = await makeCredentials(generateNodeKey(), 'client', dev.provider);
      const wallet = new Address(0, Buffer.alloc(32, i + 1)).toString();
      const { session } = await dialPeer({
        host: '127.0.0.1',
        port: env.net.proxy.clientPort,
        credentials,
        trust: { verifiers: dev.verifiers, roles: ['proxy'], minTier: 'dev' },
        session: { hello: { role: 'client', name: `stranger-${i}`, info: { wallet } } },
      });
      if (i === 0) {
        // Without a deposit nothing is served either.
        const s = openPlainCall(session, 'x', call());
        const err = await s.readAll().then(
          () => null,
          (e) => e,
        );
        assert.equal((err as { code?: string }).code, 'no_deposit');
      }
      session.close();
    }
    await until(() => env.net.proxy.clientSessions().length === 1, 'strangers gone');
    assert.equal(records(), recordsBefore, 'no ledger record');
    await until(() => desk.stats().clients === accountsBefore, 'no account kept in memory');
  });
});
