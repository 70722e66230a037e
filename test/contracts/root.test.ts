import assert from 'node:assert/strict';
import { before, beforeEach, describe, it } from 'node:test';
import { beginCell } from '@ton/core';
import {
  Blockchain,
  type BlockchainSnapshot,
  type SandboxContract,
  type TreasuryContract,
} from '@ton/sandbox';
import { ExitCode, HashKind, Op, STORAGE_RESERVE } from '../../src/chain/contracts/opcodes.ts';
import { RootContract } from '../../src/chain/contracts/root-contract.ts';
import {
  assertAllSucceeded,
  assertRefused,
  balanceOf,
  contractCodes,
  GAS,
  plain,
  receivedBy,
  T0,
  TEST_PARAMS,
} from './helpers.ts';

describe('root contract', () => {
  let blockchain: Blockchain;
  let owner: SandboxContract<TreasuryContract>;
  let stranger: SandboxContract<TreasuryContract>;
  let root: SandboxContract<RootContract>;
  let deployed: BlockchainSnapshot;

  before(async () => {
    const codes = await contractCodes();
    blockchain = await Blockchain.create();
    blockchain.now = T0;
    owner = await blockchain.treasury('root-owner');
    stranger = await blockchain.treasury('stranger');
    root = blockchain.openContract(
      RootContract.fromInit({ owner: owner.address, params: TEST_PARAMS }, codes.root),
    );
    // Any owner operation deploys it; this one also bumps the params.
    const r = await root.sendSetParams(owner.getSender(), GAS, { ...TEST_PARAMS, paramsVersion: 2 });
    assertAllSucceeded(r);
    deployed = blockchain.snapshot();
  });

  beforeEach(async () => {
    await blockchain.loadFrom(deployed);
  });

  it('keeps only the storage reserve and returns the rest as excesses', async () => {
    const r = await root.sendAddHash(owner.getSender(), GAS, HashKind.model, 7n, 42n);
    assertAllSucceeded(r);
    assert.ok(receivedBy(r, owner.address, Op.excesses) > 0n);
    assert.equal(await balanceOf(blockchain, root.address), STORAGE_RESERVE);
    assert.equal((await root.getRootData()).version, 2);
  });

  it('set_params: stores a rising version, refuses a version that does not rise and invalid values', async () => {
    const next = { ...TEST_PARAMS, paramsVersion: 3, pricePerToken: 2000n };
    assertAllSucceeded(await root.sendSetParams(owner.getSender(), GAS, next));
    assert.deepEqual(await root.getParams(), next);
    assert.deepEqual((await root.getRootData()).params, next);

    for (const bad of [
      { ...next }, // same version
      { ...next, paramsVersion: 2 },
      { ...next, paramsVersion: 4, workerFeePerToken: 2001n },
      { ...next, paramsVersion: 4, promptMult: 1_000_001 },
      { ...next, paramsVersion: 4, cachedMult: 1_000_001 },
      { ...next, paramsVersion: 4, completionMult: 1_000_001 },
      { ...next, paramsVersion: 4, reasoningMult: 1_000_001 },
    ]) {
      assertRefused(
        await root.sendSetParams(owner.getSender(), GAS, bad),
        root.address,
        ExitCode.invalidParams,
      );
    }
    assert.deepEqual(await root.getParams(), next);
  });

  it('refuses every operation from anyone but the owner, and unknown ops', async () => {
    const before = plain(await root.getRootData());
    const s = stranger.getSender();
    assertRefused(
      await root.sendSetParams(s, GAS, { ...TEST_PARAMS, paramsVersion: 9 }),
      root.address,
      ExitCode.notAllowed,
    );
    assertRefused(await root.sendAddHash(s, GAS, HashKind.proxy, 1n), root.address, ExitCode.notAllowed);
    assertRefused(await root.sendRegisterProxy(s, GAS, s.address!, 'x:1'), root.address, ExitCode.notAllowed);
    assertRefused(await root.sendChangeOwner(s, GAS, s.address!), root.address, ExitCode.notAllowed);
    const unknown = beginCell().storeUint(0x12345678, 32).storeUint(0, 64).endCell();
    assertRefused(await root.sendBody(owner.getSender(), GAS, unknown), root.address, ExitCode.unknownOp);
    assert.deepEqual(plain(await root.getRootData()), before);
  });

  for (const [name, kind] of Object.entries(HashKind)) {
    it(`adds and deletes ${name} hashes`, async () => {
      const hash = 0xabcdefn << 200n;
      assert.equal(await root.getIsAllowed(kind, hash), false);
      assertAllSucceeded(await root.sendAddHash(owner.getSender(), GAS, kind, hash));
      assert.equal(await root.getIsAllowed(kind, hash), true);
      for (const other of [0, 1, 2, 3].filter((k) => k !== kind) as HashKind[]) {
        assert.equal(await root.getIsAllowed(other, hash), false);
      }
      const data = await root.getRootData();
      const lists = { proxy: data.proxyHashes, worker: data.workerHashes, model: data.modelHashes };
      assert.deepEqual(lists[name as keyof typeof lists], [hash]);

      assertAllSucceeded(await root.sendDelHash(owner.getSender(), GAS, kind, hash));
      assert.equal(await root.getIsAllowed(kind, hash), false);
      assertRefused(
        await root.sendDelHash(owner.getSender(), GAS, kind, hash),
        root.address,
        ExitCode.noSuchEntry,
      );
    });
  }

  it('registers, updates and unregisters proxies', async () => {
    const o = owner.getSender();
    assertAllSucceeded(await root.sendRegisterProxy(o, GAS, stranger.address, 'proxy-a.example:8443'));
    assertAllSucceeded(await root.sendRegisterProxy(o, GAS, owner.address, 'proxy-b.example:8443'));
    let data = await root.getRootData();
    assert.equal(data.lastProxySeqno, 2);
    assert.deepEqual(
      data.proxies.map((p) => [p.seqno, p.address.toString(), p.endpoint]),
      [
        [1, stranger.address.toString(), 'proxy-a.example:8443'],
        [2, owner.address.toString(), 'proxy-b.example:8443'],
      ],
    );

    const longEndpoint = `${'h'.repeat(200)}.example:443`; // spans several snake cells
    assertAllSucceeded(await root.sendUpdateProxy(o, GAS, 1, owner.address, longEndpoint));
    assertRefused(
      await root.sendUpdateProxy(o, GAS, 3, owner.address, 'x:1'),
      root.address,
      ExitCode.noSuchEntry,
    );
    assertAllSucceeded(await root.sendUnregisterProxy(o, GAS, 2));
    assertRefused(await root.sendUnregisterProxy(o, GAS, 2), root.address, ExitCode.noSuchEntry);

    data = await root.getRootData();
    assert.equal(data.lastProxySeqno, 2); // seqnos are never reused
    assert.deepEqual(
      data.proxies.map((p) => [p.seqno, p.address.toString(), p.endpoint]),
      [[1, owner.address.toString(), longEndpoint]],
    );
  });

  it('change_owner hands governance to the new owner', async () => {
    assertAllSucceeded(await root.sendChangeOwner(owner.getSender(), GAS, stranger.address));
    assert.ok((await root.getRootData()).owner.equals(stranger.address));
    assertRefused(
      await root.sendAddHash(owner.getSender(), GAS, HashKind.worker, 1n),
      root.address,
      ExitCode.notAllowed,
    );
    assertAllSucceeded(await root.sendAddHash(stranger.getSender(), GAS, HashKind.worker, 1n));
  });
});
