import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { escapeHtml } from '../stats-page.ts';

/**
 * `/dashboard`: one self-contained HTML document (inline CSS and JS, no external asset, no build step)
 * that polls `/jsonstats` and draws the node's figures, network, money and recent requests live.
 *
 * The browser code is plain ES modules in `browser/` (so node tests import its pure parts as they are).
 * The page inlines them, dependencies first and `app.js` last, into one function scope: their imports
 * of each other become the shared scope, their `export` marks are dropped. The content-security-policy
 * allows that one script and the one style, by hash, and nothing else.
 */
const BROWSER_MODULES = [
  'format.js',
  'widgets.js',
  'kpis.js',
  'network.js',
  'money.js',
  'recent.js',
  'chart.js',
  'app.js',
];

const SIBLING_IMPORT = /^import \{[^}]*\} from '\.\/([\w-]+\.js)';\n/gm;

/** One module's source as a part of the shared script. */
function inlineModule(file: string, source: string): string {
  const body = source.replace(SIBLING_IMPORT, (_, from: string) => {
    if (!BROWSER_MODULES.includes(from)) throw new Error(`dashboard module ${file} imports unknown ${from}`);
    return '';
  });
  if (/^(import|export (default|\{|\*))/m.test(body)) {
    throw new Error(
      `dashboard module ${file}: only sibling imports and 'export function|const|class' inline`,
    );
  }
  return body.replace(/^export /gm, '');
}

export interface DashboardPage {
  html: string;
  /** The `content-security-policy` header the page needs: its own script and style, fetches to itself. */
  csp: string;
}

interface Assets {
  script: string;
  style: string;
  csp: string;
}

let assets: Assets | null = null;

/** Read once, on the first request: a daemon that nobody opens the dashboard of pays nothing. */
function loadAssets(): Assets {
  if (assets) return assets;
  const read = (file: string) => readFileSync(new URL(file, import.meta.url), 'utf8');
  const modules = BROWSER_MODULES.map((f) => inlineModule(f, read(`./browser/${f}`)));
  const script = `(() => {\n'use strict';\n${modules.join('\n')}\n})();\n`;
  const style = read('./dashboard.css');
  // The page inlines them: a closing tag inside would end the element early.
  if (/<\/(script|style)/i.test(script + style))
    throw new Error('dashboard assets may not contain a closing tag');
  const csp = [
    "default-src 'none'",
    `script-src ${sha256Source(script)}`,
    `style-src ${sha256Source(style)}`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  assets = { script, style, csp };
  return assets;
}

function sha256Source(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

export function renderDashboardPage(title: string): DashboardPage {
  const { script, style, csp } = loadAssets();
  const t = escapeHtml(title);
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${t} — dashboard</title>
<link rel="icon" href="data:,">
<style>${style}</style>
</head><body>
<header class="top">
  <div class="title"><span class="role" id="role">…</span><h1 id="name">${t}</h1></div>
  <div class="meta"><span class="chip" id="uptime"></span><span class="chip" id="trust"></span><span class="conn" id="conn">connecting…</span></div>
</header>
<div class="banner" id="dev-banner" role="alert" hidden><strong>Dev trust mode:</strong> software attestation, no TEE.
Nothing on this network is protected by hardware; use it for development only, never with real data.</div>
<main>
  <section class="kpis" id="kpis" aria-label="Request figures"></section>
  <section class="charts">
    <div class="card" id="chart-requests"></div>
    <div class="card" id="chart-tokens"></div>
    <div class="card" id="chart-inflight"></div>
  </section>
  <section class="card" id="network"></section>
  <div class="grid2">
    <section class="card" id="models"></section>
    <section class="card" id="money"></section>
  </div>
  <section class="card" id="recent"></section>
</main>
<footer>Polls <a href="jsonstats">/jsonstats</a> every <span id="every"></span> and keeps the last 5 minutes
for the charts · <a href="stats">/stats</a></footer>
<script>${script}</script>
</body></html>`;
  return { html, csp };
}
