import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { toNano } from '@ton/core';
import { raiseTermsBody } from '../../src/chain/contracts/client-contract.ts';
import type { RootParams } from '../../src/chain/contracts/params.ts';
import { setParamsBody } from '../../src/chain/contracts/root-contract.ts';
import { loadWalletFile, WalletSender, walletFromMnemonic } from '../../src/chain/wallet.ts';
import { WALLET_FILE } from '../../src/config/build-payments.ts';
import type { LocalNetwork } from '../../src/local/local-network.ts';
import { LOCAL_PARAMS } from '../../src/local/local-ton.ts';
import { clientContractState, paidNetwork } from './paid-network.ts';
import { until } from './rogue-client.ts';

async function walletIn(net: LocalNetwork, dir: string): Promise<WalletSender> {
  const chain = net.ton!.chain;
  const w = await walletFromMnemonic(await loadWalletFile(join(dir, WALLET_FILE)), await chain.globalId());
  return new WalletSender(chain.client, w, { pollIntervalMs: chain.pollIntervalMs });
}

/** A reply or an error, as much of it as these tests read. */
interface Reply {
  usage?: { total_cost: number; total_tokens: number };
  error?: { code: string; message: string };
}

/**
 * The root's owner changes the params while clients are being served: a price change used to cut off every
 * paying client (402 unpaid_bill) until the proxy restarted, and a change of the close delay or minimum
 * stake moved the derived client contract address (orphaning deposits). Every party follows the change;
 * addresses stay; a contract below new terms gets a clear 402 until its owner raises them.
 */
describe('root params change while clients are served', () => {
  let net: LocalNetwork;
  let stop: () => Promise<void>;
  let dir: string;
  let governance: WalletSender;
  let params: RootParams = LOCAL_PARAMS;
  before(async () => {
    ({ net, stop, dir } = await paidNetwork(1));
    governance = await walletIn(net, join(dir, 'chain', 'governance'));
  });
  after(() => stop());

  const setParams = async (p: Partial<RootParams>) => {
    params = { ...params, ...p, paramsVersion: params.paramsVersion + 1 };
    await governance.send([{ to: net.ton!.root, value: toNano('0.1'), body: setParamsBody(params) }]);
  };
  const ask = async () => {
    const res = await fetch(`${net.client.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'cocoon-tiny',
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 4,
      }),
    });
    return { status: res.status, body: (await res.json()) as Reply };
  };

  test('a price change: no request fails, and bills follow the new price within a refresh', async () => {
    const contract = net.client.payments!.payer.account!;
    assert.equal((await ask()).status, 200);
    await setParams({ pricePerToken: 2000n, workerFeePerToken: 1500n });
    const deadline = Date.now() + 15_000;
    let last: Reply = {};
    while (Date.now() < deadline) {
      const r = await ask();
      assert.equal(r.status, 200, JSON.stringify(r.body));
      last = r.body;
      if (BigInt(last.usage!.total_cost) === BigInt(last.usage!.total_tokens) * 2000n) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.equal(
      BigInt(last.usage!.total_cost),
      BigInt(last.usage!.total_tokens) * 2000n,
      'priced at the new price',
    );
    assert.ok(net.client.payments!.payer.account!.equals(contract), 'same client contract');
  });

  test('a higher minimum stake and close delay: same address, 402 stake_too_low until the owner raises them', async () => {
    const contract = net.client.payments!.payer.account!;
    const before = await clientContractState(net, contract);
    await setParams({
      minClientStake: before.stake + toNano('1'),
      clientCloseDelay: before.closeDelay + 100,
    });
    await until(async () => (await ask()).status === 402, 'the proxy follows the new terms', 15_000);
    const r = await ask();
    assert.equal(r.body.error!.code, 'stake_too_low');
    assert.match(r.body.error!.message, /stake .* is below the required/);
    const owner = await walletIn(net, join(dir, 'client'));
    await owner.send([
      {
        to: contract,
        value: toNano('0.1'),
        body: raiseTermsBody(params.minClientStake, params.clientCloseDelay),
      },
    ]);
    await until(async () => (await ask()).status === 200, 'served again once raised', 15_000);
    assert.ok(net.client.payments!.payer.account!.equals(contract), 'the deposit stayed where it was');
    const after = await clientContractState(net, contract);
    assert.equal(after.stake, params.minClientStake);
  });
});
