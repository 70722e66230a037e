// Dashboard, browser side: earnings and spending. Amounts arrive as nanoton decimal strings (keys ending
// in `Nano`) and are shown in TON exactly (see nanoToTon); nothing here does arithmetic on floats. Pure.

import {
  addressText,
  escapeHtml,
  formatCount,
  humanizeKey,
  isNanoKey,
  isNumber,
  nanoToTon,
  tonHtml,
} from './format.js';
import { emptyNote, keyValues, table, textCell } from './widgets.js';

/** What each amount means, by the key the stats use; other keys are labelled from their name. */
const MONEY_LABELS = {
  billedNano: 'Billed to clients',
  unpaidNano: 'Bills left unpaid',
  unredeemedNano: 'Authorised, not yet redeemed on-chain',
  signedNano: 'Earned (payouts signed by the proxy)',
  paidNano: 'Redeemed on-chain',
  spentNano: 'Spent',
  authorisedNano: 'Authorised to the proxy',
  depositNano: 'Deposit',
  stakeNano: 'Stake',
  balanceNano: 'Balance',
};

/** The headline figure of each role: what a proxy or worker earns, what a client spends. */
const HEADLINE = {
  proxy: { key: 'billedNano', label: 'Earned (billed to clients)' },
  worker: { key: 'signedNano', label: 'Earned (signed payouts)' },
  client: { key: 'spentNano', label: 'Spent' },
};

function moneyLabel(key) {
  return MONEY_LABELS[key] ?? humanizeKey(key);
}

/** Exact sum of nanoton strings (BigInt); null when none is an integer string. */
function sumNano(values) {
  let sum = null;
  for (const v of values) {
    if (nanoToTon(v) === null) continue;
    sum = (sum ?? 0n) + BigInt(String(v).trim());
  }
  return sum === null ? null : sum.toString();
}

function moneyCell(key, value) {
  if (isNanoKey(key)) return tonHtml(value);
  if (key === 'contract' || key === 'address')
    return `<code class="addr">${escapeHtml(addressText(value))}</code>`;
  if (isNumber(value)) return formatCount(value);
  if (value !== null && typeof value === 'object') return `<code>${escapeHtml(JSON.stringify(value))}</code>`;
  return textCell(value);
}

export function renderMoney(role, payments) {
  const head = '<h2>Money</h2>';
  if (payments === undefined || payments === null || typeof payments === 'string') {
    return (
      `${head}<div class="free"${payments ? ` title="${escapeHtml(payments)}"` : ''}>` +
      '<div class="free-title">Free service</div><div class="muted">Payments are off on this node.</div></div>'
    );
  }
  const rows = (Array.isArray(payments) ? payments : [payments]).filter((r) => r && typeof r === 'object');
  const headline = HEADLINE[role];
  let summary = '';
  if (headline && rows.some((r) => headline.key in r)) {
    const total = sumNano(rows.map((r) => r[headline.key]));
    summary = `<div class="money-headline"><div class="kpi-label">${escapeHtml(headline.label)}</div><div class="money-value">${tonHtml(total)}</div></div>`;
  }
  const note = '<p class="sub">Amounts in TON, exact to the nanoton (hover for the raw figure).</p>';
  if (Array.isArray(payments)) {
    if (rows.length === 0) return `${head}${note}${emptyNote('No payment channel yet.')}`;
    const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    const columns = keys.map((k) => ({
      head: isNanoKey(k) ? `${moneyLabel(k)} (TON)` : moneyLabel(k),
      cell: (r) => moneyCell(k, r[k]),
      className: isNanoKey(k) ? 'num' : '',
    }));
    return head + summary + note + table(columns, rows);
  }
  const kv = Object.entries(payments).map(([k, v]) => [
    isNanoKey(k) ? `${moneyLabel(k)} (TON)` : moneyLabel(k),
    moneyCell(k, v),
  ]);
  return head + summary + note + keyValues(kv);
}
