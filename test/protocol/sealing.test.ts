import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type E2EKey, generateE2EKey } from '../../src/attest/e2e-key.ts';
import { E2EOpenError, ProtocolError } from '../../src/errors.ts';
import {
  openRequest,
  paddedLength,
  REPLY_PAD_STEP,
  REQUEST_PAD_STEP,
  requestAad,
  sealedRequestBytes,
  sealRequest,
} from '../../src/protocol/sealing/index.ts';

const worker: E2EKey = await generateE2EKey();
const other: E2EKey = await generateE2EKey();
const certHash = Buffer.alloc(32, 0xc3);
const aad = requestAad({ requestId: 'req-1', model: 'qwen3-8b', workerCertHash: certHash });
const body = Buffer.from('{"model":"qwen3-8b","messages":[{"role":"user","content":"hi"}]}');
const MAX = 64 * 1024;

/**
 * X25519 public keys whose DH output is all zero for every private key (RFC 9180 §7.1.4 must refuse them):
 * 0, 1, the two points of order 8, p − 1, and p, p + 1 (non-canonical encodings of 0 and 1). Each was
 * checked to give zero with random scalars on an X25519 ladder independent of OpenSSL.
 */
const LOW_ORDER_POINTS = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

const openFailed = (e: unknown) => {
  assert.ok(e instanceof E2EOpenError, String(e));
  assert.equal(e.code, 'e2e_open_failed');
  return true;
};

async function seal(plaintext: Uint8Array = body, key: E2EKey = worker) {
  return sealRequest({ recipientPublicKey: key.publicKeyHex, plaintext, aad, maxReplyPartBytes: MAX });
}

/** A sealed request opened by the worker, and `n` reply parts it sealed (the last flagged last). */
async function exchange(n = 3) {
  const client = await seal();
  const opened = await openRequest({ key: worker.keyPair, sealed: client.sealed, aad, maxBytes: MAX });
  const parts = Array.from({ length: n }, (_, i) =>
    opened.reply.seal(Buffer.from(`token ${i}`), i === n - 1),
  );
  return { client, opened, parts };
}

const flip = (b: Buffer, at: number) => {
  const c = Buffer.from(b);
  c[at]! ^= 0x01;
  return c;
};

