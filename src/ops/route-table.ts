import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CorsHeaders } from './http-guard.ts';

/** What a route is given besides the request: its path (query stripped) and the CORS headers to send. */
export interface RouteContext {
  path: string;
  cors: CorsHeaders;
}

export interface Route {
  methods: readonly string[];
  /** A page a browser opens (stats, dashboard, metrics): the API key may come as HTTP Basic too. */
  page?: boolean;
  handle(req: IncomingMessage, res: ServerResponse, ctx: RouteContext): Promise<void> | void;
}

/** Routes by exact path, then by longest prefix (`/v1/models/` for `/v1/models/{id}`). */
export class RouteTable {
  private readonly exact = new Map<string, Route>();
  private readonly prefixes: [string, Route][] = [];

  add(path: string, route: Route): this {
    this.exact.set(path, route);
    return this;
  }

  addPrefix(prefix: string, route: Route): this {
    this.prefixes.push([prefix, route]);
    this.prefixes.sort((a, b) => b[0].length - a[0].length);
    return this;
  }

  find(path: string): Route | undefined {
    const route = this.exact.get(path);
    if (route) return route;
    for (const [prefix, r] of this.prefixes) if (path.startsWith(prefix)) return r;
    return undefined;
  }
}

/** The request's path without its query string. */
export function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
