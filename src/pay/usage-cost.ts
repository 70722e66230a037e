/** What one request cost, as every reply's `usage` shows it (nanoton). */
export interface UsageCost {
  prompt: bigint;
  completion: bigint;
  total: bigint;
}

const USAGE_KEY = '"usage":{';

/**
 * Adds `prompt_cost`, `completion_cost` and `total_cost` to the `usage` object of an OpenAI JSON text
 * (a response or the final usage chunk), without parsing it: the engine's text is kept byte for byte.
 * Amounts are written as JSON integers, exactly.
 */
export function addCostToUsage(json: string, cost: UsageCost): string {
  let open: number;
  const at = json.lastIndexOf(USAGE_KEY);
  if (at >= 0) {
    open = at + USAGE_KEY.length;
  } else {
    // Not compact (pretty-printed, or Python's json.dumps): find the last `"usage" : {` the slow way.
    let m: RegExpExecArray | null = null;
    for (const x of json.matchAll(/"usage"\s*:\s*\{/g)) m = x;
    if (!m) return json;
    open = m.index + m[0].length;
  }
  const fields = `"prompt_cost":${cost.prompt},"completion_cost":${cost.completion},"total_cost":${cost.total}`;
  const sep = /^\s*\}/.test(json.slice(open, open + 64)) ? '' : ',';
  return `${json.slice(0, open)}${fields}${sep}${json.slice(open)}`;
}