describe('sealed requests', () => {
  test('the worker opens what the client sealed to it, byte for byte', async () => {
    const { opened } = await exchange();
    assert.deepEqual(opened.plaintext, body);
  });

  test('bodies ending in what looks like padding come back unchanged', async () => {
    for (const plaintext of [
      Buffer.alloc(0),
      Buffer.from([0x80]),
      Buffer.from([1, 0x80, 0, 0]),
      Buffer.alloc(600),
    ]) {
      const { sealed } = await seal(plaintext);
      const opened = await openRequest({ key: worker.keyPair, sealed, aad, maxBytes: MAX });
      assert.deepEqual(opened.plaintext, plaintext);
    }
  });

  test('another worker’s key does not open it', async () => {
    const { sealed } = await seal();
    await assert.rejects(openRequest({ key: other.keyPair, sealed, aad, maxBytes: MAX }), openFailed);
  });

  test('a changed byte anywhere (version, enc, ciphertext, tag) makes it fail', async () => {
    const { sealed } = await seal();
    for (let at = 0; at < sealed.length; at++) {
      await assert.rejects(
        openRequest({ key: worker.keyPair, sealed: flip(sealed, at), aad, maxBytes: MAX }),
        openFailed,
        `byte ${at}`,
      );
    }
  });

  test('another request id, model or worker certificate in the AAD makes it fail', async () => {
    const { sealed } = await seal();
    for (const moved of [
      requestAad({ requestId: 'req-2', model: 'qwen3-8b', workerCertHash: certHash }),
      requestAad({ requestId: 'req-1', model: 'qwen3-32b', workerCertHash: certHash }),
      requestAad({ requestId: 'req-1', model: 'qwen3-8b', workerCertHash: Buffer.alloc(32, 0xc4) }),
      Buffer.alloc(0),
    ]) {
      await assert.rejects(
        openRequest({ key: worker.keyPair, sealed, aad: moved, maxBytes: MAX }),
        openFailed,
      );
    }
  });

  test('the AAD is canonical: fields cannot slide into each other', () => {
    const a = requestAad({ requestId: 'ab', model: 'c', workerCertHash: certHash });
    const b = requestAad({ requestId: 'a', model: 'bc', workerCertHash: certHash });
    assert.notDeepEqual(a, b);
    assert.equal(a.readUInt32BE(0), 21);
    assert.equal(a.subarray(4, 25).toString(), 'cocoon-e2e-request-v1');
  });

  test('a truncated one fails, at every length', async () => {
    const { sealed } = await seal();
    for (let len = 0; len < sealed.length; len++) {
      await assert.rejects(
        openRequest({ key: worker.keyPair, sealed: sealed.subarray(0, len), aad, maxBytes: MAX }),
        openFailed,
        `length ${len}`,
      );
    }
  });

  test('an unknown version fails, even with the rest intact', async () => {
    const { sealed } = await seal();
    const v2 = Buffer.from(sealed);
    v2[0] = 2;
    await assert.rejects(openRequest({ key: worker.keyPair, sealed: v2, aad, maxBytes: MAX }), /version 2/);
  });

  test('one larger than the caller’s limit is refused before it is opened', async () => {
    const { sealed } = await seal();
    await assert.rejects(
      openRequest({ key: worker.keyPair, sealed, aad, maxBytes: sealed.length - 1 }),
      (e: unknown) => openFailed(e) && /more than/.test((e as Error).message),
    );
    await openRequest({ key: worker.keyPair, sealed, aad, maxBytes: sealed.length });
  });

  test('a low-order ephemeral key (all-zero X25519 secret) is refused', async () => {
    const { sealed } = await seal();
    for (const point of LOW_ORDER_POINTS) {
      const lowOrderEnc = Buffer.from(sealed);
      Buffer.from(point, 'hex').copy(lowOrderEnc, 1);
      await assert.rejects(
        openRequest({ key: worker.keyPair, sealed: lowOrderEnc, aad, maxBytes: MAX }),
        openFailed,
        point,
      );
    }
  });

  test('the client refuses to seal to a malformed or low-order worker key', async () => {
    for (const recipientPublicKey of ['ab'.repeat(31), ...LOW_ORDER_POINTS]) {
      await assert.rejects(
        sealRequest({ recipientPublicKey, plaintext: body, aad, maxReplyPartBytes: MAX }),
        (e: unknown) => e instanceof ProtocolError && e.code === 'e2e_bad_recipient_key',
        recipientPublicKey,
      );
    }
  });

  test('the same body sealed twice gives unrelated bytes (fresh ephemeral key)', async () => {
    const [a, b] = [await seal(), await seal()];
    assert.notDeepEqual(a.sealed.subarray(1, 33), b.sealed.subarray(1, 33));
  });
});

