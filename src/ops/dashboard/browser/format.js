// Dashboard, browser side: formatting. Pure functions (no DOM), so node tests import them too.
// The files of this folder are plain ES modules that run as written; the page inlines them into one
// script (see dashboard-page.ts), so their top-level names must differ from file to file.

/** Text for HTML content or a quoted attribute. Every string from stats passes here: names come from peers. */
export function escapeHtml(value) {
  return String(value).replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const NANO_DIGITS = 9;

/**
 * Nanoton (a decimal integer string, as stats carry it) to TON, exactly: string and BigInt arithmetic,
 * never a float ('1500000000' → '1.5', '1' → '0.000000001'). Null when the input is not an integer.
 */
export function nanoToTon(nano) {
  const text = typeof nano === 'bigint' ? nano.toString() : String(nano ?? '').trim();
  if (!/^-?\d+$/.test(text)) return null;
  const value = BigInt(text);
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(NANO_DIGITS + 1, '0');
  const whole = digits.slice(0, -NANO_DIGITS);
  const fraction = digits.slice(-NANO_DIGITS).replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** A nanoton amount as HTML, labelled TON; the raw value (escaped) when it is not an integer string. */
export function tonHtml(nano) {
  if (nano === null || nano === undefined) return '<span class="muted">—</span>';
  const ton = nanoToTon(nano);
  if (ton === null) return escapeHtml(nano);
  return `<span class="ton" title="${escapeHtml(nano)} nanoton">${ton}&nbsp;<small>TON</small></span>`;
}

export function isNumber(v) {
  return typeof v === 'number' && Number.isFinite(v);
}

export function formatCount(n) {
  return isNumber(n) ? Math.round(n).toLocaleString('en-US') : '—';
}

/** A rate or a small measure with as many decimals as a glance needs. */
export function formatRate(x) {
  if (!isNumber(x)) return '—';
  if (x === 0) return '0';
  if (Math.abs(x) < 10) return x.toFixed(2);
  if (Math.abs(x) < 100) return x.toFixed(1);
  return Math.round(x).toLocaleString('en-US');
}

export function formatMs(ms) {
  if (!isNumber(ms)) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function formatUptime(seconds) {
  if (!isNumber(seconds)) return '—';
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

/** Wall-clock time of an epoch-ms instant, 24-hour. */
export function formatClock(epochMs) {
  if (!isNumber(epochMs)) return '—';
  return new Date(epochMs).toLocaleTimeString('en-GB', { hour12: false });
}

export function formatPercent(fraction) {
  return isNumber(fraction) ? `${(fraction * 100).toFixed(fraction < 0.1 ? 1 : 0)}%` : '—';
}

/** `billedNano` → `Billed`, `payoutsSigned` → `Payouts signed`. */
export function humanizeKey(key) {
  const words = String(key)
    .replace(/Nano(ton)?$/, '')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Keys the stats use for nanoton amounts. */
export function isNanoKey(key) {
  return /Nano(ton)?$/.test(String(key));
}

/**
 * A TON address as JSON carries it: a string, or an `@ton/core` Address serialised field by field
 * ({workChain, hash: Buffer-as-JSON}), shown in raw form `wc:hex`.
 */
export function addressText(a) {
  if (typeof a === 'string') return a;
  if (a && typeof a === 'object' && isNumber(a.workChain) && a.hash && Array.isArray(a.hash.data)) {
    return `${a.workChain}:${a.hash.data.map((b) => Number(b).toString(16).padStart(2, '0')).join('')}`;
  }
  return JSON.stringify(a);
}
