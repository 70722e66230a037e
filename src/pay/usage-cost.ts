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
  const at = json.lastIndexOf(USAGE_KEY);
  if (at < 0) return json;
  const open = at + USAGE_KEY.length;
  const fields = `"prompt_cost":${cost.prompt},"completion_cost":${cost.completion},"total_cost":${cost.total}`;
  const sep = json[open] === '}' ? '' : ',';
  return `${json.slice(0, open)}${fields}${sep}${json.slice(open)}`;
}
