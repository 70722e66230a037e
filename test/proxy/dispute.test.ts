import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { type E2EKey, generateE2EKey } from '../../src/attest/e2e-key.ts';
import { SILENT_TOKENS_PER_CHOICE } from '../../src/protocol/observed-output.ts';
import { sealedRequestEnc } from '../../src/protocol/sealing/index.ts';
import { type DisputeTerms, judgeDispute, RelayedReply, type Verdict } from '../../src/proxy/dispute.ts';
import { sealedPair } from '../protocol/sealed-pair.ts';

/**
 * The proxy's ruling on a client's dispute (src/proxy/dispute.ts), on real sealed replies: the client's
 * proof must be exactly the parts the proxy relayed, opened by the secret it reveals, and the bill must
 * claim more completion tokens than they carry. Anything else is the client's loss.
 */
const chunk = (content: string) => JSON.stringify({ choices: [{ index: 0, delta: { content } }] });
const usageChunk = JSON.stringify({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 21 } });

let key: E2EKey;
before(async () => {
  key = await generateE2EKey();
});

interface Sealed {
  secret: Buffer;
  enc: Buffer;
  parts: Buffer[];
}

/** A reply sealed by the real worker side: `parts` (each a run of events), then the end if given. */
async function sealedReply(parts: string[][], end: string | null | undefined): Promise<Sealed> {
  const { client, worker } = await sealedPair(key);
  const sealed = parts.map((events) => worker.reply.seal(Buffer.from(events.join('\n'))));
  if (end !== undefined) sealed.push(worker.reply.seal(Buffer.from(end ?? ''), true));
  return { secret: client.secret, enc: sealedRequestEnc(client.sealed), parts: sealed };
}

function termsFor(relayed: Buffer[], enc: Buffer, billed: number, stream = true): DisputeTerms {
  const record = new RelayedReply();
  for (const p of relayed) record.add(p);
  return { relayed: record.seal(), enc, stream, choices: 1, billed };
}

async function* proof(...parts: Buffer[]): AsyncIterable<Buffer> {
  yield* parts;
}

const rule = (r: Sealed, billed: number, shown: Buffer[] = [r.secret, ...r.parts], stream = true) =>
  judgeDispute(proof(...shown), termsFor(r.parts, r.enc, billed, stream));

function rejectedFor(v: Verdict, why: RegExp): void {
  assert.equal(v.upheld, false);
  if (!v.upheld) assert.match(v.reason, why);
}

/** One token of text and twenty empty parts, each sealed alone: the envelope says 21, the text 1. */
const padded = () =>
  sealedReply([[chunk('Hello')], ...Array.from({ length: 20 }, () => [chunk('')])], usageChunk);

describe('dispute: the proxy rules on a sealed reply', () => {
  test('a padded stream billed by its envelope: upheld, counted as the text', async () => {
    const v = await rule(await padded(), 21);
    assert.deepEqual(v, { upheld: true, counted: 1 + SILENT_TOKENS_PER_CHOICE });
  });

  test('a bill within what the text carries: rejected', async () => {
    rejectedFor(await rule(await padded(), 1 + SILENT_TOKENS_PER_CHOICE), /within/);
  });

  test('events a part coalesces count one by one', async () => {
    const r = await sealedReply([[chunk(''), chunk('a'), chunk('b')], [chunk('c')]], usageChunk);
    rejectedFor(await rule(r, 3 + SILENT_TOKENS_PER_CHOICE), /within/);
    assert.equal((await rule(r, 4 + SILENT_TOKENS_PER_CHOICE)).upheld, true);
  });

  test('a changed part: rejected, whatever it would open to', async () => {
    const r = await padded();
    const changed = Buffer.from(r.parts[3]!);
    changed[changed.length - 1]! ^= 1;
    const shown = [r.secret, ...r.parts.slice(0, 3), changed, ...r.parts.slice(4)];
    rejectedFor(await rule(r, 21, shown), /not those relayed/);
  });

  test('a part left out, or one added: rejected', async () => {
    const r = await padded();
    rejectedFor(await rule(r, 21, [r.secret, ...r.parts.slice(1)]), /not those relayed/);
    rejectedFor(await rule(r, 21, [r.secret, ...r.parts, r.parts[0]!]), /more parts/);
  });

  test('a secret that does not open the first part, or none at all: rejected', async () => {
    const r = await padded();
    rejectedFor(await rule(r, 21, [randomBytes(32), ...r.parts]), /first part/);
    rejectedFor(await rule(r, 21, [randomBytes(31), ...r.parts]), /secret of 31 bytes/);
    rejectedFor(await rule(r, 21, []), /no secret/);
  });

  test("another reply's secret: rejected", async () => {
    const r = await padded();
    const other = await padded();
    rejectedFor(await rule(r, 21, [other.secret, ...r.parts]), /first part/);
  });

  test("parts that stop opening after the first are the worker's: they count for nothing", async () => {
    const good = await sealedReply([[chunk('Hi')]], undefined);
    const junk = Array.from({ length: 20 }, () => randomBytes(good.parts[0]!.length));
    const r = { ...good, parts: [...good.parts, ...junk] };
    assert.deepEqual(await rule(r, 21), { upheld: true, counted: 1 + SILENT_TOKENS_PER_CHOICE });
  });

  test('a stream cut before its end (no last part) is judged on what was relayed', async () => {
    const r = await sealedReply(
      [[chunk('Hello')], ...Array.from({ length: 10 }, () => [chunk('')])],
      undefined,
    );
    assert.equal((await rule(r, 11)).upheld, true);
  });

  test('a whole reply padded with a field that is no output: upheld, counted by its text', async () => {
    const body = JSON.stringify({
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' } }],
      padding: 'x'.repeat(5000),
    });
    const r = await sealedReply([[body]], null);
    const counted = 2 + SILENT_TOKENS_PER_CHOICE;
    assert.deepEqual(await rule(r, 5000, undefined, false), { upheld: true, counted });
    rejectedFor(await rule(r, counted, undefined, false), /within/);
  });
});
