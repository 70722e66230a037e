// Dashboard, browser side: the request figures every role reports, normalised, and their tiles. Pure.

import { formatCount, isNumber } from './format.js';

/** True when the node runs without hardware attestation (its `trust` field starts with `dev`). */
export function isDevTrust(trust) {
  return typeof trust === 'string' && /^dev\b/.test(trust);
}

/**
 * The request counters of any role in one shape. Clients and proxies report them as they are; a worker
 * calls in-flight `running` (older workers also called refusals `refusedBusy` and counted no successes,
 * derived here: succeeded = total − running − failed − cancelled).
 */
export function requestFigures(stats) {
  const r = stats && typeof stats.requests === 'object' && stats.requests ? stats.requests : {};
  const num = (v) => (isNumber(v) ? v : null);
  const inFlight = num(r.inFlight) ?? num(r.running);
  const total = num(r.total);
  const failed = num(r.failed);
  const cancelled = num(r.cancelled);
  const derived =
    total !== null && inFlight !== null
      ? Math.max(0, total - inFlight - (failed ?? 0) - (cancelled ?? 0))
      : null;
  return {
    inFlight,
    total,
    succeeded: num(r.succeeded) ?? derived,
    failed,
    cancelled,
    rejected: num(r.rejected) ?? num(r.refusedBusy),
    promptTokens: num(r.promptTokens),
    completionTokens: num(r.completionTokens),
  };
}

const KPI_TILES = [
  { key: 'inFlight', label: 'In flight', kind: 'live' },
  { key: 'total', label: 'Total requests', kind: 'plain' },
  { key: 'succeeded', label: 'Succeeded', kind: 'ok' },
  { key: 'failed', label: 'Failed', kind: 'failed' },
  { key: 'cancelled', label: 'Cancelled', kind: 'cancelled' },
  { key: 'rejected', label: 'Rejected', kind: 'rejected' },
  { key: 'promptTokens', label: 'Prompt tokens', kind: 'plain' },
  { key: 'completionTokens', label: 'Completion tokens', kind: 'plain' },
];

export function renderKpis(figures) {
  return KPI_TILES.map(
    (t) =>
      `<div class="kpi kpi-${t.kind}" id="kpi-${t.key}"><div class="kpi-label">${t.label}</div>` +
      `<div class="kpi-value">${formatCount(figures[t.key])}</div></div>`,
  ).join('');
}
