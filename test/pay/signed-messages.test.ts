import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  type ClientAuth,
  clientAuthCell,
  GLOBAL_ID,
  parseClientAuth,
  parseWorkerPayout,
  publicKeyToUint,
  signClientAuth,
  signWorkerPayout,
  uintToPublicKey,
  verifyCell,
  type WorkerPayout,
  workerPayoutCell,
} from '../../src/pay/signed-messages.ts';
import { CONTRACT, keyPair, NETWORK, OTHER_CONTRACT } from './fixtures.ts';

const AUTH: ClientAuth = { globalId: NETWORK, contract: CONTRACT, seqno: 7n, total: 123_456_789_000n };
const PAYOUT: WorkerPayout = {
  globalId: NETWORK,
  contract: CONTRACT,
  seqno: 3n,
  workerTotal: 700_000_000n,
  proxyTotal: 300_000_000n,
};

/** PKCS#8 DER header of an Ed25519 private key; the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function rawPublicKey(key: ReturnType<typeof createPublicKey>): Buffer {
  return Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url');
}

describe('ClientAuth payload', () => {
  test('round trips through its cell', () => {
    const a: ClientAuth = {
      globalId: GLOBAL_ID.testnet,
      contract: CONTRACT,
      seqno: 2n ** 64n - 1n,
      total: (1n << 120n) - 1n,
    };
    const back = parseClientAuth(clientAuthCell(a));
    assert.equal(back.globalId, -3);
    assert.ok(back.contract.equals(CONTRACT));
    assert.equal(back.seqno, a.seqno);
    assert.equal(back.total, a.total);
  });

  test('is refused by the worker payout parser (tags differ)', () => {
    assert.throws(() => parseWorkerPayout(clientAuthCell(AUTH)), /wrong tag/);
  });

  test('a signature verifies over the cell hash with the signer’s key', () => {
    const k = keyPair();
    const s = signClientAuth(AUTH, k.privateKey);
    assert.equal(s.signature.length, 64);
    assert.ok(verifyCell(s.cell, s.signature, k.publicKey));
    assert.ok(
      verify(null, clientAuthCell(AUTH).hash(), k.publicKey, s.signature),
      'over the hash, as contracts check',
    );
  });

  test('a signature fails after changing any field', () => {
    const k = keyPair();
    const { signature } = signClientAuth(AUTH, k.privateKey);
    const variants: [string, ClientAuth][] = [
      ['total', { ...AUTH, total: AUTH.total + 1n }],
      ['seqno', { ...AUTH, seqno: AUTH.seqno + 1n }],
      ['contract', { ...AUTH, contract: OTHER_CONTRACT }],
      ['globalId', { ...AUTH, globalId: GLOBAL_ID.testnet }],
    ];
    for (const [field, v] of variants) {
      assert.equal(verifyCell(clientAuthCell(v), signature, k.publicKey), false, `changed ${field}`);
    }
  });

  test('a signature fails with another key', () => {
    const s = signClientAuth(AUTH, keyPair().privateKey);
    assert.equal(verifyCell(s.cell, s.signature, keyPair().publicKey), false);
  });

  test('a signature of the wrong length is refused without throwing', () => {
    const k = keyPair();
    const s = signClientAuth(AUTH, k.privateKey);
    assert.equal(verifyCell(s.cell, s.signature.subarray(0, 63), k.publicKey), false);
    assert.equal(verifyCell(s.cell, Buffer.alloc(0), k.publicKey), false);
  });
});

describe('WorkerPayout payload', () => {
  test('round trips through its cell', () => {
    const back = parseWorkerPayout(workerPayoutCell(PAYOUT));
    assert.equal(back.globalId, NETWORK);
    assert.ok(back.contract.equals(CONTRACT));
    assert.equal(back.seqno, PAYOUT.seqno);
    assert.equal(back.workerTotal, PAYOUT.workerTotal);
    assert.equal(back.proxyTotal, PAYOUT.proxyTotal);
  });

  test('is refused by the client auth parser (tags differ)', () => {
    assert.throws(() => parseClientAuth(workerPayoutCell(PAYOUT)), /wrong tag/);
  });

  test('a signature verifies with the proxy key', () => {
    const k = keyPair();
    const s = signWorkerPayout(PAYOUT, k.privateKey);
    assert.ok(verifyCell(s.cell, s.signature, k.publicKey));
  });

  test('a signature fails after changing any field', () => {
    const k = keyPair();
    const { signature } = signWorkerPayout(PAYOUT, k.privateKey);
    const variants: [string, WorkerPayout][] = [
      ['workerTotal', { ...PAYOUT, workerTotal: PAYOUT.workerTotal + 1n }],
      ['proxyTotal', { ...PAYOUT, proxyTotal: PAYOUT.proxyTotal - 1n }],
      ['seqno', { ...PAYOUT, seqno: PAYOUT.seqno + 1n }],
      ['contract', { ...PAYOUT, contract: OTHER_CONTRACT }],
      ['globalId', { ...PAYOUT, globalId: GLOBAL_ID.testnet }],
    ];
    for (const [field, v] of variants) {
      assert.equal(verifyCell(workerPayoutCell(v), signature, k.publicKey), false, `changed ${field}`);
    }
  });

  test('a signature fails with another key', () => {
    const s = signWorkerPayout(PAYOUT, keyPair().privateKey);
    assert.equal(verifyCell(s.cell, s.signature, keyPair().publicKey), false);
  });
});

describe('publicKeyToUint / uintToPublicKey', () => {
  test('round trip gives the same raw key, and it verifies the owner’s signatures', () => {
    const k = keyPair();
    const n = publicKeyToUint(k.publicKey);
    assert.equal(n, BigInt(`0x${rawPublicKey(k.publicKey).toString('hex')}`));
    const back = uintToPublicKey(n);
    assert.deepEqual(rawPublicKey(back), rawPublicKey(k.publicKey));
    const s = signClientAuth(AUTH, k.privateKey);
    assert.ok(verifyCell(s.cell, s.signature, back));
  });

  test('round trips a key whose first byte is zero', () => {
    // Derive keys from fixed seeds until one has a leading zero byte (about 1 in 256).
    for (let i = 0; i < 10_000; i++) {
      const d = Buffer.alloc(32);
      d.writeUInt32BE(i);
      const priv = createPrivateKey({
        key: Buffer.concat([PKCS8_ED25519_PREFIX, d]),
        format: 'der',
        type: 'pkcs8',
      });
      const pub = createPublicKey(priv);
      const raw = rawPublicKey(pub);
      if (raw[0] !== 0) continue;
      const n = publicKeyToUint(pub);
      assert.ok(n < 1n << 248n);
      assert.deepEqual(rawPublicKey(uintToPublicKey(n)), raw);
      return;
    }
    assert.fail('no key with a leading zero byte found');
  });

  test('refuses a key that is not Ed25519', () => {
    const { publicKey } = generateKeyPairSync('x25519');
    assert.throws(() => publicKeyToUint(publicKey), /not an Ed25519 public key/);
  });
});
