import type { Serving } from '../protocol/messages.ts';
import type { Receipt } from '../protocol/receipt.ts';

/**
 * What the caller is shown about who served its request — the worker's proved trust tier, its measured
 * image and the model identity — in response headers and in a `cocoon` field of the final JSON object.
 */

export function servingHeaders(s: Serving | null | undefined): Record<string, string> {
  if (!s) return {};
  return {
    'x-cocoon-trust-tier': s.tier,
    'x-cocoon-worker-image': s.image,
    'x-cocoon-model': s.model,
  };
}

function servingJson(s: Serving, receipt: Receipt | undefined): string {
  return JSON.stringify({
    trust_tier: s.tier,
    worker_image: s.image,
    model: s.model,
    worker: s.worker,
    ...(receipt ? { receipt } : {}),
  });
}

/**
 * Adds `"cocoon":{…}` (who served, and the worker's receipt) as the last field of a JSON object text,
 * keeping the rest byte for byte.
 */
export function addServing(json: string, s: Serving | null | undefined, receipt?: Receipt): string {
  if (!s) return json;
  const end = json.lastIndexOf('}');
  if (end < 0) return json;
  const empty = /^\s*\{\s*$/.test(json.slice(0, end));
  return `${json.slice(0, end)}${empty ? '' : ','}"cocoon":${servingJson(s, receipt)}${json.slice(end)}`;
}