describe('sealed reply parts', () => {
  test('open in order to what the worker sealed; finished only after the last', async () => {
    const { client, opened, parts } = await exchange(3);
    assert.equal(client.reply.open(parts[0]!).toString(), 'token 0');
    assert.equal(client.reply.open(parts[1]!).toString(), 'token 1');
    assert.equal(client.reply.finished, false);
    assert.equal(client.reply.open(parts[2]!).toString(), 'token 2');
    assert.equal(client.reply.finished, true);
    assert.equal(opened.reply.finished, true);
  });

  test('an empty last part is allowed (an end-of-stream marker)', async () => {
    const { client, opened } = await exchange(0);
    const part = opened.reply.seal(Buffer.alloc(0), true);
    assert.equal(client.reply.open(part).length, 0);
    assert.equal(client.reply.finished, true);
  });

  test('a changed byte anywhere in a part makes it fail', async () => {
    for (const which of [0, 1, 2]) {
      const { parts } = await exchange(3);
      const part = parts[which]!;
      for (let at = 0; at < part.length; at++) {
        // A new exchange per try: a failed part ends the reply.
        const { client, parts: fresh } = await exchange(3);
        for (let i = 0; i < which; i++) client.reply.open(fresh[i]!);
        assert.throws(
          () => client.reply.open(flip(fresh[which]!, at)),
          openFailed,
          `part ${which} byte ${at}`,
        );
      }
    }
  });

  test('a truncated part fails, at every length', async () => {
    for (const which of [0, 1]) {
      const { parts } = await exchange(2);
      for (let len = 0; len < parts[which]!.length; len++) {
        const { client, parts: fresh } = await exchange(2);
        if (which === 1) client.reply.open(fresh[0]!);
        assert.throws(() => client.reply.open(fresh[which]!.subarray(0, len)), openFailed, `length ${len}`);
      }
    }
  });

  test('a stream cut before its last part is seen as cut', async () => {
    const { client, parts } = await exchange(3);
    client.reply.open(parts[0]!);
    client.reply.open(parts[1]!);
    assert.equal(client.reply.finished, false);
  });

  test('reordered parts fail', async () => {
    const { client, parts } = await exchange(3);
    client.reply.open(parts[0]!);
    assert.throws(() => client.reply.open(parts[2]!), openFailed);
  });

  test('a part dropped in the middle makes the next one fail', async () => {
    const { client, parts } = await exchange(4);
    client.reply.open(parts[0]!);
    client.reply.open(parts[1]!);
    assert.throws(() => client.reply.open(parts[3]!), openFailed);
  });

  test('a replayed part fails', async () => {
    const { client, parts } = await exchange(3);
    client.reply.open(parts[0]!);
    client.reply.open(parts[1]!);
    assert.throws(() => client.reply.open(parts[1]!), openFailed);
  });

  test('a part of another request’s reply fails, first or later', async () => {
    const a = await exchange(3);
    const b = await exchange(3);
    assert.throws(() => a.client.reply.open(b.parts[0]!), openFailed);
    const c = await exchange(3);
    c.client.reply.open(c.parts[0]!);
    assert.throws(() => c.client.reply.open(b.parts[1]!), openFailed);
  });

  test('nothing opens after the last part, and nothing can be sealed after it', async () => {
    const { client, opened, parts } = await exchange(2);
    client.reply.open(parts[0]!);
    client.reply.open(parts[1]!);
    assert.throws(
      () => client.reply.open(parts[1]!),
      (e: unknown) => openFailed(e) && /after the last/.test(String(e)),
    );
    assert.throws(() => opened.reply.seal(Buffer.from('more')), /already sealed its last part/);
  });

  test('a part claimed last that was not sealed last fails (the flag is authenticated)', async () => {
    const { client, parts } = await exchange(3);
    client.reply.open(parts[0]!);
    const claimedLast = Buffer.from(parts[1]!);
    claimedLast[0] = 0x01;
    assert.throws(() => client.reply.open(claimedLast), openFailed);
  });

  test('unknown flag bits fail', async () => {
    const { client, parts } = await exchange(2);
    const flagged = Buffer.from(parts[0]!);
    flagged[0] = 0x02;
    assert.throws(() => client.reply.open(flagged), /unknown flags/);
  });

  test('after a part fails, the genuine one fails too: the reply is over', async () => {
    const { client, parts } = await exchange(2);
    assert.throws(() => client.reply.open(flip(parts[0]!, 40)), openFailed);
    assert.throws(() => client.reply.open(parts[0]!), openFailed);
  });

  test('a part larger than the client’s limit is refused', async () => {
    const client = await sealRequest({
      recipientPublicKey: worker.publicKeyHex,
      plaintext: body,
      aad,
      maxReplyPartBytes: 100,
    });
    const opened = await openRequest({ key: worker.keyPair, sealed: client.sealed, aad, maxBytes: MAX });
    const big = opened.reply.seal(Buffer.alloc(200));
    assert.throws(
      () => client.reply.open(big),
      (e: unknown) => openFailed(e) && /more than 100/.test(String(e)),
    );
  });

  test('a request replayed to the worker gets a reply under other keys: parts of two replies do not mix', async () => {
    const client = await seal();
    const first = await openRequest({ key: worker.keyPair, sealed: client.sealed, aad, maxBytes: MAX });
    const second = await openRequest({ key: worker.keyPair, sealed: client.sealed, aad, maxBytes: MAX });
    const a = [first.reply.seal(Buffer.from('same')), first.reply.seal(Buffer.from('x'), true)];
    const b = [second.reply.seal(Buffer.from('same')), second.reply.seal(Buffer.from('y'), true)];
    assert.notDeepEqual(a[0]!.subarray(33), b[0]!.subarray(33)); // same plaintext, same position: other key
    client.reply.open(a[0]!);
    assert.throws(() => client.reply.open(b[1]!), openFailed);
  });
});

