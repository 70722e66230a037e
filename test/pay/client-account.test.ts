import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import type { Address } from '@ton/core';
import type { CocoonError } from '../../src/errors.ts';
import {
  type AuthMessage,
  ClientAccount,
  type ClientChainState,
  type StoredAuth,
  UNDEPLOYED,
} from '../../src/pay/client-account.ts';
import { clientAuthCell, GLOBAL_ID, signCell } from '../../src/pay/signed-messages.ts';
import { CONTRACT, keyPair, NETWORK, OTHER_CONTRACT, OWNER, TON } from './fixtures.ts';

const client = keyPair();

function chain(balance: bigint, stake: bigint, extra: Partial<ClientChainState> = {}): ClientChainState {
  return {
    deployed: true,
    state: 0,
    balance,
    stake,
    charged: 0n,
    seqno: 0n,
    unlockAt: 0,
    closeDelay: 3600,
    ...extra,
  };
}

function account(state: ClientChainState = chain(10n * TON, 1n * TON), auth: StoredAuth | null = null) {
  const a = new ClientAccount(CONTRACT, OWNER, client.publicKey, NETWORK, auth);
  a.chain = state;
  return a;
}

function sign(
  seqno: bigint,
  total: bigint,
  opts: { key?: KeyObject; contract?: Address; globalId?: number } = {},
): Buffer {
  const cell = clientAuthCell({
    globalId: opts.globalId ?? NETWORK,
    contract: opts.contract ?? CONTRACT,
    seqno,
    total,
  });
  return signCell(cell, opts.key ?? client.privateKey);
}

function authMsg(
  requestIds: string[],
  seqno: bigint,
  total: bigint,
  signature = sign(seqno, total),
): AuthMessage {
  return { requestIds, seqno, total, signature };
}

function stored(seqno: bigint, total: bigint): StoredAuth {
  return { seqno, total, signature: sign(seqno, total) };
}

/** Everything checkAuth must leave alone when it refuses. */
function snapshot(a: ClientAccount, ids: string[]) {
  return {
    auth: a.auth,
    authorised: a.authorised,
    available: a.available(),
    reserved: a.reserved,
    bills: ids.map((id) => a.hasBill(id)),
  };
}

function refusedWith(status: number, code: string) {
  return (e: CocoonError) => {
    assert.equal(e.status, status);
    assert.equal(e.code, code);
    return true;
  };
}

describe('ClientAccount credit', () => {
  test('an undeployed contract has no credit and reserve refuses with 402 no_deposit', () => {
    const a = new ClientAccount(CONTRACT, OWNER, client.publicKey, NETWORK, null);
    assert.equal(a.chain, UNDEPLOYED);
    assert.equal(a.available(), 0n);
    assert.throws(() => a.reserve(1n), refusedWith(402, 'no_deposit'));
    assert.equal(a.reserved, 0n);
  });

  test('a closing contract has no credit and reserve refuses with 402 contract_closing', () => {
    const a = account(chain(10n * TON, 1n * TON, { state: 1 }));
    assert.equal(a.available(), 0n);
    assert.throws(() => a.reserve(1n), refusedWith(402, 'contract_closing'));
    assert.equal(a.reserved, 0n);
  });

  test('a closed contract refuses with 402 contract_closing', () => {
    const a = account(chain(10n * TON, 1n * TON, { state: 2 }));
    assert.throws(() => a.reserve(1n), refusedWith(402, 'contract_closing'));
  });

  test('credit is capped by the stake when the balance is above it', () => {
    assert.equal(account(chain(10n * TON, 2n * TON)).available(), 2n * TON);
  });

  test('credit is capped by the balance when the balance is below the stake', () => {
    assert.equal(account(chain(TON / 2n, 2n * TON)).available(), TON / 2n);
  });

  test('reservations reduce credit and release restores it', () => {
    const a = account(chain(10n * TON, 2n * TON));
    a.reserve(300n);
    a.reserve(200n);
    assert.equal(a.reserved, 500n);
    assert.equal(a.available(), 2n * TON - 500n);
    a.release(300n);
    assert.equal(a.available(), 2n * TON - 200n);
  });

  test('open bills reduce credit and dropping one restores it', () => {
    const a = account(chain(10n * TON, 2n * TON));
    a.addBill('r1', 1000n);
    a.addBill('r2', 500n);
    assert.equal(a.available(), 2n * TON - 1500n);
    assert.ok(a.hasBill('r1'));
    assert.equal(a.dropBill('r1'), 1000n);
    assert.equal(a.hasBill('r1'), false);
    assert.equal(a.available(), 2n * TON - 500n);
  });

  test('dropping an unknown bill returns 0 and changes nothing', () => {
    const a = account();
    a.addBill('r1', 1000n);
    const before = a.available();
    assert.equal(a.dropBill('nope'), 0n);
    assert.equal(a.available(), before);
  });

  test('signed but unredeemed authorisations reduce credit', () => {
    const a = account(chain(10n * TON, 2n * TON, { charged: 100n }), stored(3n, 300n));
    assert.equal(a.unredeemed, 200n);
    assert.equal(a.available(), 2n * TON - 200n);
  });

  test('an authorisation already charged in full (or beyond) leaves nothing unredeemed', () => {
    assert.equal(account(chain(10n * TON, 2n * TON, { charged: 300n }), stored(3n, 300n)).unredeemed, 0n);
    assert.equal(account(chain(10n * TON, 2n * TON, { charged: 900n }), stored(3n, 300n)).unredeemed, 0n);
  });

  test('reservations, bills and unredeemed authorisations add up', () => {
    const a = account(chain(10n * TON, 1000n, { charged: 100n }), stored(1n, 300n));
    a.addBill('r1', 150n);
    a.reserve(50n);
    assert.equal(a.available(), 1000n - 200n - 150n - 50n);
  });

  test('a reservation of exactly the credit is accepted', () => {
    const a = account(chain(10n * TON, 1000n));
    a.reserve(1000n);
    assert.equal(a.available(), 0n);
  });

  test('an over-large reservation is refused with 402 insufficient_balance and changes nothing', () => {
    const a = account(chain(10n * TON, 1000n));
    a.reserve(400n);
    assert.throws(() => a.reserve(601n), refusedWith(402, 'insufficient_balance'));
    assert.equal(a.reserved, 400n);
    assert.equal(a.available(), 600n);
  });
});

