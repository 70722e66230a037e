import type { CocoonError } from '../errors.ts';
import type { TokenUsage } from '../protocol/inference.ts';
import type { Logger } from './log.ts';
import type { NodeMetrics, Outcome } from './metrics.ts';
import type { RecentRequests } from './recent-requests.ts';

/** The figures by outcome every hop keeps (client, proxy, worker), as `/jsonstats` shows them. */
export interface OutcomeCounters {
  succeeded: number;
  failed: number;
  cancelled: number;
  rejected: number;
  promptTokens: number;
  completionTokens: number;
}

/** One request as it ended. */
export interface FinishedRequest {
  requestId: string;
  model: string;
  /** The worker that served it (as its proxy named it); null if none was chosen. */
  worker: string | null;
  outcome: Outcome;
  error?: CocoonError | undefined;
  seconds: number;
  usage?: TokenUsage | null | undefined;
  /** What it cost, nanoton; null when payments are off or nothing was billed. */
  costNanoton?: string | null;
  /** Proxies or workers tried. */
  attempts: number;
}

/**
 * The end-of-request bookkeeping, written once for every hop: the counters by outcome, the Prometheus
 * series, the debug log line and the recent-requests ring of the dashboards.
 */
export class RequestTally {
  constructor(
    private readonly counters: OutcomeCounters,
    private readonly metrics: NodeMetrics,
    private readonly log: Logger,
    private readonly recent: RecentRequests | null = null,
  ) {}

  finish(r: FinishedRequest): void {
    const c = this.counters;
    const usage = r.usage ?? undefined;
    if (r.outcome === 'ok') {
      c.succeeded++;
      c.promptTokens += usage?.promptTokens ?? 0;
      c.completionTokens += usage?.completionTokens ?? 0;
    } else c[r.outcome as Exclude<Outcome, 'ok'>]++;
    const code = r.error?.code ?? null;
    this.metrics.finished(r.outcome, code, r.seconds, usage?.promptTokens, usage?.completionTokens);
    this.log.debug(
      { requestId: r.requestId, worker: r.worker, outcome: r.outcome, code, seconds: r.seconds },
      'request finished',
    );
    this.recent?.record({
      requestId: r.requestId,
      model: r.model,
      worker: r.worker,
      outcome: r.outcome,
      error: r.error,
      seconds: r.seconds,
      usage,
      costNanoton: r.costNanoton ?? null,
      attempts: r.attempts,
    });
  }

  /** A request refused before it was admitted (bad input, foreign origin, no key): counted, not listed. */
  refused(error: CocoonError): void {
    this.counters.rejected++;
    this.metrics.finished('rejected', error.code, 0);
  }
}
