// Dashboard, browser side: who this node is connected to (a proxy's workers, a worker's or a client's
// proxies) and the models it routes or serves. Pure.

import { escapeHtml, formatCount, formatMs, isNumber } from './format.js';
import {
  boolPill,
  coefficientText,
  countCell,
  emptyNote,
  healthPill,
  keyValues,
  listOf,
  loadBar,
  pill,
  presentColumns,
  table,
  textCell,
  tierPill,
} from './widgets.js';

export function renderNetwork(stats, now) {
  if (Array.isArray(stats.workers)) return renderWorkers(stats, now);
  return renderProxies(proxyLinks(stats));
}

/** A client's proxies: its `proxies` list, or before it had one, the single link in `connections`. */
function proxyLinks(stats) {
  if (Array.isArray(stats.proxies)) return stats.proxies;
  const c = stats.connections;
  if (c && typeof c === 'object' && 'proxy' in c) {
    return [
      {
        address: c.proxy,
        connected: c.connected,
        tier: c.proxyTier,
        connects: c.connects,
        lastError: c.lastError,
      },
    ];
  }
  return [];
}

function renderWorkers(stats, now) {
  const workers = stats.workers;
  const c = stats.connections ?? {};
  const head =
    `<h2>Workers <span class="count">${formatCount(workers.length)}</span></h2>` +
    `<p class="sub">${formatCount(c.workers)} worker and ${formatCount(c.clients)} client connections` +
    `${renderRefusals(stats.refusals)}</p>`;
  if (workers.length === 0) return head + emptyNote('No worker is connected.');
  const columns = presentColumns(
    [
      { head: 'Worker', cell: (w) => `<span class="name">${textCell(w.name)}</span>` },
      { head: 'Models', cell: (w) => textCell(listOf(w.models).join(', ')) },
      { head: 'Tier', cell: (w) => tierPill(w.tier) },
      {
        head: 'State',
        cell: (w) =>
          `${w.enabled === false ? pill('disabled', 'muted') : pill('enabled', 'ok')} ${healthPill(w.health, now)}`,
      },
      { head: 'Price', cell: (w) => coefficientText(w.coefficient), className: 'num' },
      { head: 'Load', cell: (w) => loadBar(w.running, w.maxConcurrent) },
      { head: 'Succeeded', cell: (w) => countCell(w.succeeded), className: 'num' },
      { head: 'Failed', cell: (w) => countCell(w.failed), className: 'num' },
      { head: 'Avg latency', cell: (w) => formatMs(w.avgQueryMs), className: 'num' },
    ],
    workers,
  );
  const rowClass = (w) => (w.health && w.health.state === 'cooling' ? 'row-failed' : '');
  return head + table(columns, workers, rowClass);
}

function renderRefusals(refusals) {
  if (!refusals || typeof refusals !== 'object') return '';
  const entries = Object.entries(refusals).filter(([, n]) => isNumber(n) && n > 0);
  if (entries.length === 0) return '';
  return ` · refused: ${entries.map(([code, n]) => `${pill(code, 'rejected')} ${formatCount(n)}`).join(' ')}`;
}

function renderProxies(proxies) {
  const head = `<h2>Proxies <span class="count">${formatCount(proxies.length)}</span></h2>`;
  if (proxies.length === 0) return head + emptyNote('No proxy configured.');
  const columns = presentColumns(
    [
      { head: 'Proxy', cell: (p) => `<span class="name">${textCell(p.address)}</span>` },
      { head: 'Link', cell: (p) => boolPill(p.connected, 'connected', 'down') },
      { head: 'Tier', key: 'tier', cell: (p) => tierPill(p.tier) },
      { head: 'Health', key: 'healthy', cell: (p) => boolPill(p.healthy, 'healthy', 'unhealthy') },
      { head: 'Latency', key: 'latencyMs', cell: (p) => formatMs(p.latencyMs), className: 'num' },
      { head: 'In flight', key: 'inFlight', cell: (p) => countCell(p.inFlight), className: 'num' },
      { head: 'Connects', key: 'connects', cell: (p) => countCell(p.connects), className: 'num' },
      { head: 'Last error', key: 'lastError', cell: (p) => textCell(p.lastError), className: 'message' },
    ],
    proxies,
  );
  return head + table(columns, proxies, (p) => (p.connected === false ? 'row-failed' : ''));
}

/** The models a proxy routes (from its workers) or a worker serves, with their trust tiers. */
export function renderModels(stats) {
  if (Array.isArray(stats.workers)) return renderRoutedModels(stats.workers);
  if (stats.role === 'worker') {
    const rows = [
      ['Models', escapeHtml(listOf(stats.models).join(', ') || '—')],
      ['Backend', textCell(stats.backend)],
      ['Routing', boolPill(stats.enabled, 'enabled', 'disabled')],
      ['Price coefficient', coefficientText(stats.coefficient)],
      ['Max concurrent', countCell(stats.maxConcurrent)],
      ['Trust', textCell(stats.trust)],
    ];
    return `<h2>Serving</h2>${keyValues(rows)}`;
  }
  const proxies = proxyLinks(stats);
  const rows = [
    ['OpenAI API', stats.api ? `<code>${escapeHtml(stats.api)}</code>` : textCell(null)],
    ['Proxy tiers', proxies.map((p) => tierPill(p.tier)).join(' ') || textCell(null)],
    ['Trust', textCell(stats.trust)],
  ];
  return `<h2>Access</h2>${keyValues(rows)}`;
}

function renderRoutedModels(workers) {
  const byModel = new Map();
  for (const w of workers) {
    for (const name of listOf(w.models)) {
      const m = byModel.get(name) ?? {
        name,
        workers: 0,
        enabled: 0,
        tiers: new Set(),
        running: 0,
        capacity: 0,
      };
      m.workers++;
      if (w.enabled !== false) m.enabled++;
      if (w.tier) m.tiers.add(String(w.tier));
      if (isNumber(w.running)) m.running += w.running;
      if (isNumber(w.maxConcurrent)) m.capacity += w.maxConcurrent;
      byModel.set(name, m);
    }
  }
  const models = [...byModel.values()].sort((a, b) => a.name.localeCompare(b.name));
  const head = `<h2>Models &amp; trust tiers</h2>`;
  if (models.length === 0) return head + emptyNote('No model is served right now.');
  return (
    head +
    table(
      [
        { head: 'Model', cell: (m) => `<span class="name">${escapeHtml(m.name)}</span>` },
        {
          head: 'Workers',
          cell: (m) => `${formatCount(m.enabled)}/${formatCount(m.workers)}`,
          className: 'num',
        },
        { head: 'Tiers', cell: (m) => [...m.tiers].map(tierPill).join(' ') },
        { head: 'Load', cell: (m) => loadBar(m.running, m.capacity) },
      ],
      models,
    )
  );
}