describe('ClientAccount.checkAuth', () => {
  /** An account with one earlier authorisation (seqno 4, total 1000) and bills r1 = 300, r2 = 200. */
  function billed() {
    const a = account(chain(10n * TON, 2n * TON), stored(4n, 1000n));
    a.addBill('r1', 300n);
    a.addBill('r2', 200n);
    return a;
  }

  function refused(a: ClientAccount, msg: AuthMessage, code: string): void {
    const before = snapshot(a, ['r1', 'r2']);
    assert.throws(() => a.checkAuth(msg), refusedWith(402, code));
    assert.deepEqual(snapshot(a, ['r1', 'r2']), before);
  }

  test('accepts a newer seqno whose total is the previous total plus the named bills', () => {
    const a = billed();
    const msg = authMsg(['r1', 'r2'], 5n, 1500n);
    assert.deepEqual(a.checkAuth(msg), { seqno: 5n, total: 1500n, signature: msg.signature });
  });

  test('accepts an authorisation for a subset of the bills', () => {
    const a = billed();
    assert.equal(a.checkAuth(authMsg(['r2'], 9n, 1200n)).total, 1200n);
  });

  test('checking alone changes nothing', () => {
    const a = billed();
    const before = snapshot(a, ['r1', 'r2']);
    a.checkAuth(authMsg(['r1', 'r2'], 5n, 1500n));
    assert.deepEqual(snapshot(a, ['r1', 'r2']), before);
  });

  test('refuses a seqno equal to the stored one with stale_seqno', () => {
    refused(billed(), authMsg(['r1', 'r2'], 4n, 1500n), 'stale_seqno');
  });

  test('refuses a seqno below the stored one with stale_seqno', () => {
    refused(billed(), authMsg(['r1', 'r2'], 3n, 1500n), 'stale_seqno');
  });

  test('refuses a total above the bills with wrong_total', () => {
    refused(billed(), authMsg(['r1', 'r2'], 5n, 1501n), 'wrong_total');
  });

  test('refuses a total below the bills with wrong_total', () => {
    refused(billed(), authMsg(['r1', 'r2'], 5n, 1499n), 'wrong_total');
  });

  test('refuses a total that ignores the previous authorisation with wrong_total', () => {
    refused(billed(), authMsg(['r1', 'r2'], 5n, 500n), 'wrong_total');
  });

  test('refuses an unknown bill with unknown_bill', () => {
    refused(billed(), authMsg(['r1', 'r9'], 5n, 1300n), 'unknown_bill');
  });

  test('refuses a signature by another key with bad_signature', () => {
    const other = keyPair();
    refused(
      billed(),
      authMsg(['r1', 'r2'], 5n, 1500n, sign(5n, 1500n, { key: other.privateKey })),
      'bad_signature',
    );
  });

  test('refuses a signature for another contract with bad_signature', () => {
    refused(
      billed(),
      authMsg(['r1', 'r2'], 5n, 1500n, sign(5n, 1500n, { contract: OTHER_CONTRACT })),
      'bad_signature',
    );
  });

  test('refuses a signature for another network with bad_signature', () => {
    refused(
      billed(),
      authMsg(['r1', 'r2'], 5n, 1500n, sign(5n, 1500n, { globalId: GLOBAL_ID.testnet })),
      'bad_signature',
    );
  });

  test('refuses a signature over another seqno with bad_signature', () => {
    refused(billed(), authMsg(['r1', 'r2'], 5n, 1500n, sign(6n, 1500n)), 'bad_signature');
  });

  test('refuses a truncated signature with bad_signature', () => {
    refused(billed(), authMsg(['r1', 'r2'], 5n, 1500n, sign(5n, 1500n).subarray(0, 32)), 'bad_signature');
  });

  test('the first authorisation needs no previous one', () => {
    const a = account();
    a.addBill('r1', 300n);
    assert.equal(a.checkAuth(authMsg(['r1'], 1n, 300n)).seqno, 1n);
  });

  test('refuses seqno 0 as stale even with no previous authorisation (the contract starts at seqno 0)', {}, () => {
    const a = account();
    a.addBill('r1', 300n);
    assert.throws(() => a.checkAuth(authMsg(['r1'], 0n, 300n)), refusedWith(402, 'stale_seqno'));
  });
});

