// Dashboard, browser side: the last finished requests, newest first, errors highlighted. Pure.

import { escapeHtml, formatClock, formatCount, formatMs, formatUptime, isNumber, tonHtml } from './format.js';
import { countCell, emptyNote, oneOf, pill, table, textCell } from './widgets.js';

const OUTCOMES = ['ok', 'failed', 'cancelled', 'rejected'];

export function renderRecent(recent, now) {
  if (!Array.isArray(recent)) {
    return `<h2>Recent requests</h2>${emptyNote('This node does not report its recent requests.')}`;
  }
  const rows = recent.filter((r) => r !== null && typeof r === 'object');
  const errors = rows.filter((r) => r.outcome !== 'ok').length;
  const head =
    `<h2>Recent requests <span class="count">${formatCount(rows.length)}</span>` +
    `${errors > 0 ? ` ${pill(`${errors} not ok`, 'failed')}` : ''}</h2>`;
  if (rows.length === 0) return head + emptyNote('No request has finished yet.');
  const columns = [
    { head: 'Time', cell: (r) => `<span title="${escapeHtml(ago(r.at, now))}">${formatClock(r.at)}</span>` },
    { head: 'Outcome', cell: (r) => pill(String(r.outcome), oneOf(r.outcome, OUTCOMES, 'muted')) },
    {
      head: 'Status',
      cell: (r) => `${countCell(r.status)}${r.code ? ` <code>${escapeHtml(r.code)}</code>` : ''}`,
    },
    { head: 'Model', cell: (r) => textCell(r.model) },
    { head: 'Served by', cell: (r) => `<span class="name">${textCell(r.worker)}</span>` },
    { head: 'Duration', cell: (r) => formatMs(r.durationMs), className: 'num' },
    {
      head: 'Tokens in/out',
      cell: (r) => `${formatCount(r.promptTokens)} / ${formatCount(r.completionTokens)}`,
      className: 'num',
    },
    { head: 'Cost (TON)', cell: (r) => tonHtml(r.costNanoton), className: 'num' },
    { head: 'Tries', cell: (r) => countCell(r.attempts), className: 'num' },
    {
      head: 'Request',
      cell: (r) => `<code title="${escapeHtml(r.requestId)}">${shortId(r.requestId)}</code>`,
    },
    { head: 'Error', cell: (r) => textCell(r.message), className: 'message' },
  ];
  return head + table(columns, rows, (r) => `row-${oneOf(r.outcome, OUTCOMES, 'failed')}`);
}

function shortId(id) {
  const s = String(id ?? '');
  return escapeHtml(s.length > 14 ? `${s.slice(0, 12)}…` : s);
}

function ago(at, now) {
  if (!isNumber(at)) return '';
  return `${formatUptime((now - at) / 1000)} ago`;
}
