import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Address, beginCell, external, internal, SendMode, storeMessage, type Transaction } from '@ton/core';
import { mnemonicNew } from '@ton/crypto';
import { LocalChain } from '../../src/chain/local-chain.ts';
import { type LocalChainServer, startLocalChainServer } from '../../src/chain/local-chain-server.ts';
import { TonChain } from '../../src/chain/ton-chain.ts';
import { type Wallet, WalletSender, walletFromMnemonic } from '../../src/chain/wallet.ts';

const TON = 1_000_000_000n;
const run = promisify(execFile);

/** What a transaction took from its account besides the value it sent: fees plus outgoing forward fees. */
function spent(tx: Transaction): bigint {
  let out = 0n;
  for (const m of tx.outMessages.values()) {
    if (m.info.type === 'internal') out += m.info.value.coins + m.info.forwardFee + m.info.ihrFee;
  }
  return tx.totalFees.coins + out;
}

async function rpc(url: string, body: unknown, method = 'POST') {
  const res = await fetch(`${url}/jsonRPC`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: method === 'POST' ? (typeof body === 'string' ? body : JSON.stringify(body)) : undefined,
  });
  return { status: res.status, body: (await res.json()) as { ok: boolean; error?: string; code?: number } };
}

function signedTransfer(from: Wallet, seqno: number, secretKey: Buffer, to: Address, value: bigint): Buffer {
  const body = from.contract.createTransfer({
    seqno,
    secretKey,
    messages: [internal({ to, value, bounce: false })],
    sendMode: SendMode.PAY_GAS_SEPARATELY + SendMode.IGNORE_ERRORS,
  });
  return beginCell()
    .store(storeMessage(external({ to: from.address, body })))
    .endCell()
    .toBoc();
}