describe('request and reply keys are not interchangeable', () => {
  test('a sealed request does not open as a reply part', async () => {
    const { client, opened } = await exchange(0);
    assert.throws(() => client.reply.open(client.sealed), openFailed);
    assert.ok(opened.plaintext.length > 0);
  });

  test('a reply part does not open as a request, whatever its first byte', async () => {
    const { parts } = await exchange(2);
    for (const part of parts) {
      const asRequest = Buffer.concat([part, Buffer.alloc(600)]);
      for (const first of [0, 1]) {
        asRequest[0] = first;
        await assert.rejects(
          openRequest({ key: worker.keyPair, sealed: asRequest, aad, maxBytes: MAX }),
          openFailed,
        );
      }
    }
  });
});

describe('padding hides lengths within a bucket', () => {
  test('reply parts of 1 and 20 bytes seal to the same size; 40 bytes to a larger one', async () => {
    const { opened } = await exchange(0);
    opened.reply.seal(Buffer.from('first')); // the first part also carries the response nonce
    const sizes = [1, 20, 31, 32, 40].map((n) => opened.reply.seal(Buffer.alloc(n, 0x61)).length);
    assert.equal(sizes[0], sizes[1]);
    assert.equal(sizes[1], sizes[2]);
    assert.ok(sizes[3]! > sizes[2]!);
    assert.ok(sizes[4]! > sizes[1]!);
  });

  test('request bodies of 1 and 400 bytes seal to the same size', async () => {
    const [a, b, c] = [
      await seal(Buffer.alloc(1)),
      await seal(Buffer.alloc(400)),
      await seal(Buffer.alloc(600)),
    ];
    assert.equal(a.sealed.length, b.sealed.length);
    assert.ok(c.sealed.length > b.sealed.length);
  });

  test('buckets: a multiple of the step, then Padmé (at most 12 % over), never shorter than the text', () => {
    assert.equal(paddedLength(0, REPLY_PAD_STEP), 32);
    assert.equal(paddedLength(31, REPLY_PAD_STEP), 32);
    assert.equal(paddedLength(32, REPLY_PAD_STEP), 64);
    assert.equal(paddedLength(4096, REPLY_PAD_STEP), 4352);
    assert.equal(paddedLength(100, REQUEST_PAD_STEP), 512);
    let previous = 0;
    for (let n = 0; n < 200_000; n += 7) {
      const p = paddedLength(n, REPLY_PAD_STEP);
      assert.ok(p > n && p % REPLY_PAD_STEP === 0 && p >= previous, `n=${n} -> ${p}`);
      if (n >= 1024) assert.ok(p <= (n + 1) * 1.12, `n=${n} -> ${p}`);
      previous = p;
    }
  });

  test('Padmé leaves few distinct sizes: lengths 64 KiB to 128 KiB fall into at most 32 buckets', () => {
    const buckets = new Set<number>();
    for (let n = 65_536; n < 131_072; n++) buckets.add(paddedLength(n, REPLY_PAD_STEP));
    assert.ok(buckets.size <= 32, `${buckets.size} buckets`);
  });
});

test('sealedRequestBytes gives the sealed size before sealing', async () => {
  const key = await generateE2EKey();
  for (const n of [0, 1, 511, 512, 5000, 70_000]) {
    const { sealed } = await sealRequest({
      recipientPublicKey: key.publicKeyHex,
      plaintext: Buffer.alloc(n, 7),
      aad: Buffer.from('a'),
      maxReplyPartBytes: 1024,
    });
    assert.equal(sealed.length, sealedRequestBytes(n), `body of ${n} bytes`);
  }
});
