import assert from 'node:assert/strict';
import { hkdfSync, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { Aes128Gcm, Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { generateE2EKey } from '../../src/attest/e2e-key.ts';
import { openRequest, REQUEST_PAD_STEP, requestAad, sealRequest } from '../../src/protocol/sealing/index.ts';
import { pad, unpad } from '../../src/protocol/sealing/padding.ts';
import { REPLY_SECRET_BYTES, ReplyOpener, ReplySealer } from '../../src/protocol/sealing/reply.ts';
import { SyncAesGcm } from '../../src/protocol/sealing/sync-aead.ts';
import { hkdfSha256 } from '../../src/protocol/sealing/sync-hmac.ts';
import { syncCipherSuite } from '../../src/protocol/sealing/sync-suite.ts';
import { withSyncX25519 } from '../../src/protocol/sealing/sync-x25519.ts';

/**
 * The synchronous suite (node:crypto under `@hpke/core`'s own HPKE code) against the library unmodified, on
 * WebCrypto, and against RFC 9180's published vector: a swapped primitive that computed anything else would
 * fail here, not only in a round trip with itself.
 */

/** `@hpke/core` as shipped: nothing swapped, every primitive on WebCrypto. */
function stockSuite(aead = new Aes256Gcm()): CipherSuite {
  return new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead });
}

// The wire format's constants, written out: a stock implementation has to use these very strings.
const INFO = Buffer.from('cocoon-e2e-v1');
const REPLY_EXPORTER_CONTEXT = Buffer.from('cocoon-e2e-reply-v1');
const aad = requestAad({ requestId: 'req-1', model: 'qwen3-8b', workerCertHash: Buffer.alloc(32, 0xc3) });
const body = Buffer.from('{"model":"qwen3-8b","messages":[{"role":"user","content":"hi"}]}');
const MAX = 64 * 1024;
const bytes = (b: ArrayBuffer) => Buffer.from(b);

const SUBTLE_METHODS = [
  'importKey',
  'exportKey',
  'generateKey',
  'deriveBits',
  'deriveKey',
  'encrypt',
  'decrypt',
  'sign',
  'verify',
  'digest',
] as const;

/** How many WebCrypto calls `run` makes (the SubtleCrypto object `@hpke/core` loads). */
async function webCryptoCalls(run: () => Promise<unknown>): Promise<number> {
  const subtle = globalThis.crypto.subtle as unknown as Record<string, (...args: unknown[]) => unknown>;
  let calls = 0;
  for (const m of SUBTLE_METHODS) {
    const original = subtle[m]!;
    Object.defineProperty(subtle, m, {
      configurable: true,
      writable: true,
      value: (...args: unknown[]) => {
        calls++;
        return original.apply(subtle, args);
      },
    });
  }
  try {
    await run();
  } finally {
    for (const m of SUBTLE_METHODS) delete subtle[m];
  }
  return calls;
}

describe('sealRequest and openRequest against a stock @hpke/core', () => {
  test('a sealed request opens with a stock recipient, and the reply secret it exports matches', async () => {
    const stock = stockSuite();
    const recipient = await stock.kem.generateKeyPair();
    const publicKeyHex = bytes(await stock.kem.serializePublicKey(recipient.publicKey)).toString('hex');
    const client = await sealRequest({
      recipientPublicKey: publicKeyHex,
      plaintext: body,
      aad,
      maxReplyPartBytes: MAX,
    });

    assert.equal(client.sealed[0], 1);
    const enc = client.sealed.subarray(1, 33);
    const ctx = await stock.createRecipientContext({ recipientKey: recipient, enc, info: INFO });
    assert.deepEqual(unpad(bytes(await ctx.open(client.sealed.subarray(33), aad))), body);

    // A reply sealed under the secret the stock side exports opens on the client: the secrets are equal.
    const secret = bytes(await ctx.export(REPLY_EXPORTER_CONTEXT, REPLY_SECRET_BYTES));
    const sealer = new ReplySealer(secret, Buffer.from(enc));
    assert.equal(client.reply.open(sealer.seal(Buffer.from('hello'), true)).toString(), 'hello');
    assert.equal(client.reply.finished, true);
  });

  test('a stock sender’s request opens with openRequest (the worker’s WebCrypto key), and the reply secret matches', async () => {
    const worker = await generateE2EKey();
    const stock = stockSuite();
    const sender = await stock.createSenderContext({
      recipientPublicKey: await stock.kem.deserializePublicKey(Buffer.from(worker.publicKeyHex, 'hex')),
      info: INFO,
    });
    const enc = bytes(sender.enc);
    const ct = bytes(await sender.seal(pad(body, REQUEST_PAD_STEP), aad));
    const sealed = Buffer.concat([Buffer.of(1), enc, ct]);
    const opened = await openRequest({ key: worker.keyPair, sealed, aad, maxBytes: MAX });
    assert.deepEqual(opened.plaintext, body);

    const secret = bytes(await sender.export(REPLY_EXPORTER_CONTEXT, REPLY_SECRET_BYTES));
    const opener = new ReplyOpener(secret, enc, MAX);
    assert.equal(opener.open(opened.reply.seal(Buffer.from('hello'), true)).toString(), 'hello');
    assert.equal(opener.finished, true);
  });
});

