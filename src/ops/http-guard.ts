import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { BadRequestError, ForbiddenError } from '../errors.ts';

/**
 * What a local HTTP server checks before it looks at a request's path: who addressed it (Host) and from
 * which web page (Origin). A page the user happens to visit can make the browser send requests to
 * 127.0.0.1; these checks keep it from using the API.
 *
 * - **Host.** A page that rebinds its own DNS name to 127.0.0.1 reaches us as same-origin, so the browser
 *   lets it read our replies; but its requests still carry its name in `Host`. Only names that cannot be
 *   rebound are accepted: IP literals (the address we listen on, or any when we listen on all of them),
 *   `localhost` and `*.localhost` (browsers resolve those to loopback themselves), and names configured.
 * - **Origin.** A cross-origin page can still send "simple" requests (a text/plain POST, a form) without
 *   a preflight. Any request carrying an Origin other than our own is refused unless that origin is on the
 *   allow-list; an allowed origin gets CORS (preflight and response headers). A subresource fetch from
 *   another site (`Sec-Fetch-Site`, no Origin: an `<img>` or `<script>` pointed at us) is refused too.
 */
export interface HttpGuardOptions {
  /** The address the server listens on. */
  listenHost: string;
  /** Host names (without port) accepted besides IP literals and localhost. */
  allowedHosts?: readonly string[];
  /** Web origins (`scheme://host[:port]`) whose pages may call the API, with CORS. */
  allowedOrigins?: readonly string[];
}

/** Headers a response to an allowed cross-origin request carries. */
export type CorsHeaders = Record<string, string>;

const EXPOSED =
  'x-request-id, x-cocoon-proxy, x-cocoon-trust-tier, x-cocoon-worker-image, x-cocoon-model, x-cocoon-receipt, retry-after';
const PREFLIGHT_MAX_AGE_SECONDS = 600;
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);

export class HttpGuard {
  private readonly hosts: Set<string>;
  private readonly origins: Set<string>;
  private readonly anyIp: boolean;

  constructor(opts: HttpGuardOptions) {
    this.anyIp = WILDCARD_HOSTS.has(opts.listenHost);
    this.hosts = new Set(
      [opts.listenHost, ...(opts.allowedHosts ?? [])].map((h) => stripBrackets(h).toLowerCase()),
    );
    this.origins = new Set((opts.allowedOrigins ?? []).map((o) => o.toLowerCase().replace(/\/$/, '')));
  }

  /**
   * Refuses a request from a foreign Host or Origin (throws); returns the CORS headers its response needs
   * (none for same-origin and non-browser callers).
   */
  check(req: IncomingMessage): CorsHeaders {
    const host = this.checkHost(req);
    const origin = req.headers.origin;
    if (origin === undefined) {
      const site = req.headers['sec-fetch-site'];
      const crossSite = site === 'cross-site' || site === 'same-site';
      if (crossSite && req.headers['sec-fetch-mode'] !== 'navigate') {
        throw new ForbiddenError(
          'Requests from other web sites are refused by this Cocoon daemon.',
          'origin_not_allowed',
        );
      }
      return {};
    }
    const o = origin.toLowerCase();
    if (o === `http://${host}` || o === `https://${host}`) return {};
    if (!this.origins.has(o)) {
      throw new ForbiddenError(
        `Requests from the web origin ${short(origin)} are refused. If that page should use this API, ` +
          'add its origin to allowedOrigins.',
        'origin_not_allowed',
      );
    }
    return {
      'access-control-allow-origin': origin,
      vary: 'Origin',
      'access-control-expose-headers': EXPOSED,
    };
  }

  /**
   * Answers a CORS preflight (OPTIONS with Access-Control-Request-Method) for an allowed origin; true
   * when it handled the request. A preflight from any other origin is refused by `check` before this.
   */
  preflight(req: IncomingMessage, res: ServerResponse, cors: CorsHeaders, methods: string): boolean {
    if (req.method !== 'OPTIONS') return false;
    const headers: Record<string, string> = { ...cors, allow: `${methods}, OPTIONS` };
    if (cors['access-control-allow-origin'] && req.headers['access-control-request-method']) {
      headers['access-control-allow-methods'] = methods;
      headers['access-control-allow-headers'] =
        req.headers['access-control-request-headers'] ?? 'authorization, content-type';
      headers['access-control-max-age'] = String(PREFLIGHT_MAX_AGE_SECONDS);
      // Chrome asks before a public page may reach a private address (Private Network Access).
      if (req.headers['access-control-request-private-network'] === 'true') {
        headers['access-control-allow-private-network'] = 'true';
      }
    }
    res.writeHead(204, headers);
    res.end();
    return true;
  }

  /** The request's `Host` (name and port), refused unless it names us in a way DNS cannot rebind. */
  private checkHost(req: IncomingMessage): string {
    let count = 0;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2)
      if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') count++;
    // RFC 9112 §3.2: a request with no Host, or more than one, is a 400.
    if (count !== 1) {
      throw new BadRequestError(
        count === 0 ? 'The request has no Host header.' : 'The request has more than one Host header.',
        null,
        'invalid_host_header',
      );
    }
    const host = req.headers.host!.toLowerCase();
    const name = hostName(host);
    if (name === null) {
      throw new BadRequestError(`The Host header ${short(host)} is malformed.`, null, 'invalid_host_header');
    }
    if (!this.acceptsName(name)) {
      throw new ForbiddenError(
        `This daemon does not answer to the name ${short(name)} (a page rebinding its DNS name to this ` +
          'machine would). Use its IP address or localhost, or add the name to allowedHosts.',
        'host_not_allowed',
      );
    }
    return host;
  }

  private acceptsName(name: string): boolean {
    if (this.hosts.has(name)) return true;
    if (name === 'localhost' || name.endsWith('.localhost')) return true;
    const ip = isIP(name);
    if (ip === 0) return false;
    return this.anyIp || isLoopback(name);
  }
}

/** `example.com:80` → `example.com`, `[::1]:80` → `::1`; null if it is not a host[:port]. */
function hostName(host: string): string | null {
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/.exec(host);
  return m ? stripBrackets(m[1]!) : null;
}

function stripBrackets(h: string): string {
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.') || ip === '::ffff:127.0.0.1';
}

function short(v: string): string {
  const s = JSON.stringify(v);
  return s.length > 100 ? `${s.slice(0, 97)}..."` : s;
}
