import assert from 'node:assert/strict';
import { createHash, createPrivateKey } from 'node:crypto';
import { describe, test } from 'node:test';
import { generateNodeKey, nodeKeyFromPrivate } from '../../src/attest/identity.ts';
import { ProtocolError } from '../../src/errors.ts';
import {
  parseReceipt,
  RECEIPT_TAG,
  type Receipt,
  type ReceiptFields,
  ReplyHasher,
  receiptBytes,
  receiptSchema,
  signReceipt,
  verifyReceiptSignature,
} from '../../src/protocol/receipt.ts';

/** PKCS#8 DER header of an Ed25519 private key; the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const fixedKey = (seedByte: number) =>
  nodeKeyFromPrivate(
    createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519_PREFIX, Buffer.alloc(32, seedByte)]),
      format: 'der',
      type: 'pkcs8',
    }),
  );

const KEY = fixedKey(7);
const FIELDS: ReceiptFields = {
  network: -3,
  proxyContract: 'EQABAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAc3j',
  proxy: '11'.repeat(32),
  seqno: '42',
  requestId: 'c0ffee00-1111-4222-8333-444455556666',
  requestHash: '22'.repeat(32),
  replyHash: '33'.repeat(32),
  model: 'tiny@v1:' + '44'.repeat(32),
  image: '55'.repeat(32),
  tier: 'tee-cpu',
  certificate: '66'.repeat(32),
  usage: { promptTokens: 100, cachedTokens: 20, completionTokens: 300, reasoningTokens: 40 },
  coefficient: 1500,
  cost: { prompt: '150000', completion: '450000', total: '600000' },
  time: 1_750_000_000_000,
};

/** A JSON round trip: the receipt as a peer or a file hands it over. */
const overTheWire = (r: Receipt) => parseReceipt(JSON.parse(JSON.stringify(r)));
const otherHex = (h: string) => (h[0] === 'f' ? `0${h.slice(1)}` : `f${h.slice(1)}`);

describe('receipt signing', () => {
  test('a signed receipt verifies with its worker key, after a JSON round trip', () => {
    const r = signReceipt(FIELDS, KEY);
    assert.equal(r.v, 1);
    assert.equal(r.worker, KEY.publicKeyHex);
    assert.ok(verifyReceiptSignature(r, KEY.publicKeyHex));
    assert.ok(verifyReceiptSignature(overTheWire(r), KEY.publicKeyHex));
  });

  test('re-encoding a parsed receipt gives exactly the signed bytes', () => {
    const r = signReceipt(FIELDS, KEY);
    const { signature: _s, ...unsigned } = r;
    const { signature: _t, ...again } = overTheWire(r);
    assert.deepEqual(receiptBytes(again), receiptBytes(unsigned));
    assert.ok(receiptBytes(unsigned).subarray(0, RECEIPT_TAG.length).equals(Buffer.from(RECEIPT_TAG)));
  });

  test('the v1 encoding is pinned: the same fields give the same bytes and signature on any machine', () => {
    const r = signReceipt(FIELDS, KEY);
    const { signature, ...unsigned } = r;
    const bytes = receiptBytes(unsigned);
    assert.equal(bytes.length, 496);
    assert.equal(
      createHash('sha256').update(bytes).digest('hex'),
      'f40410277830c872ad25c4451cb9b6ba764f18b2694eb6e64be081016970ca23',
    );
    assert.equal(
      signature,
      '485cad9c366cac428f6187aea75efea78615a40469babb91b59db3d1dd4897ba79f860cf460fcf752d55a8d974654d45cb2038c62244434194f008bd14134d08',
    );
  });

  test('null network, contract and cost encode apart from any value', () => {
    const free = signReceipt({ ...FIELDS, network: null, proxyContract: null, cost: null }, KEY);
    assert.ok(verifyReceiptSignature(overTheWire(free), KEY.publicKeyHex));
    const { signature: _s, ...u } = free;
    assert.notDeepEqual(receiptBytes(u), receiptBytes({ ...u, network: 0 }));
  });

  test('a receipt naming its worker is refused with any other key, and with its own if it names another', () => {
    const r = signReceipt(FIELDS, KEY);
    const stranger = generateNodeKey();
    assert.equal(verifyReceiptSignature(r, stranger.publicKeyHex), false);
    // Claiming another worker: the signature no longer verifies with either key.
    const claimed = { ...r, worker: stranger.publicKeyHex };
    assert.equal(verifyReceiptSignature(claimed, stranger.publicKeyHex), false);
    assert.equal(verifyReceiptSignature(claimed, KEY.publicKeyHex), false);
    // A stranger's own receipt for the same request does not verify as the worker's.
    const forged = signReceipt(FIELDS, stranger);
    assert.equal(verifyReceiptSignature({ ...forged, worker: KEY.publicKeyHex }, KEY.publicKeyHex), false);
  });
});

