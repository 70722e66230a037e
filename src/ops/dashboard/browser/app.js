// Dashboard, browser side: polls /jsonstats, keeps a bounded history, and updates the page. The only
// part that touches the DOM; everything it shows is built by the pure functions of the other files.

import { renderChart } from './chart.js';
import { formatClock, formatCount, formatMs, formatUptime } from './format.js';
import { isDevTrust, renderKpis, requestFigures } from './kpis.js';
import { renderMoney } from './money.js';
import { renderModels, renderNetwork } from './network.js';
import { renderRecent } from './recent.js';

const HISTORY_MS = 5 * 60 * 1000;
const DEFAULT_POLL_MS = 2000;

/** `?every=300` polls every 300 ms (tests); kept within 100 ms … 60 s. */
function pollInterval(search) {
  const every = Number(new URLSearchParams(search).get('every'));
  return Number.isFinite(every) && every > 0
    ? Math.min(60_000, Math.max(100, Math.round(every)))
    : DEFAULT_POLL_MS;
}

/** Successive polls' counters, for rates: oldest first, at most the last HISTORY_MS. */
class History {
  samples = [];

  record(t, f) {
    const last = this.samples.at(-1);
    // A restarted daemon counts from zero again: rates across the restart would be meaningless.
    if (last && f.total !== null && f.total < last.total) this.samples.length = 0;
    this.samples.push({
      t,
      total: f.total ?? 0,
      prompt: f.promptTokens ?? 0,
      completion: f.completionTokens ?? 0,
      inFlight: f.inFlight ?? 0,
    });
    while (this.samples.length > 2 && this.samples[0].t < t - HISTORY_MS) this.samples.shift();
  }

  /** Per-second change of `key` between successive samples. */
  rate(key) {
    const out = [];
    for (let i = 1; i < this.samples.length; i++) {
      const a = this.samples[i - 1];
      const b = this.samples[i];
      const seconds = (b.t - a.t) / 1000;
      if (seconds > 0) out.push({ t: b.t, v: Math.max(0, (b[key] - a[key]) / seconds) });
    }
    return out;
  }

  values(key) {
    return this.samples.map((s) => ({ t: s.t, v: s[key] }));
  }

  /** The window the charts span: what we have, at least ten polls' worth, at most HISTORY_MS. */
  span(now, pollMs) {
    const first = this.samples[0];
    return Math.min(HISTORY_MS, Math.max(10 * pollMs, first ? now - first.t : 0));
  }
}

const pollMs = pollInterval(location.search);
const history = new History();
const shown = new WeakMap();
let failures = 0;

function byId(id) {
  return document.getElementById(id);
}

/** Replaces an element's content only when it changed, so a selection or hover survives a poll. */
function setHtml(id, html) {
  const el = byId(id);
  if (shown.get(el) === html) return;
  shown.set(el, html);
  el.innerHTML = html;
}

function setText(id, text) {
  const el = byId(id);
  if (el.textContent !== text) el.textContent = text;
}

function showStats(stats, now) {
  const figures = requestFigures(stats);
  history.record(now, figures);
  const role = typeof stats.role === 'string' ? stats.role : 'node';
  const name = typeof stats.name === 'string' ? stats.name : '';
  setText('role', role);
  setText('name', name);
  document.title = `Cocoon ${role} ${name} — dashboard`;
  setText('uptime', `up ${formatUptime(stats.uptimeSeconds)}`);
  setText('trust', typeof stats.trust === 'string' ? stats.trust : 'trust unknown');
  const dev = isDevTrust(stats.trust);
  byId('trust').className = `chip ${dev ? 'chip-dev' : 'chip-hw'}`;
  byId('dev-banner').hidden = !dev;
  setHtml('kpis', renderKpis(figures));
  const spanMs = history.span(now, pollMs);
  const rps = { label: 'requests', kind: 'a', points: history.rate('total') };
  setHtml('chart-requests', renderChart({ title: 'Requests', unit: '/s', series: [rps], spanMs, now }));
  const completion = { label: 'completion', kind: 'b', points: history.rate('completion') };
  const prompt = { label: 'prompt', kind: 'c', points: history.rate('prompt') };
  setHtml(
    'chart-tokens',
    renderChart({ title: 'Tokens', unit: '/s', series: [completion, prompt], spanMs, now }),
  );
  const inFlight = { label: 'in flight', kind: 'd', points: history.values('inFlight') };
  const count = (v) => formatCount(v);
  setHtml(
    'chart-inflight',
    renderChart({ title: 'In flight', unit: 'requests', series: [inFlight], spanMs, now, format: count }),
  );
  setHtml('network', renderNetwork(stats, now));
  setHtml('models', renderModels(stats));
  setHtml('money', renderMoney(role, stats.payments));
  setHtml('recent', renderRecent(stats.recent, now));
}

/** `live`, `down` (the stats could not be fetched) or `broken` (they could not be shown). */
function setConnection(state, detail) {
  const el = byId('conn');
  el.className = `conn conn-${state}`;
  el.textContent =
    state === 'live' ? 'live' : state === 'down' ? `disconnected — retrying (${failures})` : 'display error';
  el.title = detail;
  document.body.classList.toggle('stale', state !== 'live');
}

async function fetchStats() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), Math.max(3 * pollMs, 3000));
  try {
    const res = await fetch('jsonstats', { cache: 'no-store', signal: abort.signal });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const stats = await res.json();
    if (stats === null || typeof stats !== 'object') throw new Error('stats are not an object');
    return stats;
  } finally {
    clearTimeout(timer);
  }
}

async function poll() {
  try {
    const stats = await fetchStats();
    failures = 0;
    const now = Date.now();
    try {
      showStats(stats, now);
      setConnection('live', `updated ${formatClock(now)}, every ${formatMs(pollMs)}`);
    } catch (err) {
      console.error(err);
      setConnection('broken', String(err));
    }
  } catch (err) {
    failures++;
    setConnection('down', String(err?.message ?? err));
  } finally {
    setTimeout(poll, pollMs);
  }
}

setText('every', formatMs(pollMs));
poll();
