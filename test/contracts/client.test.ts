import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, beforeEach, describe, it } from 'node:test';
import { beginCell, toNano } from '@ton/core';
import {
  Blockchain,
  type BlockchainSnapshot,
  type SandboxContract,
  type TreasuryContract,
} from '@ton/sandbox';
import { ClientContract } from '../../src/chain/contracts/client-contract.ts';
import {
  ContractState,
  ExitCode,
  MAX_CLOSE_DELAY,
  Op,
  STORAGE_RESERVE,
} from '../../src/chain/contracts/opcodes.ts';
import { ProxyContract } from '../../src/chain/contracts/proxy-contract.ts';
import { type ClientAuth, GLOBAL_ID, signCell, signClientAuth } from '../../src/pay/signed-messages.ts';
import {
  assertAllSucceeded,
  assertRefused,
  balanceOf,
  contractCodes,
  GAS,
  type Keys,
  newKeys,
  plain,
  receivedBy,
  T0,
  TEST_PARAMS,
  txOf,
} from './helpers.ts';

const CLOSE_DELAY = TEST_PARAMS.clientCloseDelay;
const STAKE = TEST_PARAMS.minClientStake;
const PROXY_STAKE = toNano('10');

describe('client contract', () => {
  let blockchain: Blockchain;
  let owner: SandboxContract<TreasuryContract>;
  let proxyOwner: SandboxContract<TreasuryContract>;
  let submitter: SandboxContract<TreasuryContract>;
  let client: SandboxContract<ClientContract>;
  let proxy: SandboxContract<ProxyContract>;
  let clientKeys: Keys;
  let funded: BlockchainSnapshot;

  const auth = (seqno: bigint, total: bigint, over: Partial<ClientAuth> = {}) =>
    signClientAuth(
      { globalId: GLOBAL_ID.mainnet, contract: client.address, seqno, total, ...over },
      clientKeys.privateKey,
    );
  const data = async () => plain(await client.getClientData());

  before(async () => {
    const codes = await contractCodes();
    blockchain = await Blockchain.create();
    blockchain.now = T0;
    owner = await blockchain.treasury('client-owner');
    proxyOwner = await blockchain.treasury('proxy-owner');
    submitter = await blockchain.treasury('proxy-node');
    clientKeys = newKeys();
    proxy = blockchain.openContract(
      ProxyContract.fromInit(
        {
          owner: proxyOwner.address,
          root: proxyOwner.address,
          proxyKey: newKeys().uint,
          workerCode: codes.worker,
        },
        codes.proxy,
      ),
    );
    assertAllSucceeded(await proxy.sendAddStake(proxyOwner.getSender(), PROXY_STAKE + GAS, PROXY_STAKE));
    assertAllSucceeded(
      await proxy.sendRaiseCloseDelay(proxyOwner.getSender(), GAS, TEST_PARAMS.proxyCloseDelay),
    );
    client = blockchain.openContract(
      ClientContract.fromInit(
        {
          owner: owner.address,
          proxy: proxy.address,
          clientKey: clientKeys.uint,
        },
        codes.client,
      ),
    );
    // The first top-up deploys the contract (stake and close delay 0); the owner then sets its terms.
    const r = await client.sendTopUp(owner.getSender(), toNano('10') + GAS, toNano('10'));
    assertAllSucceeded(r);
    assert.ok(receivedBy(r, owner.address, Op.excesses) > 0n);
    const fresh = await client.getClientData();
    assert.deepEqual([fresh.stake, fresh.closeDelay], [0n, 0]);
    assertAllSucceeded(await client.sendRaiseTerms(owner.getSender(), GAS, STAKE, CLOSE_DELAY));
    funded = blockchain.snapshot();
  });

  beforeEach(async () => {
    await blockchain.loadFrom(funded);
  });

  it('top_up: anyone may add; the contract keeps exactly balance + storage reserve', async () => {
    assert.equal(await balanceOf(blockchain, client.address), toNano('10') + STORAGE_RESERVE);
    assertAllSucceeded(await client.sendTopUp(submitter.getSender(), toNano('2.05'), toNano('2')));
    const d = await client.getClientData();
    assert.equal(d.balance, toNano('12'));
    assert.equal(d.stake, STAKE);
    assert.equal(d.state, ContractState.open);
    assert.equal(await balanceOf(blockchain, client.address), toNano('12') + STORAGE_RESERVE);

    const before = await data();
    const short = await client.sendTopUp(owner.getSender(), toNano('2.049'), toNano('2'));
    assertRefused(short, client.address, ExitCode.notEnoughValue);
    assert.deepEqual(await data(), before);
  });

  it('increase_stake: owner only, must rise', async () => {
    assertRefused(
      await client.sendIncreaseStake(submitter.getSender(), GAS, toNano('2')),
      client.address,
      ExitCode.notAllowed,
    );
    assertRefused(
      await client.sendIncreaseStake(owner.getSender(), GAS, STAKE),
      client.address,
      ExitCode.invalidParams,
    );
    assertAllSucceeded(await client.sendIncreaseStake(owner.getSender(), GAS, toNano('2')));
    assert.equal((await client.getClientData()).stake, toNano('2'));
    assert.equal(await balanceOf(blockchain, client.address), toNano('10') + STORAGE_RESERVE);
  });

  it('raise_terms: owner only, open only, neither stake nor close delay ever falls', async () => {
    const d0 = await client.getClientData();
    assert.deepEqual([d0.stake, d0.closeDelay], [STAKE, CLOSE_DELAY]);
    const before = await data();
    assertRefused(
      await client.sendRaiseTerms(submitter.getSender(), GAS, toNano('2'), CLOSE_DELAY + 1),
      client.address,
      ExitCode.notAllowed,
    );
    assertRefused(
      await client.sendRaiseTerms(owner.getSender(), GAS, STAKE - 1n, CLOSE_DELAY + 1),
      client.address,
      ExitCode.invalidParams,
    );
    assertRefused(
      await client.sendRaiseTerms(owner.getSender(), GAS, toNano('2'), CLOSE_DELAY - 1),
      client.address,
      ExitCode.invalidParams,
    );
    assertRefused(
      await client.sendRaiseTerms(owner.getSender(), GAS, toNano('2'), MAX_CLOSE_DELAY + 1),
      client.address,
      ExitCode.invalidParams,
    );
    assert.deepEqual(await data(), before);
    assertAllSucceeded(await client.sendRaiseTerms(owner.getSender(), GAS, STAKE, CLOSE_DELAY)); // same: a no-op
    assertAllSucceeded(await client.sendRaiseTerms(owner.getSender(), GAS, toNano('2'), 2 * CLOSE_DELAY));
    let d = await client.getClientData();
    assert.deepEqual([d.stake, d.closeDelay, d.balance], [toNano('2'), 2 * CLOSE_DELAY, toNano('10')]);
    assert.equal(await balanceOf(blockchain, client.address), toNano('10') + STORAGE_RESERVE);
    // The raised delay is the one closing waits.
    assertAllSucceeded(await client.sendRequestClose(owner.getSender(), GAS));
    d = await client.getClientData();
    assert.equal(d.unlockAt, T0 + 2 * CLOSE_DELAY);
    assertRefused(
      await client.sendRaiseTerms(owner.getSender(), GAS, toNano('3'), 3 * CLOSE_DELAY),
      client.address,
      ExitCode.wrongState,
    );
  });

  it('withdraw: pays the owner exactly; never below the stake; owner only', async () => {
    const r = await client.sendWithdraw(owner.getSender(), GAS, toNano('3'), 7n);
    assertAllSucceeded(r);
    assert.equal(receivedBy(r, owner.address, Op.clientRefund), toNano('3'));
    assert.equal((await client.getClientData()).balance, toNano('7'));
    assert.equal(await balanceOf(blockchain, client.address), toNano('7') + STORAGE_RESERVE);

    const before = await data();
    assertRefused(
      await client.sendWithdraw(owner.getSender(), GAS, toNano('6') + 1n),
      client.address,
      ExitCode.notEnoughFunds,
    );
    assertRefused(
      await client.sendWithdraw(submitter.getSender(), GAS, 1n),
      client.address,
      ExitCode.notAllowed,
    );
    assertRefused(
      await client.sendWithdraw(owner.getSender(), toNano('0.04'), 1n),
      client.address,
      ExitCode.notEnoughValue,
    );
    assert.deepEqual(await data(), before);
    assertAllSucceeded(await client.sendWithdraw(owner.getSender(), GAS, toNano('6'))); // down to the stake exactly
  });

  it('request_close, then close after the delay refunds the owner exactly', async () => {
    assertRefused(await client.sendClose(owner.getSender(), GAS), client.address, ExitCode.wrongState);
    assertRefused(
      await client.sendRequestClose(submitter.getSender(), GAS),
      client.address,
      ExitCode.notAllowed,
    );
    assertAllSucceeded(await client.sendRequestClose(owner.getSender(), GAS));
    let d = await client.getClientData();
    assert.equal(d.state, ContractState.closing);
    assert.equal(d.unlockAt, T0 + CLOSE_DELAY);
    assertRefused(await client.sendRequestClose(owner.getSender(), GAS), client.address, ExitCode.wrongState);
    assertRefused(
      await client.sendTopUp(owner.getSender(), toNano('1.05'), toNano('1')),
      client.address,
      ExitCode.wrongState,
    );
    assertRefused(await client.sendWithdraw(owner.getSender(), GAS, 1n), client.address, ExitCode.wrongState);

    blockchain.now = T0 + CLOSE_DELAY - 1;
    assertRefused(await client.sendClose(owner.getSender(), GAS), client.address, ExitCode.tooEarly);
    blockchain.now = T0 + CLOSE_DELAY;
    assertRefused(await client.sendClose(submitter.getSender(), GAS), client.address, ExitCode.notAllowed);
    const r = await client.sendClose(owner.getSender(), GAS);
    assertAllSucceeded(r);
    assert.equal(receivedBy(r, owner.address, Op.clientRefund), toNano('10'));
    d = await client.getClientData();
    assert.equal(d.state, ContractState.closed);
    assert.equal(d.balance, 0n);
    assert.equal(await balanceOf(blockchain, client.address), STORAGE_RESERVE);
    assertRefused(await client.sendClose(owner.getSender(), GAS), client.address, ExitCode.wrongState);
    assertRefused(
      await client.sendCharge(submitter.getSender(), GAS, auth(1n, 1n)),
      client.address,
      ExitCode.wrongState,
    );
  });

  it('charge moves exactly the taken amount into the proxy pool', async () => {
    const r = await client.sendCharge(submitter.getSender(), GAS, auth(1n, toNano('2')), 5n);
    assertAllSucceeded(r);
    const gas = txOf(r, { to: client.address, op: Op.clientCharge }).gasUsed;
    assert.ok(gas !== undefined);
    assert.ok(receivedBy(r, submitter.address, Op.excesses) > 0n); // the gas left over goes back

    const d = await client.getClientData();
    assert.deepEqual([d.balance, d.charged, d.seqno], [toNano('8'), toNano('2'), 1n]);
    const p = await proxy.getProxyData();
    assert.deepEqual([p.pool, p.stake], [toNano('2'), PROXY_STAKE]);
    assert.equal(await balanceOf(blockchain, client.address), toNano('8') + STORAGE_RESERVE);
    assert.equal(await balanceOf(blockchain, proxy.address), toNano('12') + STORAGE_RESERVE);

    // Cumulative: the next authorisation takes only the difference. Charging works while closing too.
    assertAllSucceeded(await client.sendRequestClose(owner.getSender(), GAS));
    assertAllSucceeded(await client.sendCharge(submitter.getSender(), GAS, auth(5n, toNano('2.5'))));
    assert.equal((await client.getClientData()).balance, toNano('7.5'));
    assert.equal((await proxy.getProxyData()).pool, toNano('2.5'));
  });

  it('charge refusals leave the state unchanged', async () => {
    assertAllSucceeded(await client.sendCharge(submitter.getSender(), GAS, auth(3n, toNano('1'))));
    const before = await data();
    const poolBefore = (await proxy.getProxyData()).pool;
    const s = submitter.getSender();
    const refused = async (signed: { cell: import('@ton/core').Cell; signature: Buffer }, code: number) =>
      assertRefused(await client.sendCharge(s, GAS, signed), client.address, code);

    const good = auth(4n, toNano('2'));
    await refused({ ...good, signature: randomBytes(64) }, ExitCode.badSignature);
    await refused({ ...good, signature: signCell(good.cell, newKeys().privateKey) }, ExitCode.badSignature);
    await refused(auth(4n, toNano('2'), { contract: proxy.address }), ExitCode.wrongContract);
    await refused(auth(4n, toNano('2'), { globalId: GLOBAL_ID.testnet }), ExitCode.wrongTagOrNetwork);
    const wrongTag = beginCell()
      .storeUint(0x77706179, 32) // a worker payout's tag
      .storeInt(GLOBAL_ID.mainnet, 32)
      .storeAddress(client.address)
      .storeUint(4n, 64)
      .storeCoins(toNano('2'))
      .endCell();
    await refused(
      { cell: wrongTag, signature: signCell(wrongTag, clientKeys.privateKey) },
      ExitCode.wrongTagOrNetwork,
    );
    await refused(auth(3n, toNano('1')), ExitCode.totalNotAbovePaid); // a replay of what was charged
    await refused(auth(2n, toNano('0.5')), ExitCode.totalNotAbovePaid); // an older one
    await refused(auth(4n, toNano('1')), ExitCode.totalNotAbovePaid);
    await refused(auth(4n, toNano('0.5')), ExitCode.totalNotAbovePaid);
    assertRefused(await client.sendCharge(s, toNano('0.049'), good), client.address, ExitCode.notEnoughValue);

    assert.deepEqual(await data(), before);
    assert.equal((await proxy.getProxyData()).pool, poolBefore);
    assertAllSucceeded(await client.sendCharge(s, GAS, good)); // the untouched message still works
  });

  it('a replayed charge (same message) is refused', async () => {
    const signed = auth(1n, toNano('1'));
    assertAllSucceeded(await client.sendCharge(submitter.getSender(), GAS, signed));
    const before = await data();
    assertRefused(
      await client.sendCharge(submitter.getSender(), GAS, signed),
      client.address,
      ExitCode.totalNotAbovePaid,
    );
    assert.deepEqual(await data(), before);
  });

  it('authorisations are ordered by their total, not their seqno (the seqno is recorded as the highest)', async () => {
    assertAllSucceeded(await client.sendCharge(submitter.getSender(), GAS, auth(7n, toNano('1'))));
    // a lower seqno with a higher total: the client signed it, so it is redeemable for the difference
    assertAllSucceeded(await client.sendCharge(submitter.getSender(), GAS, auth(3n, toNano('1.5'))));
    const d = await client.getClientData();
    assert.deepEqual([d.charged, d.balance, d.seqno], [toNano('1.5'), toNano('8.5'), 7n]);
    assert.equal((await proxy.getProxyData()).pool, toNano('1.5'));
  });

  it('charge is capped at the balance, never below zero', async () => {
    const r = await client.sendCharge(submitter.getSender(), GAS, auth(1n, toNano('15')));
    assertAllSucceeded(r);
    const d = await client.getClientData();
    assert.deepEqual([d.balance, d.charged], [0n, toNano('10')]);
    assert.equal((await proxy.getProxyData()).pool, toNano('10'));
    assert.equal(await balanceOf(blockchain, client.address), STORAGE_RESERVE);
    // After a top-up, a newer authorisation of the same total takes the rest.
    assertAllSucceeded(await client.sendTopUp(owner.getSender(), toNano('10') + GAS, toNano('10')));
    assertAllSucceeded(await client.sendCharge(submitter.getSender(), GAS, auth(2n, toNano('15'))));
    assert.deepEqual((await client.getClientData()).balance, toNano('5'));
    assert.equal((await proxy.getProxyData()).pool, toNano('15'));
  });

  it('charge_proceeds refused by a closed proxy contract is rolled back', async () => {
    assertAllSucceeded(await proxy.sendRequestClose(proxyOwner.getSender(), GAS));
    blockchain.now = T0 + TEST_PARAMS.proxyCloseDelay;
    assertAllSucceeded(await proxy.sendClose(proxyOwner.getSender(), GAS));

    const r = await client.sendCharge(submitter.getSender(), GAS, auth(1n, toNano('2')));
    assertRefused(r, proxy.address, ExitCode.wrongState);
    const bounce = txOf(r, { to: client.address, bounced: true });
    assert.equal(bounce.aborted, false);
    assert.ok(receivedBy(r, submitter.address, Op.excesses) > 0n); // the gas left over still goes back
    const d = await client.getClientData();
    assert.deepEqual([d.balance, d.charged, d.seqno], [toNano('10'), 0n, 1n]);
    assert.equal(await balanceOf(blockchain, client.address), toNano('10') + STORAGE_RESERVE);
  });
});
