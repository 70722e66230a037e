// Dashboard, browser side: time-series line charts drawn as inline SVG. Pure (returns HTML).

import { escapeHtml, formatRate, formatUptime } from './format.js';

const CHART_WIDTH = 300;
const CHART_HEIGHT = 100;

/** A round upper bound for the y axis: 1, 2 or 5 × 10ⁿ. */
function niceCeiling(v) {
  if (!(v > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5]) if (v <= m * power) return m * power;
  return 10 * power;
}

/** The y axis's top, a round number: printed without float noise or padding zeros. */
function axisLabel(v) {
  return v.toLocaleString('en-US', { maximumFractionDigits: 6 });
}

/**
 * A chart card's content. `series`: [{ label, kind, points: [{ t, v }] }], drawn over the time window
 * [now − spanMs, now]; the first series is the headline (its last value shown large, its area filled).
 */
export function renderChart({ title, unit, series, spanMs, now, format = formatRate }) {
  const values = series.flatMap((s) => s.points.map((p) => p.v));
  const top = niceCeiling(Math.max(0, ...values) * 1.05);
  const x = (t) => (((t - (now - spanMs)) / spanMs) * CHART_WIDTH).toFixed(1);
  const y = (v) => (CHART_HEIGHT - 2 - (v / top) * (CHART_HEIGHT - 4)).toFixed(1);
  const grid = [0.25, 0.5, 0.75]
    .map((f) => `<line class="grid" x1="0" x2="${CHART_WIDTH}" y1="${y(top * f)}" y2="${y(top * f)}"/>`)
    .join('');
  const lines = series
    .map((s, i) => {
      if (s.points.length < 2) return '';
      const coords = s.points.map((p) => `${x(p.t)},${y(p.v)}`).join(' ');
      const first = s.points[0];
      const last = s.points[s.points.length - 1];
      const area =
        i === 0
          ? `<polygon class="area area-${s.kind}" points="${x(first.t)},${y(0)} ${coords} ${x(last.t)},${y(0)}"/>`
          : '';
      return `${area}<polyline class="line line-${s.kind}" points="${coords}"/>`;
    })
    .join('');
  const headline = series[0];
  const latest = headline.points.at(-1);
  const legend =
    series.length > 1
      ? `<div class="chart-legend">${series
          .map((s) => {
            const v = s.points.at(-1);
            return `<span class="key key-${s.kind}">${escapeHtml(s.label)} ${v ? format(v.v) : '—'}</span>`;
          })
          .join('')}</div>`
      : '';
  const waiting = headline.points.length < 2 ? '<span class="chart-wait">collecting…</span>' : '';
  return (
    `<div class="chart-head"><h3>${escapeHtml(title)}</h3><div class="chart-now">` +
    `<span class="chart-value">${latest ? format(latest.v) : '—'}</span> <span class="unit">${escapeHtml(unit)}</span>` +
    `</div></div>${legend}<div class="chart-plot"><span class="chart-top">${axisLabel(top)}</span>` +
    `<svg class="chart" viewBox="0 0 ${CHART_WIDTH} ${CHART_HEIGHT}" preserveAspectRatio="none" role="img" ` +
    `aria-label="${escapeHtml(title)}" data-points="${headline.points.length}">${grid}${lines}</svg>${waiting}</div>` +
    `<div class="chart-axis"><span>−${formatUptime(spanMs / 1000)}</span><span>now</span></div>`
  );
}
