import { RateLimitError, ServiceUnavailableError } from '../errors.ts';

/**
 * The client's bound on requests at once. A request holds its slot from the moment its headers are in, so
 * callers that trickle their bodies count toward the bound as much as requests being served.
 */
export class Admission {
  private draining = false;

  /** `counters.inFlight` is the slots taken (shown in /jsonstats). */
  constructor(
    private readonly max: number,
    private readonly counters: { inFlight: number },
  ) {}

  /** No new requests from now on (graceful shutdown). */
  drain(): void {
    this.draining = true;
  }

  /** Takes a slot (503 while draining, 429 when all are taken); `leave` gives it back. */
  enter(): void {
    if (this.draining) {
      throw new ServiceUnavailableError('This client is shutting down.', 'client_draining').retryAfterSeconds(
        1,
      );
    }
    if (this.counters.inFlight >= this.max) {
      throw new RateLimitError(
        'Too many concurrent requests to this client; retry shortly.',
        'too_many_requests',
      );
    }
    this.counters.inFlight++;
  }

  leave(): void {
    this.counters.inFlight--;
  }
}
