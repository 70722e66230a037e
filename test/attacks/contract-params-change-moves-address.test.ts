import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { toNano } from '@ton/core';
import { loadOrCreateNodeKey } from '../../src/attest/identity.ts';
import { ProxyContract } from '../../src/chain/contracts/proxy-contract.ts';
import { clientTermsMeetRoot, TonPayments } from '../../src/chain/payments-chain.ts';
import { ensureProxyContract, openNodeChain } from '../../src/config/build-payments.ts';
import { LOCAL_PARAMS, startLocalTon } from '../../src/local/local-ton.ts';
import { silentLogger } from '../../src/ops/log.ts';

/**
 * Attack (finding 15, the addresses): the client contract's initial data held the root's
 * `client_close_delay` and `min_client_stake`, the proxy contract's its `proxy_close_delay`. Whoever
 * controls the root (or any routine `set_params`) changed every derived address: deposits were orphaned
 * (the client and the proxy no longer found the contract that holds them) and a restarted proxy deployed
 * a second proxy contract. Addresses now depend only on identity; stake and close delays are storage the
 * owner can only raise, set with the first deposit (and raised again when the root's rise).
 */

const dir = mkdtempSync(join(tmpdir(), 'cocoon-params-address-'));
after(() => rmSync(dir, { recursive: true, force: true }));

it('a set_params changing delays and stakes moves no address: deposits and the proxy contract are found again', async () => {
  const ton = await startLocalTon(join(dir, 'ton'), 0);
  try {
    const proxyDir = join(dir, 'proxy');
    const clientDir = join(dir, 'client');
    await ton.fundNode(proxyDir, toNano('30'));
    const clientWallet = await ton.fundNode(clientDir, toNano('10'));
    const proxyKey = await loadOrCreateNodeKey(proxyDir);
    const clientKey = await loadOrCreateNodeKey(clientDir);
    const openProxyNode = async () =>
      (await openNodeChain({
        dataDir: proxyDir,
        chainEndpoint: ton.endpoint,
        root: ton.root.toString(),
        ledgerDurability: 'process',
      }))!;

    // Before: the proxy deploys its contract, the client deposits 2 TON into its own.
    let nc = await openProxyNode();
    const proxyContract = (await ensureProxyContract(nc, proxyKey, undefined, silentLogger)).address;
    await nc.ledger.close();
    const deposit = toNano('2');
    const clientContract = await ton.ensureDeposit(clientDir, proxyContract, deposit);
    const globalId = await ton.chain.globalId();
    const before = await TonPayments.connect(ton.chain.client, ton.root, globalId, null);
    let s = await before.clientState(clientContract);
    assert.deepEqual(
      [s.balance, s.stake, s.closeDelay],
      [deposit, LOCAL_PARAMS.minClientStake, LOCAL_PARAMS.clientCloseDelay],
      'the first deposit set the root’s terms',
    );
    const proxyData = () => ton.chain.open(ProxyContract.fromAddress(proxyContract)).getProxyData();
    assert.equal((await proxyData()).closeDelay, LOCAL_PARAMS.proxyCloseDelay);

    // The root's owner raises both delays and the client stake.
    const raised = {
      ...LOCAL_PARAMS,
      paramsVersion: LOCAL_PARAMS.paramsVersion + 1,
      clientCloseDelay: LOCAL_PARAMS.clientCloseDelay * 2,
      proxyCloseDelay: LOCAL_PARAMS.proxyCloseDelay * 2,
      minClientStake: toNano('1.5'),
    };
    await ton.setParams(raised);
    const afterChange = await TonPayments.connect(ton.chain.client, ton.root, globalId, null);
    assert.deepEqual(afterChange.rootParams, raised);

    // The client derives the same contract, and finds its deposit there.
    assert.ok(
      afterChange.clientContract(clientWallet, clientKey.publicKey, proxyContract).equals(clientContract),
    );
    s = await afterChange.clientState(clientContract);
    assert.equal(s.balance, deposit);
    assert.equal(clientTermsMeetRoot(s, raised), false, 'below the new terms: gives no credit until raised');

    // The restarted proxy finds its contract (no second deployment) and raises its close delay to the root's.
    nc = await openProxyNode();
    const again = await ensureProxyContract(nc, proxyKey, undefined, silentLogger);
    await nc.ledger.close();
    assert.ok(again.address.equals(proxyContract));
    const p = await proxyData();
    assert.equal(p.closeDelay, raised.proxyCloseDelay);
    assert.equal(p.stake, LOCAL_PARAMS.minProxyStake, 'the stake is where it was');

    // The next deposit raises the client's terms; nothing else moves.
    assert.ok((await ton.ensureDeposit(clientDir, proxyContract, deposit)).equals(clientContract));
    s = await afterChange.clientState(clientContract);
    assert.deepEqual(
      [s.balance, s.stake, s.closeDelay],
      [deposit, raised.minClientStake, raised.clientCloseDelay],
    );
    assert.equal(clientTermsMeetRoot(s, raised), true);
  } finally {
    await ton.stop();
  }
});
