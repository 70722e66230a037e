import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Address, toNano } from '@ton/core';
import { loadOrCreateNodeKey } from '../../src/attest/identity.ts';
import { formatTon } from '../../src/chain/money.ts';
import { TonPayments } from '../../src/chain/payments-chain.ts';
import { ensureProxyContract, openNodeChain } from '../../src/config/build-payments.ts';
import { type LocalTon, startLocalTon } from '../../src/local/local-ton.ts';
import { silentLogger } from '../../src/ops/log.ts';
import { Ledger } from '../../src/pay/ledger.ts';
import { signWorkerPayout } from '../../src/pay/signed-messages.ts';
import { cocoon, failed, ok } from './run-cocoon.ts';

describe('cocoon money commands against an embedded TON chain', { concurrency: true }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-money-cli-'));
  const clientDir = join(dir, 'client');
  const proxyDir = join(dir, 'proxy');
  const workerDir = join(dir, 'worker');
  let ton: LocalTon;
  let payments: TonPayments;
  let proxyContract: Address;
  let chainArgs: string[];

  before(async () => {
    ton = await startLocalTon(join(dir, 'ton'), 0);
    chainArgs = ['--chain-endpoint', ton.endpoint, '--root', ton.root.toString()];
    payments = await TonPayments.connect(ton.chain.client, ton.root, await ton.chain.globalId(), null);
    // A real proxy contract, staked by the proxy's wallet, registered in the root at the client's default proxy.
    await ton.fundNode(proxyDir, toNano('20'));
    const nc = (await openNodeChain({
      dataDir: proxyDir,
      chainEndpoint: ton.endpoint,
      root: ton.root.toString(),
      ledgerDurability: 'process',
    }))!;
    const proxy = await ensureProxyContract(nc, await loadOrCreateNodeKey(proxyDir), undefined, silentLogger);
    await nc.ledger.close();
    proxyContract = proxy.address;
    await ton.registerProxy(proxyContract, '127.0.0.1:11002');
  });

  after(async () => {
    await ton?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const clientContract = async () => {
    const wallet = await ton.fundNode(clientDir, 0n);
    const key = await loadOrCreateNodeKey(clientDir);
    return payments.clientContract(wallet, key.publicKey, proxyContract);
  };

  test('a client: wallet, deposit, balance, withdraw, close (in this order)', async (t) => {
    await t.test(
      'wallet create writes a private wallet file and refuses to overwrite it; wallet show',
      async () => {
        const created = ok(await cocoon('wallet', 'create', '--data-dir', clientDir, ...chainArgs));
        assert.match(created, /^Created wallet .*wallet\.json$/m);
        assert.match(created, /address\s+UQ[\w-]{46}/);
        assert.match(created, /mnemonic\s+24 words in .*wallet\.json/);
        assert.equal(statSync(join(clientDir, 'wallet.json')).mode & 0o777, 0o600);

        const again = failed(await cocoon('wallet', 'create', '--data-dir', clientDir, ...chainArgs), 1);
        assert.match(again, /Refusing to overwrite the existing wallet file/);

        const address = await ton.fundNode(clientDir, toNano('10')); // the same wallet file
        const friendly = address.toString({ bounceable: false, testOnly: payments.globalId !== -239 });
        assert.ok(created.includes(`address   ${friendly}`), created);
        const shown = JSON.parse(
          ok(await cocoon('wallet', 'show', '--data-dir', clientDir, ...chainArgs, '--json')),
        );
        assert.ok(address.equals(Address.parse(shown.address)));
        assert.equal(shown.balance, formatTon(await ton.chain.getBalance(address)));
      },
    );

    await t.test('client deposit: the balance shows exactly the amount deposited', async () => {
      const deposited = ok(await cocoon('client', 'deposit', '3', '--data-dir', clientDir, ...chainArgs));
      assert.match(deposited, /Deposited 3\.000000000 TON into client contract \S+ \(created it\)/);
      assert.match(deposited, /balance\s+3\.000000000 TON/);

      const b = JSON.parse(
        ok(await cocoon('client', 'balance', '--data-dir', clientDir, ...chainArgs, '--json')),
      );
      const contract = await clientContract();
      assert.equal(b.contract, contract.toString());
      assert.equal(b.proxyContract, proxyContract.toString());
      assert.equal(b.proxyEndpoint, '127.0.0.1:11002');
      assert.equal(b.state, 'open');
      assert.equal(b.balance, '3.000000000');
      assert.equal(b.stake, '1.000000000');
      assert.equal(b.withdrawable, '2.000000000');
      assert.equal(b.charged, '0.000000000');
      assert.equal(b.unlockAt, null);
      assert.equal(
        b.wallet.balance,
        formatTon(await ton.chain.getBalance(await ton.fundNode(clientDir, 0n))),
      );
      const onChain = await payments.clientState(contract);
      assert.equal(onChain.balance, toNano('3'));
    });

    await t.test('client withdraw leaving less than the stake is refused and changes nothing', async () => {
      const contract = await clientContract();
      const wallet = await ton.fundNode(clientDir, 0n);
      const walletBefore = await ton.chain.getBalance(wallet);
      const err = failed(await cocoon('client', 'withdraw', '2.5', '--data-dir', clientDir, ...chainArgs), 1);
      assert.match(err, /cannot withdraw 2\.500000000 TON/);
      assert.match(err, /stake of 1\.000000000 TON must stay/);
      assert.match(err, /at most 2\.000000000 TON/);
      assert.equal((await payments.clientState(contract)).balance, toNano('3'));
      assert.equal(await ton.chain.getBalance(wallet), walletBefore, 'nothing was sent, not even gas');
    });

    await t.test('client withdraw of what is above the stake pays it to the wallet', async () => {
      const contract = await clientContract();
      const wallet = await ton.fundNode(clientDir, 0n);
      const walletBefore = await ton.chain.getBalance(wallet);
      const out = ok(await cocoon('client', 'withdraw', '1.5', '--data-dir', clientDir, ...chainArgs));
      assert.match(out, /Withdrew 1\.500000000 TON from client contract/);
      assert.match(out, /balance\s+1\.500000000 TON/);
      assert.equal((await payments.clientState(contract)).balance, toNano('1.5'));
      const gained = (await ton.chain.getBalance(wallet)) - walletBefore;
      assert.ok(gained > toNano('1.4') && gained < toNano('1.5'), `wallet gained ${formatTon(gained)}`);
    });

    await t.test('client close requests closing and says when the final close is possible', async () => {
      const out = ok(await cocoon('client', 'close', '--data-dir', clientDir, ...chainArgs));
      assert.match(out, /Requested closing of client contract \S+ \(request_close\)/);
      assert.match(out, /final close\s+possible from \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in \d+ s\)/);
      const s = await payments.clientState(await clientContract());
      assert.equal(s.state, 1);
      assert.ok(s.unlockAt > Math.floor(Date.now() / 1000));

      const again = failed(await cocoon('client', 'close', '--data-dir', clientDir, ...chainArgs), 1);
      assert.match(again, /already requested; the final close is possible from/);
    });
  });

  test('bad amounts are refused with a clear message and exit code 1', async () => {
    const cases: [string, string, RegExp][] = [
      ['deposit', '1.0000000001', /invalid amount: Too many decimals in "1\.0000000001": TON has 9/],
      ['deposit', '-1', /invalid amount: Negative TON amounts are not allowed: "-1"/],
      ['deposit', 'abc', /invalid amount: Not a TON amount: "abc"/],
    ];
    const results = await Promise.all(
      cases.map(([cmd, amount]) => cocoon('client', cmd, amount, '--data-dir', clientDir, ...chainArgs)),
    );
    for (const [i, [, , msg]] of cases.entries()) assert.match(failed(results[i]!, 1), msg);
  });

  test("proxy show prints the proxy's contract, its stake and its entry in the root", async () => {
    const [json, text] = await Promise.all([
      cocoon('proxy', 'show', '--data-dir', proxyDir, ...chainArgs, '--json'),
      cocoon('proxy', 'show', '--data-dir', proxyDir, ...chainArgs),
    ]);
    const p = JSON.parse(ok(json));
    assert.equal(p.contract, proxyContract.toString());
    assert.equal(p.deployed, true);
    assert.equal(p.state, 'open');
    assert.equal(p.stake, '10.000000000');
    const t = ok(text);
    assert.match(t, new RegExp(`proxy contract ${proxyContract.toString()}`));
    assert.match(t, p.registered ? /registered as #\d+ at / : /not registered: .*cocoon root register-proxy/);
  });

  test('proxy earnings shows the staked proxy contract; worker earnings and payout redeem a signed payout', async () => {
    // A payout the proxy signed for a worker whose contract is not deployed yet, as the worker keeps it.
    const workerWallet = await ton.fundNode(workerDir, toNano('1'));
    const proxyKey = await loadOrCreateNodeKey(proxyDir);
    const contract = payments.workerContract(workerWallet, proxyContract, proxyKey.publicKey);
    const signed = signWorkerPayout(
      {
        globalId: payments.globalId,
        contract,
        seqno: 2n,
        workerTotal: toNano('0.4'),
        proxyTotal: toNano('0.1'),
      },
      proxyKey.privateKey,
    );
    const ledger = Ledger.open(join(workerDir, 'ledger'), 'process');
    await ledger.commit([
      [
        `payout/${contract.toRawString()}`,
        {
          seqno: '2',
          workerTotal: '400000000',
          proxyTotal: '100000000',
          signature: signed.signature.toString('hex'),
        },
      ],
    ]);
    await ledger.close();

    const [proxyOut, earnings] = await Promise.all([
      cocoon('proxy', 'earnings', '--data-dir', proxyDir, ...chainArgs, '--json'),
      cocoon('worker', 'earnings', '--data-dir', workerDir, ...chainArgs),
    ]);
    const p = JSON.parse(ok(proxyOut));
    assert.equal(p.contract, proxyContract.toString());
    assert.equal(p.state, 'open');
    assert.equal(p.stake, '10.000000000');
    assert.equal(p.commission, '0.000000000');
    const e = ok(earnings);
    assert.match(e, new RegExp(`worker contract ${contract.toString()} \\(not deployed yet\\)`));
    assert.match(e, /signed total\s+0\.400000000 TON \(payout seqno 2\)/);
    assert.match(e, /due\s+0\.400000000 TON/);

    // Not deployed: the CLI finds the proxy contract and key among the root's registered proxies.
    const paid = ok(await cocoon('worker', 'payout', '--data-dir', workerDir, ...chainArgs));
    assert.match(paid, /redeemed payout seqno 2, 0\.400000000 TON paid to/);
    assert.equal((await payments.workerPaid(contract)).workerTotal, toNano('0.4'));
  });
});
