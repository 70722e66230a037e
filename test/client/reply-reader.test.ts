import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { type E2EKey, generateE2EKey } from '../../src/attest/e2e-key.ts';
import { ReplyReader } from '../../src/client/reply-reader.ts';
import { SILENT_TOKENS_PER_CHOICE } from '../../src/protocol/observed-output.ts';
import { ReplyHasher } from '../../src/protocol/receipt.ts';
import type { ReplySealer } from '../../src/protocol/sealing/index.ts';
import { sealedPair } from '../protocol/sealed-pair.ts';

/**
 * The client's reader of one reply (src/client/reply-reader.ts): parts are opened as they arrive, so a
 * bill (which comes before the reply's trailer) is checked against all of them; the plaintext is counted
 * and the sealed parts kept as a dispute's proof; the hash is over the events in order, the tail last.
 */
const chunk = (content: string) => JSON.stringify({ choices: [{ index: 0, delta: { content } }] });
const tail = JSON.stringify({ choices: [], usage: { completion_tokens: 2 } });

let key: E2EKey;
before(async () => {
  key = await generateE2EKey();
});

async function pair(
  stream = true,
  keepProof = true,
  onUnreadable?: (e: Error) => void,
): Promise<{ reader: ReplyReader; sealer: ReplySealer; secret: Buffer }> {
  const { client: c, worker: w } = await sealedPair(key);
  const reader = new ReplyReader({ opener: c.reply, secret: c.secret }, stream, keepProof, onUnreadable);
  return { reader, sealer: w.reply, secret: c.secret };
}

describe('ReplyReader', () => {
  test('opens, counts and keeps each part on arrival; the relay takes the events in order', async () => {
    const { reader, sealer, secret } = await pair();
    const parts = [
      sealer.seal(Buffer.from(`${chunk('')}\n${chunk('a')}`)),
      sealer.seal(Buffer.from(chunk(''))),
      sealer.seal(Buffer.from(chunk('b'))),
    ];
    for (const p of parts) reader.arrive(p);
    const end = sealer.seal(Buffer.from(tail), true).toString('base64');
    assert.equal(reader.completionTokens(1, end), 2 + SILENT_TOKENS_PER_CHOICE, 'two parts carry text');
    assert.deepEqual(reader.proof(end), [secret, ...parts, Buffer.from(end, 'base64')]);
    assert.deepEqual(
      [reader.next(), reader.next(), reader.next()].map((events) => events.map(String)),
      [[chunk(''), chunk('a')], [chunk('')], [chunk('b')]],
    );
    // The trailer's end is the one the bill carried: opened once, not again.
    assert.equal(reader.tail({ usage: ZERO, end }), tail);
    const expected = new ReplyHasher();
    for (const e of [chunk(''), chunk('a'), chunk(''), chunk('b'), tail]) expected.update(Buffer.from(e));
    assert.equal(reader.digest(), expected.digest());
  });

  test('a part that does not open is remembered at its place, and reported once', async () => {
    const failures: Error[] = [];
    const { reader, sealer } = await pair(true, true, (e) => failures.push(e));
    reader.arrive(sealer.seal(Buffer.from(chunk('a'))));
    const bad = sealer.seal(Buffer.from(chunk('b')));
    bad[bad.length - 1]! ^= 1;
    reader.arrive(bad);
    reader.arrive(sealer.seal(Buffer.from(chunk('c'))));
    assert.equal(failures.length, 1);
    assert.deepEqual(reader.next().map(String), [chunk('a')]);
    assert.throws(() => reader.next(), /did not open/);
    assert.equal(reader.completionTokens(1, undefined), 1 + SILENT_TOKENS_PER_CHOICE, 'only what opened');
    assert.equal(reader.proof(undefined)?.length, 4, 'the proof still holds every part as it came');
  });

  test('a whole reply is counted by its text, the end included', async () => {
    const { reader, sealer } = await pair(false);
    const body = JSON.stringify({ choices: [{ message: { content: 'Hi there' } }], pad: 'x'.repeat(300) });
    reader.arrive(sealer.seal(Buffer.from(body)));
    const end = sealer.seal(Buffer.alloc(0), true).toString('base64');
    assert.equal(reader.completionTokens(1, end), 8 + SILENT_TOKENS_PER_CHOICE);
    assert.equal(reader.whole().toString(), body);
    assert.equal(reader.tail({ usage: ZERO, end }), null);
  });

  test('no proof is kept without payments, nor past its cap', async () => {
    const { reader, sealer } = await pair(true, false);
    reader.arrive(sealer.seal(Buffer.from(chunk('a'))));
    assert.equal(reader.proof(undefined), null);
    const big = await pair(true, true);
    const huge = Buffer.from(chunk('y'.repeat(6 * 1024 * 1024)));
    for (let i = 0; i < 3; i++) big.reader.arrive(big.sealer.seal(huge));
    assert.equal(big.reader.proof(undefined), null, 'a reply past 16 MiB cannot be disputed');
    assert.equal(big.reader.next().length, 1, 'and is read all the same');
  });

  test('a sealed reply without its end fails at the tail', async () => {
    const { reader, sealer } = await pair();
    reader.arrive(sealer.seal(Buffer.from(chunk('a'))));
    assert.throws(() => reader.tail({ usage: ZERO }), /without its sealed end/);
  });
});

const ZERO = { promptTokens: 0, cachedTokens: 0, completionTokens: 0, reasoningTokens: 0 };