describe('ClientAccount.applyAuth', () => {
  test('moves the covered bills into the authorised total; credit is unchanged until it is charged', () => {
    const a = account(chain(10n * TON, 2n * TON), stored(4n, 1000n));
    a.addBill('r1', 300n);
    a.addBill('r2', 200n);
    a.addBill('r3', 50n);
    const credit = a.available();
    const msg = authMsg(['r1', 'r2'], 5n, 1500n);
    a.applyAuth(msg, a.checkAuth(msg));
    assert.equal(a.authorised, 1500n);
    assert.equal(a.auth?.seqno, 5n);
    assert.equal(a.hasBill('r1'), false);
    assert.equal(a.hasBill('r2'), false);
    assert.equal(a.hasBill('r3'), true, 'a bill not named stays open');
    assert.equal(a.unredeemed, 1500n);
    assert.equal(a.available(), credit);
  });

  test('the next authorisation must build on the applied one', () => {
    const a = account();
    a.addBill('r1', 300n);
    const m1 = authMsg(['r1'], 1n, 300n);
    a.applyAuth(m1, a.checkAuth(m1));
    a.addBill('r2', 200n);
    assert.throws(() => a.checkAuth(authMsg(['r2'], 2n, 200n)), refusedWith(402, 'wrong_total'));
    assert.throws(() => a.checkAuth(authMsg(['r2'], 1n, 500n)), refusedWith(402, 'stale_seqno'));
    assert.equal(a.checkAuth(authMsg(['r2'], 2n, 500n)).total, 500n);
  });

  test('once charged on-chain, the applied total no longer reduces credit', () => {
    const a = account(chain(10n * TON, 1000n));
    a.addBill('r1', 300n);
    const m = authMsg(['r1'], 1n, 300n);
    a.applyAuth(m, a.checkAuth(m));
    assert.equal(a.available(), 700n);
    a.chain = chain(10n * TON - 300n, 1000n, { charged: 300n, seqno: 1n });
    assert.equal(a.available(), 1000n);
  });
});

describe('ClientAccount terms and floors', () => {
  test('a stake or close delay below the terms gives no credit: 402 stake_too_low, naming what is short', () => {
    const a = account(chain(10n * TON, TON, { closeDelay: 3600 }));
    a.terms = { minStake: 2n * TON, minCloseDelay: 600 };
    assert.equal(a.available(), 0n);
    assert.throws(
      () => a.reserve(1n),
      (e: CocoonError) =>
        e.code === 'stake_too_low' &&
        /stake 1\.000000000 TON is below the required 2\.000000000 TON/.test(e.message),
    );
    a.terms = { minStake: TON, minCloseDelay: 7200 };
    assert.throws(
      () => a.reserve(1n),
      (e: CocoonError) => /close delay 3600 s is below the required 7200 s/.test(e.message),
    );
    a.terms = { minStake: TON, minCloseDelay: 3600 };
    a.reserve(1n);
    assert.equal(a.reserved, 1n);
  });

  test('the next total adds to what the contract paid when that is above what the ledger holds', () => {
    const a = account(chain(10n * TON, TON, { charged: 5000n }), stored(3n, 2000n));
    assert.equal(a.base, 5000n);
    a.addBill('r1', 100n);
    assert.throws(
      () => a.checkAuth({ requestIds: ['r1'], seqno: 4n, total: 2100n, signature: sign(4n, 2100n) }),
      refusedWith(402, 'wrong_total'),
    );
    const ok = a.checkAuth({ requestIds: ['r1'], seqno: 4n, total: 5100n, signature: sign(4n, 5100n) });
    assert.equal(ok.total, 5100n);
  });
});
