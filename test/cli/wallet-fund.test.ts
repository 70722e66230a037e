import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Address, beginCell } from '@ton/core';
import { LocalChain } from '../../src/chain/local-chain.ts';
import { type LocalChainServer, startLocalChainServer } from '../../src/chain/local-chain-server.ts';
import { formatTon } from '../../src/chain/money.ts';
import { GLOBAL_IDS } from '../../src/chain/ton-chain.ts';
import { loadWalletFile, walletFromMnemonic } from '../../src/chain/wallet.ts';
import { cocoon, failed, ok } from './run-cocoon.ts';

/**
 * A toncenter look-alike that is not the local chain: no /cocoon/info, no faucet; answers only
 * getConfigParam 19 with `globalId` (or nothing at all when it is null). Records every request.
 */
async function notLocalChain(
  globalId: number | null,
): Promise<{ url: string; seen: string[]; server: Server }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d.toString();
    });
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}`);
      const rpc = req.url === '/jsonRPC' && body ? (JSON.parse(body) as { method?: string }) : null;
      res.setHeader('content-type', 'application/json');
      if (globalId !== null && rpc?.method === 'getConfigParam') {
        const bytes = beginCell().storeInt(globalId, 32).endCell().toBoc().toString('base64');
        res.end(JSON.stringify({ ok: true, result: { '@type': 'configInfo', config: { bytes } } }));
        return;
      }
      res.statusCode = 404;
      res.end(JSON.stringify({ ok: false, error: 'Not Found', code: 404 }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

describe('cocoon wallet fund', { concurrency: true }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-wallet-fund-'));
  const walletDir = join(dir, 'node');
  let chain: LocalChain;
  let server: LocalChainServer;
  let address: Address;
  let words: string[];
  const fakes: Server[] = [];

  before(async () => {
    chain = await LocalChain.open();
    server = await startLocalChainServer({ chain });
    ok(await cocoon('wallet', 'create', '--data-dir', walletDir, '--chain-endpoint', server.url));
    words = await loadWalletFile(join(walletDir, 'wallet.json'));
    address = (await walletFromMnemonic(words, chain.globalId)).address;
  });

  after(async () => {
    for (const f of fakes) f.close();
    await server?.close();
    await chain?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('on the local chain it mints into the wallet and prints the new balance (text and --json)', async () => {
    const text = ok(
      await cocoon('wallet', 'fund', '3', '--data-dir', walletDir, '--chain-endpoint', server.url),
    );
    assert.match(
      text,
      /^Funded wallet .*wallet\.json with 3\.000000000 TON from the local chain's faucet \(dev only\)$/m,
    );
    assert.match(text, /balance\s+3\.000000000 TON \(funded, not deployed yet\)/);
    assert.ok(
      text.includes(address.toString({ bounceable: false, testOnly: chain.globalId !== -239 })),
      text,
    );

    const r = JSON.parse(
      ok(
        await cocoon(
          'wallet',
          'fund',
          '1.5',
          '--data-dir',
          walletDir,
          '--chain-endpoint',
          server.url,
          '--json',
        ),
      ),
    );
    assert.ok(Address.parse(r.address).equals(address));
    assert.equal(r.funded, '1.500000000');
    const balance = (await chain.getAccount(address)).balance;
    assert.equal(r.balance, formatTon(balance));
    assert.ok(balance > 4_499_000_000n && balance <= 4_500_000_000n, formatTon(balance));
    assert.equal(r.status, 'funded, not deployed yet');
  });

  test('a missing wallet is created, funded, and the output says so (text and --json)', async () => {
    const fresh = join(dir, 'fresh');
    const jsonDir = join(dir, 'fresh-json');
    const endpoint = ['--chain-endpoint', server.url];
    const [t, j] = await Promise.all([
      cocoon('wallet', 'fund', '2', '--data-dir', fresh, ...endpoint),
      cocoon('wallet', 'fund', '2', '--data-dir', jsonDir, ...endpoint, '--json'),
    ]);
    const text = ok(t!);
    assert.match(text, /^Created wallet .*fresh\/wallet\.json \(there was none\): 24 new words/m);
    assert.match(text, /^Funded wallet .*fresh\/wallet\.json with 2\.000000000 TON/m);
    const made = (await walletFromMnemonic(await loadWalletFile(join(fresh, 'wallet.json')), chain.globalId))
      .address;
    assert.equal((await chain.getAccount(made)).balance, 2_000_000_000n);
    assert.ok(text.includes(made.toString({ bounceable: false, testOnly: chain.globalId !== -239 })), text);

    const r = JSON.parse(ok(j!));
    assert.equal(r.created, true);
    assert.equal(r.funded, '2.000000000');
    const madeJson = (
      await walletFromMnemonic(await loadWalletFile(join(jsonDir, 'wallet.json')), chain.globalId)
    ).address;
    assert.ok(Address.parse(r.address).equals(madeJson));
    assert.equal(r.balance, '2.000000000');

    // The second time the wallet exists: funded again, not created again.
    const again = JSON.parse(
      ok(await cocoon('wallet', 'fund', '1', '--data-dir', fresh, ...endpoint, '--json')),
    );
    assert.equal(again.created, false);
    assert.ok(Address.parse(again.address).equals(made));
    // (less a nanoton or so of storage fee while the chain's clock runs)
    const balance = (await chain.getAccount(made)).balance;
    assert.equal(again.balance, formatTon(balance));
    assert.ok(balance > 2_999_000_000n && balance <= 3_000_000_000n, formatTon(balance));
  });

  test('a bad amount or the faucet cap are one-line errors', async () => {
    const endpoint = ['--chain-endpoint', server.url];
    const [zero, bad, tooMuch, noDir] = await Promise.all([
      cocoon('wallet', 'fund', '0', '--data-dir', walletDir, ...endpoint),
      cocoon('wallet', 'fund', '1.0000000001', '--data-dir', walletDir, ...endpoint),
      cocoon('wallet', 'fund', '2000000', '--data-dir', walletDir, ...endpoint),
      cocoon('wallet', 'fund', '1', ...endpoint),
    ]);
    assert.match(failed(zero!, 1), /invalid amount: "0" is zero/);
    assert.match(failed(bad!, 1), /invalid amount: Too many decimals/);
    assert.match(
      failed(tooMuch!, 1),
      /the local chain's faucet did not pay 2000000\.000000000 TON: .*capped/,
    );
    assert.match(
      failed(noDir!, 2),
      /say which wallet: --role client\|proxy\|worker\|governance or --data-dir/,
    );
  });

  test('on a chain that is not local (testnet-like) it is refused with how to fund the wallet there', async () => {
    const fake = await notLocalChain(GLOBAL_IDS.testnet);
    fakes.push(fake.server);
    const r = await cocoon('wallet', 'fund', '5', '--data-dir', walletDir, '--chain-endpoint', fake.url);
    const msg = failed(r, 1);
    const testnet = (await walletFromMnemonic(words, GLOBAL_IDS.testnet)).address;
    assert.match(msg, new RegExp(`${fake.url} is not a local dev chain \\(it has no /cocoon/info\\)`));
    assert.match(msg, /only mints TON on the chain of `cocoon chain` or `cocoon local`/);
    assert.match(msg, /@testgiver_ton_bot/);
    assert.ok(msg.includes(testnet.toString({ bounceable: false, testOnly: true })), msg);
    assert.ok(!fake.seen.some((s) => s.includes('faucet')), `no faucet request: ${fake.seen.join(', ')}`);

    // No wallet there: refused all the same, and nothing is created on a chain that is not local.
    const none = join(dir, 'none');
    const m = failed(
      await cocoon('wallet', 'fund', '5', '--data-dir', none, '--chain-endpoint', fake.url),
      1,
    );
    assert.match(m, /is not a local dev chain/);
    assert.match(
      m,
      /There is no wallet in .*none either \(nothing created\): create one with cocoon wallet create/,
    );
    assert.match(m, /@testgiver_ton_bot/);
    assert.equal(existsSync(none), false, 'no wallet is created off the local chain');
  });

  test('on mainnet it says to transfer TON; on an API that says nothing it names both networks', async () => {
    const [mainnet, silent] = await Promise.all([notLocalChain(GLOBAL_IDS.mainnet), notLocalChain(null)]);
    fakes.push(mainnet.server, silent.server);
    const [m, s] = await Promise.all([
      cocoon('wallet', 'fund', '5', '--data-dir', walletDir, '--chain-endpoint', mainnet.url),
      cocoon('wallet', 'fund', '5', '--data-dir', walletDir, '--chain-endpoint', silent.url),
    ]);
    const onMainnet = (await walletFromMnemonic(words, GLOBAL_IDS.mainnet)).address.toString({
      bounceable: false,
    });
    const onTestnet = (await walletFromMnemonic(words, GLOBAL_IDS.testnet)).address.toString({
      bounceable: false,
      testOnly: true,
    });
    const mm = failed(m!, 1);
    assert.match(mm, /is not a local dev chain/);
    assert.ok(mm.includes(`On mainnet, transfer TON to the wallet's address ${onMainnet}`), mm);
    assert.doesNotMatch(mm, /testgiver/);
    const sm = failed(s!, 1);
    assert.ok(sm.includes(onTestnet) && sm.includes(onMainnet), sm);
    for (const f of [mainnet, silent]) assert.ok(!f.seen.some((x) => x.includes('faucet')));
  });

  test('an endpoint nobody answers is "cannot reach", not "not local"', async () => {
    const r = await cocoon(
      'wallet',
      'fund',
      '5',
      '--data-dir',
      walletDir,
      '--chain-endpoint',
      'http://127.0.0.1:1',
    );
    assert.match(failed(r, 1), /cannot reach the TON API at http:\/\/127\.0\.0\.1:1/);
  });
});
