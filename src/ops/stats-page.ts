/**
 * `/stats`: the same figures as `/jsonstats`, rendered as a small self-contained HTML page (no scripts,
 * no external assets) that refreshes itself.
 */
export function renderStatsPage(title: string, stats: unknown): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>${escapeHtml(title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:.25rem 0}
td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3;font-weight:600}
.warn{background:#fff3cd;border:1px solid #e0c36c;padding:.5rem;display:inline-block}
</style></head>
<body><h1>${escapeHtml(title)}</h1>
${render(stats)}
<p><a href="/dashboard">Live dashboard</a> · <a href="/jsonstats">JSON</a></p>
</body></html>`;
}

function render(v: unknown): string {
  if (v === null || v === undefined) return '<i>—</i>';
  if (Array.isArray(v)) {
    if (v.length === 0) return '<i>none</i>';
    if (v.every((x) => x && typeof x === 'object' && !Array.isArray(x))) {
      const cols = [...new Set(v.flatMap((x) => Object.keys(x as object)))];
      const head = cols.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
      const rows = v
        .map(
          (x) =>
            `<tr>${cols.map((c) => `<td>${render((x as Record<string, unknown>)[c])}</td>`).join('')}</tr>`,
        )
        .join('');
      return `<table><tr>${head}</tr>${rows}</table>`;
    }
    return v.map(render).join(', ');
  }
  if (typeof v === 'object') {
    const rows = Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `<tr><th>${escapeHtml(k)}</th><td>${render(x)}</td></tr>`)
      .join('');
    return `<table>${rows}</table>`;
  }
  return escapeHtml(String(v));
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
