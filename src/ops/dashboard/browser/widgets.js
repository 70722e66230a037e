// Dashboard, browser side: small HTML building blocks shared by the sections. Pure (no DOM).

import { escapeHtml, formatCount, formatPercent, isNumber } from './format.js';

/** A coloured label. `kind` picks the colour and must be one of ours, never a value from stats. */
export function pill(text, kind) {
  return `<span class="pill pill-${kind}">${escapeHtml(text)}</span>`;
}

/** Picks `value` if it is in `allowed`, else `fallback`: data never becomes a class name unchecked. */
export function oneOf(value, allowed, fallback) {
  return allowed.includes(value) ? value : fallback;
}

/**
 * A table. `columns`: [{ head, cell(row) → HTML, className? }]; `rowClass(row)` → one of our class names.
 */
export function table(columns, rows, rowClass = () => '') {
  const head = columns.map((c) => `<th class="${c.className ?? ''}">${escapeHtml(c.head)}</th>`).join('');
  const body = rows
    .map((row) => {
      const cells = columns.map((c) => `<td class="${c.className ?? ''}">${c.cell(row)}</td>`).join('');
      return `<tr class="${rowClass(row)}">${cells}</tr>`;
    })
    .join('');
  return `<div class="table-wrap"><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`;
}

/** Only the columns whose `key` at least one row carries: fields newer nodes add appear when present. */
export function presentColumns(columns, rows) {
  return columns.filter((c) => !c.key || rows.some((r) => r && r[c.key] !== undefined));
}

export function textCell(v) {
  return v === null || v === undefined || v === '' ? '<span class="muted">—</span>' : escapeHtml(v);
}

export function countCell(v) {
  return isNumber(v) ? formatCount(v) : textCell(v);
}

/** Running requests against capacity, as a bar (SVG attributes, so no inline style the CSP would refuse). */
export function loadBar(running, max) {
  if (!isNumber(running)) return textCell(running);
  const capacity = isNumber(max) && max > 0 ? max : null;
  const percent = capacity ? Math.min(100, (running / capacity) * 100) : 0;
  const level = percent >= 100 ? 'full' : percent >= 75 ? 'high' : 'normal';
  return (
    `<span class="load"><svg class="bar bar-${level}" viewBox="0 0 100 6" preserveAspectRatio="none" ` +
    `aria-hidden="true"><rect class="bar-track" width="100" height="6"/>` +
    `<rect class="bar-fill" width="${percent.toFixed(1)}" height="6"/></svg>` +
    `<span class="load-text">${formatCount(running)}/${capacity === null ? '?' : formatCount(capacity)}</span></span>`
  );
}

/** Trust tier of a peer: hardware tiers green, `dev` amber. */
export function tierPill(tier) {
  if (tier === null || tier === undefined) return textCell(tier);
  return pill(tier, String(tier).startsWith('tee') ? 'ok' : tier === 'dev' ? 'dev' : 'muted');
}

export function boolPill(value, yes, no) {
  if (value === null || value === undefined) return textCell(value);
  return value ? pill(yes, 'ok') : pill(no, 'failed');
}

/** A worker's circuit breaker as the proxy sees it: `{state, failureRate, cooldownUntil}`. */
export function healthPill(health, now) {
  if (!health || typeof health !== 'object') return '';
  const state = oneOf(health.state, ['ok', 'cooling', 'probing'], 'unknown');
  let text = state === 'ok' ? 'healthy' : String(health.state);
  if (state === 'cooling' && isNumber(health.cooldownUntil)) {
    text += ` ${Math.max(0, Math.ceil((health.cooldownUntil - now) / 1000))}s`;
  }
  const kind = { ok: 'ok', cooling: 'failed', probing: 'probing', unknown: 'muted' }[state];
  const rate = isNumber(health.failureRate) && health.failureRate > 0;
  return (
    pill(text, kind) + (rate ? ` <span class="muted">${formatPercent(health.failureRate)} fail</span>` : '')
  );
}

/** A price coefficient (1000 = 1×). */
export function coefficientText(c) {
  return isNumber(c) ? `${Number((c / 1000).toFixed(3))}×` : textCell(c);
}

/** Model names from stats: an array, or one string joined with commas. */
export function listOf(v) {
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === 'string')
    return v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  return [];
}

export function emptyNote(text) {
  return `<p class="empty">${escapeHtml(text)}</p>`;
}

/** Rows of [label, HTML]. */
export function keyValues(rows) {
  const body = rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${v}</td></tr>`).join('');
  return `<table class="kv"><tbody>${body}</tbody></table>`;
}