describe('the synchronous suite', () => {
  test('gives the same HPKE as a stock suite, both ways, exports included', async () => {
    const ours = syncCipherSuite();
    const stock = stockSuite();
    const label = Buffer.from('label');
    for (const [from, to] of [
      [ours, stock],
      [stock, ours],
    ] as const) {
      const recipient = await to.kem.generateKeyPair();
      // Keys cross as bytes: the two suites' key objects are their own (CryptoKey, node KeyObject).
      const raw = await to.kem.serializePublicKey(recipient.publicKey);
      const sender = await from.createSenderContext({
        recipientPublicKey: await from.kem.deserializePublicKey(raw),
        info: INFO,
      });
      const sealed = [
        bytes(await sender.seal(Buffer.from('first'), Buffer.from('aad'))),
        bytes(await sender.seal(Buffer.alloc(70_000, 7))), // a second message: the sequence counts
      ];
      const opened = await to.createRecipientContext({
        recipientKey: recipient,
        enc: sender.enc,
        info: INFO,
      });
      assert.equal(bytes(await opened.open(sealed[0]!, Buffer.from('aad'))).toString(), 'first');
      assert.deepEqual(bytes(await opened.open(sealed[1]!)), Buffer.alloc(70_000, 7));
      assert.deepEqual(bytes(await sender.export(label, 32)), bytes(await opened.export(label, 32)));
    }
  });

  test('a changed tag or AAD fails to open, as on the stock suite', async () => {
    const ours = syncCipherSuite();
    const recipient = await ours.kem.generateKeyPair();
    for (const tamper of [(ct: Buffer) => ct.fill(0, ct.length - 1), (ct: Buffer) => ct.subarray(0, 15)]) {
      const sender = await ours.createSenderContext({ recipientPublicKey: recipient.publicKey, info: INFO });
      const ct = tamper(bytes(await sender.seal(Buffer.from('x'), Buffer.from('aad'))));
      const ctx = await ours.createRecipientContext({ recipientKey: recipient, enc: sender.enc, info: INFO });
      await assert.rejects(ctx.open(ct, Buffer.from('aad')), { name: 'OpenError' });
    }
    const sender = await ours.createSenderContext({ recipientPublicKey: recipient.publicKey, info: INFO });
    const ct = await sender.seal(Buffer.from('x'), Buffer.from('aad'));
    const ctx = await ours.createRecipientContext({ recipientKey: recipient, enc: sender.enc, info: INFO });
    await assert.rejects(ctx.open(ct, Buffer.from('other')), { name: 'OpenError' });
  });

  test('makes no WebCrypto call to seal or open a request, while a stock suite in the same process still does', async () => {
    // This pins the private fields the swaps set (`_api` on the KEM's primitive and KDFs): if @hpke/core
    // renamed them, the library would quietly load WebCrypto again, and this would count its calls.
    const worker = await generateE2EKey();
    const ours = await webCryptoCalls(async () => {
      const client = await sealRequest({
        recipientPublicKey: worker.publicKeyHex,
        plaintext: body,
        aad,
        maxReplyPartBytes: MAX,
      });
      await openRequest({ key: worker.keyPair, sealed: client.sealed, aad, maxBytes: MAX });
    });
    assert.equal(ours, 0);
    const stock = stockSuite();
    const recipient = await stock.kem.generateKeyPair();
    const stockCalls = await webCryptoCalls(async () => {
      const sender = await stock.createSenderContext({ recipientPublicKey: recipient.publicKey, info: INFO });
      await sender.seal(Buffer.from('x'));
    });
    assert.ok(stockCalls > 0, 'the swaps leaked into a stock instance');
  });

  test('its HKDF-SHA256 on HMAC gives node’s hkdfSync, for any length and an empty or given salt', () => {
    const ikm = randomBytes(32);
    const info = Buffer.from('info');
    for (const salt of [Buffer.alloc(0), randomBytes(32), randomBytes(7)]) {
      for (const length of [1, 12, 31, 32, 33, 44, 64, 65, 255 * 32]) {
        assert.deepEqual(
          hkdfSha256(ikm, salt, info, length),
          Buffer.from(hkdfSync('sha256', ikm, salt, info, length)),
          `salt of ${salt.length}, ${length} bytes`,
        );
      }
    }
    for (const length of [0, 255 * 32 + 1, 1.5]) assert.throws(() => hkdfSha256(ikm, ikm, info, length));
  });

  test('refuses a KEM whose primitive is not the shape it patches', () => {
    assert.throws(() => withSyncX25519({}), /changed its X25519 KEM/);
    assert.throws(() => withSyncX25519({ _prim: { dh: () => {} } }), /changed its X25519 KEM/);
  });

  test('honours a WebCrypto key’s flags: the worker’s private key stays unexportable', async () => {
    const worker = await generateE2EKey();
    const ours = syncCipherSuite();
    await assert.rejects(ours.kem.serializePrivateKey(worker.keyPair.privateKey), { name: 'SerializeError' });
    assert.equal(
      bytes(await ours.kem.serializePublicKey(worker.keyPair.publicKey)).toString('hex'),
      worker.publicKeyHex,
    );
  });
});

