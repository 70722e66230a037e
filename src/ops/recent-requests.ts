import type { CocoonError } from '../errors.ts';
import type { TokenUsage } from '../protocol/inference.ts';

/** One finished request as the dashboards list it. */
export interface RecentRequest {
  /** When it finished, epoch ms. */
  at: number;
  requestId: string;
  model: string;
  /** The worker that served it (as its proxy named it); null if none was chosen. */
  worker: string | null;
  outcome: 'ok' | 'failed' | 'cancelled' | 'rejected';
  status: number;
  code: string | null;
  message: string | null;
  durationMs: number;
  promptTokens: number;
  completionTokens: number;
  /** What it cost, nanoton as a decimal string; null when payments are off. */
  costNanoton: string | null;
  /** Workers (or proxies) tried. */
  attempts: number;
}

/** The last `capacity` finished requests, newest first: a fixed ring, so memory stays bounded. */
export class RecentRequests {
  private readonly ring: RecentRequest[] = [];
  private next = 0;

  constructor(private readonly capacity = 50) {}

  /** Records a finished request: its error (if any) as status/code/message, its time, its tokens. */
  record(r: {
    requestId: string;
    model: string;
    worker: string | null;
    outcome: RecentRequest['outcome'];
    error: CocoonError | undefined;
    seconds: number;
    usage: TokenUsage | null | undefined;
    costNanoton: string | null;
    attempts: number;
  }): void {
    this.add({
      at: Date.now(),
      requestId: r.requestId,
      model: r.model,
      worker: r.worker,
      outcome: r.outcome,
      ...errorFields(r.error),
      durationMs: Math.round(r.seconds * 100_000) / 100,
      promptTokens: r.usage?.promptTokens ?? 0,
      completionTokens: r.usage?.completionTokens ?? 0,
      costNanoton: r.costNanoton,
      attempts: r.attempts,
    });
  }

  add(r: RecentRequest): void {
    if (this.ring.length < this.capacity) this.ring.push(r);
    else this.ring[this.next] = r;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Newest first. */
  list(): RecentRequest[] {
    const n = this.ring.length;
    const out: RecentRequest[] = [];
    for (let i = 1; i <= n; i++) out.push(this.ring[(this.next - i + n) % n]!);
    return out;
  }
}

/** The error fields of a recent request (status 200 when it succeeded). */
function errorFields(error: CocoonError | undefined): Pick<RecentRequest, 'status' | 'code' | 'message'> {
  return error
    ? { status: error.status, code: error.code, message: error.message }
    : { status: 200, code: null, message: null };
}
