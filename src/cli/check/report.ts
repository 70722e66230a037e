/**
 * What `cocoon worker check` and `cocoon proxy check` find: a list of checks, each with a status and, for
 * a problem, the next thing to run. `fail` blocks the node (exit 1); `warn` does not (exit 0).
 */

export type CheckStatus = 'ok' | 'info' | 'warn' | 'fail';

export interface CheckItem {
  /** Which part of the node: attestation, chain, allow-lists, wallet, proxies, ports, contract. */
  section: string;
  /** What was checked (a short label: "image hash", "127.0.0.1:11001"). */
  name: string;
  status: CheckStatus;
  message: string;
  /** What to do about it: a concrete next command or step. */
  fix?: string;
  /** A stable reason code where there is one (`image_not_allowed`, `unreachable`, …). */
  code?: string;
}

export class CheckList {
  readonly items: CheckItem[] = [];

  add(item: CheckItem): CheckItem {
    this.items.push(item);
    return item;
  }

  get problems(): number {
    return this.items.filter((i) => i.status === 'fail').length;
  }

  get warnings(): number {
    return this.items.filter((i) => i.status === 'warn').length;
  }

  /** 1 when something blocks the node, else 0. */
  get exitCode(): 0 | 1 {
    return this.problems > 0 ? 1 : 0;
  }
}

/** Sections in the order they are shown (a role uses some of them). */
const SECTIONS = ['attestation', 'chain', 'allow-lists', 'wallet', 'proxies', 'ports', 'contract'];
const rank = (s: string) => (SECTIONS.includes(s) ? SECTIONS.indexOf(s) : SECTIONS.length);

const TAG: Record<CheckStatus, string> = { ok: 'ok  ', info: 'info', warn: 'WARN', fail: 'FAIL' };

/** The checks as text: grouped by section, aligned, fixes under their problem. */
export function renderChecks(head: string, list: CheckList, role: string): string {
  const sections: string[] = [];
  for (const i of list.items) if (!sections.includes(i.section)) sections.push(i.section);
  sections.sort((a, b) => rank(a) - rank(b));
  const width = Math.max(0, ...list.items.map((i) => i.name.length));
  let text = `${head}\n`;
  for (const s of sections) {
    text += `\n${s}\n`;
    for (const i of list.items.filter((x) => x.section === s)) {
      text += `  ${TAG[i.status]}  ${i.name.padEnd(width)}  ${i.message}\n`;
      if (i.fix) text += `  ${' '.repeat(4)}  ${' '.repeat(width)}  fix: ${i.fix}\n`;
    }
  }
  const p = list.problems;
  const w = list.warnings;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  text +=
    p > 0
      ? `\n${plural(p, 'problem')} block${p === 1 ? 's' : ''} this ${role}` +
        (w ? `, ${plural(w, 'warning')}` : '') +
        ' (exit 1)\n'
      : `\nno problem blocks this ${role}${w ? `; ${plural(w, 'warning')}` : ''} (exit 0)\n`;
  return text;
}