describe('local chain behind the toncenter API, driven by TonClient', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocoon-chain-'));
  const stateFile = join(dir, 'chain.json');
  let now = 1_700_000_000;
  const clock = () => now;
  let chain: LocalChain;
  let server: LocalChainServer;
  let ton: TonChain;
  let alice: Wallet;
  let bob: Wallet;
  let aliceSender: WalletSender;

  before(async () => {
    chain = await LocalChain.open({ stateFile, clock });
    server = await startLocalChainServer({ chain });
    ton = TonChain.connect({ endpoint: server.url, network: 'local' });
    alice = await walletFromMnemonic(await mnemonicNew(24), chain.globalId);
    bob = await walletFromMnemonic(await mnemonicNew(24), chain.globalId);
    aliceSender = new WalletSender(ton.client, alice, { pollIntervalMs: 10, timeoutMs: 5000, now: clock });
  });

  after(async () => {
    await server?.close();
    await chain?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('reports its global id and pinned time', async () => {
    assert.equal(chain.globalId, -239);
    assert.equal(await ton.globalId(), -239);
    const info = await ton.localInfo();
    assert.equal(info.now, now);
    assert.match(info.label, /dev only, not a real network/);
    const mc = await ton.client.getMasterchainInfo();
    assert.equal(mc.latestSeqno, chain.seqno);
  });

  test('faucet funds a V5 wallet, which pays a second address; balances are exact', async () => {
    const { balance } = await ton.localFaucet(alice.address, 10n * TON);
    const [funding] = await ton.client.getTransactions(alice.address, { limit: 1 });
    assert.ok(funding);
    assert.equal(funding.now, now, 'transactions carry the pinned chain time');
    assert.equal(balance, 10n * TON - funding.totalFees.coins);
    assert.equal(await ton.getBalance(alice.address), balance);
    assert.equal(await ton.isDeployed(alice.address), false);

    now += 10;
    const before = await ton.getBalance(alice.address);
    const result = await aliceSender.send([{ to: bob.address, value: 3n * TON, bounce: false }]);
    assert.equal(result.seqno, 0);
    assert.ok(result.transaction, 'the transfer transaction is found in history');
    const tx = result.transaction;
    assert.equal(tx.now, now);
    assert.ok(tx.totalFees.coins > 0n && tx.totalFees.coins < TON / 20n, 'fees are plausible');

    assert.equal(await ton.isDeployed(alice.address), true);
    assert.equal(await ton.getBalance(alice.address), before - spent(tx), 'payer: value + fees, exactly');
    const [received] = await ton.client.getTransactions(bob.address, { limit: 5 });
    assert.ok(received);
    assert.equal(await ton.getBalance(bob.address), 3n * TON - received.totalFees.coins, 'payee: exact');
    assert.equal(await ton.open(alice.contract).getSeqno(), 1);
  });

  test('concurrent sends of one wallet are serialized', async () => {
    const bobBefore = await ton.getBalance(bob.address);
    const [a, b] = await Promise.all([
      aliceSender.send([{ to: bob.address, value: TON / 10n, bounce: false }]),
      aliceSender.send([
        { to: bob.address, value: TON / 10n, bounce: false },
        { to: bob.address, value: TON / 10n, bounce: false },
      ]),
    ]);
    assert.deepEqual([a.seqno, b.seqno], [1, 2]);
    assert.equal(await aliceSender.seqno(), 3);
    const got = await ton.client.getTransactions(bob.address, { limit: 3 });
    const fees = got.reduce((s, t) => s + t.totalFees.coins, 0n);
    assert.equal(await ton.getBalance(bob.address), bobBefore + (3n * TON) / 10n - fees);
  });

  test('get methods run through TonClient with toncenter stack encoding', async () => {
    const pk = await ton.client.runMethod(alice.address, 'get_public_key');
    assert.equal(
      pk.stack.readBigNumber().toString(16).padStart(64, '0'),
      alice.keyPair.publicKey.toString('hex'),
    );
    // extra arguments stay on the stack under the result: a round trip of every argument type
    const cell = beginCell().storeUint(42, 8).endCell();
    const r = await ton.client.runMethod(alice.address, 'seqno', [
      { type: 'int', value: -5n },
      { type: 'cell', cell },
      { type: 'slice', cell },
    ]);
    assert.equal(r.stack.readBigNumber(), -5n);
    assert.ok(r.stack.readCell().equals(cell));
    assert.ok(r.stack.readCell().equals(cell));
    assert.equal(r.stack.readNumber(), 3);
    // null comes back as toncenter's empty list, which TonClient reads as null
    assert.equal(await ton.open(alice.contract).getExtensions(), null);
    // a contract that is not deployed: exit code -13, as toncenter reports it
    const none = await ton.client.runMethodWithError(Address.parse(`0:${'11'.repeat(32)}`), 'seqno');
    assert.equal(none.exit_code, -13);
    // a method that does not exist: its exit code, not a transport error
    const missing = await ton.client.runMethodWithError(alice.address, 'no_such_method');
    assert.equal(missing.exit_code, 11);
  });

  test('getTransactions pages by lt/hash like toncenter', async () => {
    const all = await ton.client.getTransactions(alice.address, { limit: 10 });
    assert.equal(all.length, 4, 'funding + three transfers');
    const [newest] = all;
    const older = await ton.client.getTransactions(alice.address, {
      limit: 2,
      lt: newest!.lt.toString(),
      hash: newest!.hash().toString('base64'),
    });
    assert.deepEqual(
      older.map((t) => t.lt),
      all.slice(1, 3).map((t) => t.lt),
    );
    const one = await ton.client.getTransaction(
      alice.address,
      newest!.lt.toString(),
      newest!.hash().toString('base64'),
    );
    assert.ok(one?.hash().equals(newest!.hash()));
  });

  test('estimateFee emulates without changing anything', async () => {
    const seqno = chain.seqno;
    const body = alice.contract.createTransfer({
      seqno: 3,
      secretKey: alice.keyPair.secretKey,
      messages: [internal({ to: bob.address, value: TON, bounce: false })],
      sendMode: SendMode.PAY_GAS_SEPARATELY + SendMode.IGNORE_ERRORS,
    });
    const fees = await ton.client.estimateExternalMessageFee(alice.address, {
      body,
      initCode: null,
      initData: null,
      ignoreSignature: true,
    });
    assert.ok(fees.source_fees.gas_fee > 0);
    assert.ok(fees.source_fees.fwd_fee > 0);
    assert.equal(chain.seqno, seqno);
    assert.equal(await aliceSender.seqno(), 3);
  });

  test('a message the wallet rejects is refused and leaves no trace', async () => {
    const seqno = chain.seqno;
    const balance = await ton.getBalance(alice.address);
    const forged = signedTransfer(alice, 3, bob.keyPair.secretKey, bob.address, TON);
    const res = await rpc(server.url, {
      id: 1,
      method: 'sendBoc',
      params: { boc: forged.toString('base64') },
    });
    assert.equal(res.status, 500);
    assert.equal(res.body.ok, false);
    assert.match(res.body.error ?? '', /cannot apply external message/);
    // TonClient (axios) rejects on the HTTP status, as it does with toncenter
    await assert.rejects(ton.client.sendFile(forged), /status code 500/);
    assert.equal(chain.seqno, seqno);
    assert.equal(await ton.getBalance(alice.address), balance);
    assert.equal(await aliceSender.seqno(), 3);
  });

  test('sending more than the balance is refused before signing', async () => {
    await assert.rejects(
      aliceSender.send([{ to: bob.address, value: 1_000_000n * TON }]),
      (err: Error & { code?: string }) =>
        err.code === 'insufficient_funds' && /holds \d+\.\d{9} TON/.test(err.message),
    );
  });

  test('bad requests get toncenter-style errors', async () => {
    const cases: [unknown, number, RegExp][] = [
      ['{not json', 400, /not valid JSON/],
      [[1, 2], 422, /Validation error/],
      [{ id: 1, method: 'noSuchMethod', params: {} }, 422, /Unknown method/],
      [{ id: 1, method: 'getAddressInformation', params: {} }, 422, /missing required argument 'address'/],
      [{ id: 1, method: 'getAddressInformation', params: { address: 'garbage' } }, 416, /Incorrect address/],
      [
        { id: 1, method: 'getTransactions', params: { address: alice.address.toString(), lt: 'x' } },
        422,
        /integer/,
      ],
      [
        {
          id: 1,
          method: 'runGetMethod',
          params: { address: alice.address.toString(), method: 'seqno', stack: [['tvm.Nope', 1]] },
        },
        422,
        /unsupported stack entry/,
      ],
      [{ id: 1, method: 'sendBoc', params: { boc: 'AAAA' } }, 422, /Cannot parse BOC/],
    ];
    for (const [body, status, message] of cases) {
      const res = await rpc(server.url, body);
      assert.equal(res.status, status, JSON.stringify(body));
      assert.equal(res.body.ok, false);
      assert.equal(res.body.code, status);
      assert.match(res.body.error ?? '', message);
    }
    assert.equal((await rpc(server.url, null, 'GET')).status, 405);
    const notFound = await fetch(`${server.url}/nope`);
    assert.equal(notFound.status, 404);
    const faucet = await fetch(`${server.url}/cocoon/faucet`, {
      method: 'POST',
      body: JSON.stringify({ address: bob.address.toString(), amount: '1.5' }),
    });
    assert.equal(faucet.status, 400);
    assert.match(((await faucet.json()) as { error: string }).error, /decimal string of nanoton/);
  });

  test('the state file is small, locked, and a restart keeps balances and seqno', async () => {
    const size = statSync(stateFile).size;
    assert.ok(size < 16 * 1024, `state file is ${size} bytes`);
    const saved = JSON.parse(readFileSync(stateFile, 'utf8'));
    assert.deepEqual(saved.snapshot.transactions, []);
    assert.equal(statSync(stateFile).mode & 0o777, 0o600);
    await assert.rejects(LocalChain.open({ stateFile, clock }), /in use by process/);

    const balances = [await ton.getBalance(alice.address), await ton.getBalance(bob.address)];
    const blockSeqno = chain.seqno;
    await server.close();
    await chain.close();

    now += 60;
    chain = await LocalChain.open({ stateFile, clock });
    server = await startLocalChainServer({ chain });
    ton = TonChain.connect({ endpoint: server.url, network: 'local' });
    assert.equal(chain.seqno, blockSeqno);
    assert.deepEqual([await ton.getBalance(alice.address), await ton.getBalance(bob.address)], balances);
    const sender = new WalletSender(ton.client, alice, { pollIntervalMs: 10, timeoutMs: 5000, now: clock });
    assert.equal(await sender.seqno(), 3);
    const r = await sender.send([{ to: bob.address, value: TON, bounce: false }]);
    assert.equal(r.seqno, 3);
    assert.equal(r.transaction?.now, now);
  });

  test('a transfer the chain applies but cannot pay out is reported as failed', async () => {
    const sender = new WalletSender(ton.client, alice, { pollIntervalMs: 10, timeoutMs: 5000, now: clock });
    const balance = await ton.getBalance(alice.address);
    // passes the balance check, but value + fees exceed what is left after gas: the action is skipped
    await assert.rejects(
      sender.send([{ to: bob.address, value: balance, bounce: false }]),
      (err: Error & { code?: string }) =>
        err.code === 'transfer_failed' && /0 of 1 messages were sent/.test(err.message),
    );
    assert.equal(await sender.seqno(), 5, 'the wallet still used its seqno');
  });

  test('waitFor polls until a value shows up, or times out clearly', async () => {
    const target = Address.parse(`0:${'33'.repeat(32)}`);
    const pending = ton.waitFor(async () => (await ton.getBalance(target)) || null, 5000, { what: 'funds' });
    setTimeout(() => void ton.localFaucet(target, TON), 50);
    assert.equal(await pending, TON);
    await assert.rejects(
      ton.waitFor(() => false, 150, { what: 'a miracle' }),
      /Timed out after 150 ms waiting for a miracle/,
    );
  });

  test('an acknowledged transaction survives kill -9', async () => {
    const file = join(dir, 'killed.json');
    const target = `0:${'22'.repeat(32)}`;
    const script = `
      import { Address } from '@ton/core';
      import { LocalChain } from ${JSON.stringify(join(import.meta.dirname, '../../src/chain/local-chain.ts'))};
      const chain = await LocalChain.open({ stateFile: ${JSON.stringify(file)} });
      await chain.faucet(Address.parse(${JSON.stringify(target)}), 7000000000n);
      process.kill(process.pid, 'SIGKILL');
    `;
    await assert.rejects(
      run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: join(import.meta.dirname, '../..'),
        timeout: 20_000,
      }),
      (err: { signal?: string }) => err.signal === 'SIGKILL',
    );
    // the dead process left its lock behind; it is taken over
    const reopened = await LocalChain.open({ stateFile: file });
    try {
      assert.equal((await reopened.getAccount(Address.parse(target))).balance, 7n * TON);
    } finally {
      await reopened.close();
    }
  });
});