describe('every field is signed', () => {
  const r = signReceipt(FIELDS, KEY);
  const tampered: [string, Partial<Receipt>][] = [
    ['network', { network: -239 }],
    ['network to null', { network: null }],
    ['proxyContract', { proxyContract: 'EQBvW8Z5huBkMJYdnfAEM5JqTNkuWX3diqYENkWsIL0XggGG' }],
    ['proxyContract to null', { proxyContract: null }],
    ['proxy', { proxy: otherHex(r.proxy) }],
    ['seqno', { seqno: '43' }],
    ['requestId', { requestId: 'c0ffee00-1111-4222-8333-444455556667' }],
    ['requestHash', { requestHash: otherHex(r.requestHash) }],
    ['replyHash', { replyHash: otherHex(r.replyHash) }],
    ['model', { model: `${r.model}x` }],
    ['image', { image: otherHex(r.image) }],
    ['tier', { tier: 'tee-gpu' }],
    ['certificate', { certificate: otherHex(r.certificate) }],
    ['usage.promptTokens', { usage: { ...r.usage, promptTokens: 99 } }],
    ['usage.cachedTokens', { usage: { ...r.usage, cachedTokens: 21 } }],
    ['usage.completionTokens', { usage: { ...r.usage, completionTokens: 299 } }],
    ['usage.reasoningTokens', { usage: { ...r.usage, reasoningTokens: 0 } }],
    ['coefficient', { coefficient: 1000 }],
    ['cost.prompt', { cost: { ...r.cost!, prompt: '1' } }],
    ['cost.completion', { cost: { ...r.cost!, completion: '1' } }],
    ['cost.total', { cost: { ...r.cost!, total: '1' } }],
    ['cost to null', { cost: null }],
    ['time', { time: r.time + 1 }],
    ['signature', { signature: otherHex(r.signature) }],
  ];
  for (const [name, change] of tampered) {
    test(`${name} edited: the signature does not verify`, () => {
      const edited = overTheWire({ ...r, ...change });
      assert.equal(verifyReceiptSignature(edited, KEY.publicKeyHex), false);
    });
  }

  test('the list above covers every field of the schema', () => {
    const covered = new Set(tampered.map(([n]) => n.split(/[. ]/)[0]));
    const all = Object.keys(receiptSchema.shape).filter((k) => k !== 'v' && k !== 'worker');
    assert.deepEqual([...covered].sort(), all.sort()); // `worker` is covered by the foreign-key test
  });
});

describe('the schema bounds what a peer may send', () => {
  const r = signReceipt(FIELDS, KEY);
  const refused: [string, Record<string, unknown>][] = [
    ['an unknown key', { extra: 1 }],
    ['another version', { v: 2 }],
    ['a request id of 101 characters', { requestId: 'a'.repeat(101) }],
    ['an empty request id', { requestId: '' }],
    ['a request id with a quote', { requestId: 'a"b' }],
    ['a request id with a space', { requestId: 'a b' }],
    ['a model of 301 characters', { model: 'm'.repeat(301) }],
    ['a model with a lone surrogate', { model: 'tiny\uD800' }],
    ['uppercase hex', { image: 'AB'.repeat(32) }],
    ['a short hash', { replyHash: 'ab'.repeat(31) }],
    ['a seqno with a leading zero', { seqno: '042' }],
    ['a seqno of 2^64', { seqno: (1n << 64n).toString() }],
    ['a negative seqno', { seqno: '-1' }],
    ['a cost of 2^128', { cost: { ...r.cost!, total: (1n << 128n).toString() } }],
    ['a cost as a number', { cost: { ...r.cost!, total: 600000 } }],
    ['negative tokens', { usage: { ...r.usage, promptTokens: -1 } }],
    ['fractional tokens', { usage: { ...r.usage, promptTokens: 1.5 } }],
    ['unsafe integer tokens', { usage: { ...r.usage, promptTokens: 2 ** 60 } }],
    ['an unknown usage key', { usage: { ...r.usage, audioTokens: 1 } }],
    ['an unknown tier', { tier: 'tee-tpu' }],
    ['a network outside int32', { network: 2 ** 31 }],
    ['a proxy contract that is no address', { proxyContract: 'not-an-address' }],
    ['a short signature', { signature: r.signature.slice(2) }],
    ['a coefficient above u32', { coefficient: 2 ** 32 }],
    ['a negative time', { time: -1 }],
  ];
  for (const [name, change] of refused) {
    test(`${name} is refused`, () => {
      assert.throws(
        () => parseReceipt({ ...r, ...change }),
        (e: unknown) => e instanceof ProtocolError && e.code === 'bad_receipt',
      );
    });
  }

  test('signReceipt refuses to sign fields a peer would refuse', () => {
    assert.throws(() => signReceipt({ ...FIELDS, requestId: 'a'.repeat(101) }, KEY), /out of bounds/);
    assert.throws(() => signReceipt({ ...FIELDS, seqno: '-1' }, KEY), /out of bounds/);
  });
});

describe('ReplyHasher', () => {
  test('hashes each part framed by its length, so part boundaries count', () => {
    const parts = ['ab', 'c', ''].map((s) => Buffer.from(s));
    const h = new ReplyHasher();
    for (const p of parts) h.update(p);
    const expected = createHash('sha256');
    for (const p of parts) {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(p.length);
      expected.update(len).update(p);
    }
    assert.equal(h.digest(), expected.digest('hex'));
    const other = new ReplyHasher()
      .update(Buffer.from('a'))
      .update(Buffer.from('bc'))
      .update(Buffer.alloc(0));
    assert.notEqual(
      other.digest(),
      new ReplyHasher().update(Buffer.from('ab')).update(Buffer.from('c')).update(Buffer.alloc(0)).digest(),
    );
  });

  test('refuses parts after its digest', () => {
    const h = new ReplyHasher();
    h.digest();
    assert.throws(() => h.update(Buffer.from('x')), /after digest/);
  });
});
