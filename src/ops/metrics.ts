import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Prometheus metrics (`GET /metrics`). Each node has its own registry, labelled with its role and name, so
 * several nodes in one process (tests, `cocoon local`) never mix their figures; the process's own metrics
 * (CPU, RSS, event-loop lag, GC) are collected once per process and served by every node.
 *
 * Request counters and latency histograms are updated as requests finish (a few hundred ns each); gauges
 * read the node's existing figures only when scraped, so nothing else touches the request path.
 */

let processRegistry: Registry | null = null;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: 'cocoon_' });
  }
  return processRegistry;
}

/** Error codes come from peers too: past this many distinct ones, the rest are counted as `other`. */
const MAX_CODES = 64;

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export type Outcome = 'ok' | 'failed' | 'cancelled' | 'rejected';

/** What a scraped metric reads: one value, or values by label. */
type Reading<L extends string> = number | [Partial<Record<L, string>>, number][];

function each<L extends string>(
  r: Reading<L>,
  put: (labels: Partial<Record<L, string>>, v: number) => void,
): void {
  if (typeof r === 'number') put({}, r);
  else for (const [labels, v] of r) put(labels, v);
}

export class NodeMetrics {
  readonly registry = new Registry();
  private readonly codes = new Set<string>();
  private readonly requests: Counter<'outcome' | 'code'>;
  private readonly duration: Histogram<'outcome'>;
  private readonly ttft: Histogram;
  private readonly tokens: Counter<'type'>;

  constructor(role: string, name: string) {
    this.registry.setDefaultLabels({ role, node: name });
    this.requests = this.counter('cocoon_requests_total', 'Inference requests by outcome and error code.', [
      'outcome',
      'code',
    ]);
    this.duration = new Histogram({
      name: 'cocoon_request_duration_seconds',
      help: 'Time from receiving a request to its last byte, by outcome.',
      labelNames: ['outcome'],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
    this.ttft = new Histogram({
      name: 'cocoon_time_to_first_token_seconds',
      help: 'Time from receiving a streamed request to its first output.',
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
    this.tokens = this.counter('cocoon_tokens_total', 'Tokens of finished requests.', ['type']);
  }

  counter<L extends string>(name: string, help: string, labelNames: L[] = []): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  /**
   * A gauge read from the node when scraped: `read` returns one value, or values by label (or a promise
   * of them, for figures that live on the chain).
   */
  gauge<L extends string>(
    name: string,
    help: string,
    read: () => Reading<L> | Promise<Reading<L>>,
    labelNames: L[] = [],
  ): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        const r = await read();
        this.reset();
        each(r, (labels, v) => this.set(labels, v));
      },
    });
  }

  /** A counter whose value the node already keeps (read when scraped, so it costs nothing meanwhile). */
  counterFrom<L extends string>(
    name: string,
    help: string,
    read: () => Reading<L>,
    labelNames: L[] = [],
  ): void {
    new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        each(read(), (labels, v) => this.inc(labels, v));
      },
    });
  }

  /** One finished request: its outcome, how long it took, its tokens. */
  finished(outcome: Outcome, code: string | null, seconds: number, prompt = 0, completion = 0): void {
    this.requests.inc({ outcome, code: this.code(code) });
    this.duration.observe({ outcome }, seconds);
    if (prompt > 0) this.tokens.inc({ type: 'prompt' }, prompt);
    if (completion > 0) this.tokens.inc({ type: 'completion' }, completion);
  }

  firstToken(seconds: number): void {
    this.ttft.observe(seconds);
  }

  private code(code: string | null): string {
    if (code === null) return '';
    if (this.codes.has(code)) return code;
    if (this.codes.size >= MAX_CODES) return 'other';
    this.codes.add(code);
    return code;
  }

  async text(): Promise<string> {
    return `${await processMetrics().metrics()}\n${await this.registry.metrics()}`;
  }
}

/** Serves `GET /metrics` in Prometheus' text format; returns true when it handled the request. */
export function serveMetrics(
  req: IncomingMessage,
  res: ServerResponse,
  metrics: NodeMetrics | null,
  headers: Record<string, string> = {},
): boolean {
  if (!metrics || req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') return false;
  metrics.text().then(
    (body) => {
      res.writeHead(200, { ...headers, 'content-type': metrics.registry.contentType });
      res.end(body);
    },
    (err) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`metrics failed: ${(err as Error).message}`);
    },
  );
  return true;
}

/**
 * A chain read for a gauge, at most once per `ttlMs` however often Prometheus scrapes; a failed read keeps
 * the last value (the chain being slow must not break the scrape).
 */
export function cachedRead<T>(read: () => Promise<T>, ttlMs = 15_000): () => Promise<T | null> {
  let value: T | null = null;
  let at = 0;
  return async () => {
    if (Date.now() - at < ttlMs) return value;
    at = Date.now();
    try {
      value = await read();
    } catch {
      // keep the last value
    }
    return value;
  };
}

/** Nanoton as TON for a gauge (display only: the exact figures are the bigint ones in the ledger). */
export function tonGauge(nano: bigint): number {
  return Number(nano) / 1e9;
}
