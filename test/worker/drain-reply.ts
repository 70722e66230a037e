import assert from 'node:assert/strict';
import type { TokenUsage } from '../../src/protocol/inference.ts';
import type { ReplyPart } from '../../src/worker/backend.ts';

/**
 * Runs a backend's reply to its end: every JSON object the caller would see, in order (the whole
 * response or the usage chunk included), and the usage it reports. Checks the part contract on the way:
 * one `final`, last.
 */
export async function drainReply<Json = Record<string, unknown>>(
  gen: AsyncGenerator<ReplyPart, void, void>,
): Promise<{ out: Json[]; usage: TokenUsage }> {
  const out: Json[] = [];
  let usage: TokenUsage | null = null;
  for await (const part of gen) {
    assert.equal(usage, null, 'a part after the final one');
    if (part.type === 'final') usage = part.usage;
    if (part.json !== null) out.push(JSON.parse(part.json));
  }
  assert.ok(usage, 'the reply ended without its final part');
  return { out, usage };
}