/**
 * RFC 9180 appendix A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode (the RFC has no
 * X25519 vector with AES-256-GCM; all but the AES key length is shared with the suite). Values copied from
 * the RFC's source, draft-irtf-cfrg-hpke.md in github.com/cfrg/draft-irtf-cfrg-hpke.
 */
const A_1_1 = {
  info: '4f6465206f6e2061204772656369616e2055726e',
  ikmE: '7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234',
  pkEm: '37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431',
  ikmR: '6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037',
  pkRm: '3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d',
  skRm: '4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8',
  pt: '4265617574792069732074727574682c20747275746820626561757479',
  encryptions: [
    {
      aad: '436f756e742d30',
      ct: 'f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a',
    },
    {
      aad: '436f756e742d31',
      ct: 'af2d7e9ac9ae7e270f46ba1f975be53c09f8d875bdc8535458c2494e8a6eab251c03d0c22a56b8ca42c2063b84',
    },
    {
      aad: '436f756e742d32',
      ct: '498dfcabd92e8acedc281e85af1cb4e3e31c7dc394a1ca20e173cb72516491588d96a19ad4a683518973dcc180',
    },
  ],
  exports: [
    { context: '', value: '3853fe2b4035195a573ffc53856e77058e15d9ea064de3e59f4961d0095250ee' },
    { context: '00', value: '2e8f0b54673c7029649d4eb9d5e33bf1872cf76d623ff164ac185da9e88c21a5' },
    {
      context: '54657374436f6e74657874',
      value: 'e9e43065102c3836401bed8c3c3c75ae46be1639869391d62c61f1ec7af54931',
    },
  ],
};

describe('RFC 9180 A.1.1 (X25519, HKDF-SHA256, AES-128-GCM, base mode)', () => {
  const hex = (s: string) => Buffer.from(s, 'hex');
  for (const [name, suite] of [
    ['the synchronous suite', () => syncCipherSuite(new SyncAesGcm(128))],
    ['a stock suite (checks the check)', () => stockSuite(new Aes128Gcm())],
  ] as const) {
    test(`${name} derives the keys, seals, opens and exports as published`, async () => {
      const s = suite();
      const recipient = await s.kem.deriveKeyPair(hex(A_1_1.ikmR));
      assert.equal(bytes(await s.kem.serializePublicKey(recipient.publicKey)).toString('hex'), A_1_1.pkRm);
      assert.equal(bytes(await s.kem.serializePrivateKey(recipient.privateKey)).toString('hex'), A_1_1.skRm);

      const info = hex(A_1_1.info);
      // `ekm` (the ephemeral key's IKM) is the library's test hook for deterministic encapsulation.
      const sender = await s.createSenderContext({
        recipientPublicKey: recipient.publicKey,
        info,
        ekm: hex(A_1_1.ikmE),
      });
      assert.equal(bytes(sender.enc).toString('hex'), A_1_1.pkEm);
      const opened = await s.createRecipientContext({ recipientKey: recipient, enc: sender.enc, info });
      for (const { aad: a, ct } of A_1_1.encryptions) {
        assert.equal(bytes(await sender.seal(hex(A_1_1.pt), hex(a))).toString('hex'), ct);
        assert.equal(bytes(await opened.open(hex(ct), hex(a))).toString('hex'), A_1_1.pt);
      }
      for (const { context, value } of A_1_1.exports) {
        assert.equal(bytes(await sender.export(hex(context), 32)).toString('hex'), value);
        assert.equal(bytes(await opened.export(hex(context), 32)).toString('hex'), value);
      }
    });
  }
});
