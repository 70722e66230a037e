/**
 * A peer's health as the node routing to it sees it (a proxy its workers, a client its proxies): a
 * circuit breaker. Consecutive failures cool the peer down (excluded from routing for a backoff that
 * doubles on each relapse); when the cool-down ends the next request probes it (one at a time), and a
 * success brings it back. The failure rate also weighs routing, so a flaky peer gets less traffic before
 * it is ever cooled.
 */

export type HealthState = 'ok' | 'cooling' | 'probing';

export interface HealthOptions {
  /** Failures in a row that cool a worker down. */
  failuresToCool: number;
  /** First cool-down; doubled on each failed probe, up to maxCooldownMs. */
  baseCooldownMs: number;
  maxCooldownMs: number;
}

export const DEFAULT_HEALTH: HealthOptions = {
  failuresToCool: 2,
  baseCooldownMs: 1000,
  maxCooldownMs: 60_000,
};

/** Weight of the newest outcome in the failure rate: reacts within a few requests. */
const ALPHA = 0.2;

export class PeerHealth {
  state: HealthState = 'ok';
  /** Exponentially weighted share of failed requests, 0..1. */
  failureRate = 0;
  consecutiveFailures = 0;
  cooldownUntil = 0;
  private cooldownMs = 0;

  constructor(private readonly opts: HealthOptions = DEFAULT_HEALTH) {}

  recordSuccess(): void {
    this.failureRate *= 1 - ALPHA;
    this.consecutiveFailures = 0;
    if (this.state === 'probing') {
      this.state = 'ok';
      this.cooldownMs = 0;
    }
  }

  recordFailure(now = Date.now()): void {
    this.failureRate = this.failureRate * (1 - ALPHA) + ALPHA;
    this.consecutiveFailures++;
    if (this.state === 'probing' || this.consecutiveFailures >= this.opts.failuresToCool) {
      this.cooldownMs =
        this.cooldownMs === 0
          ? this.opts.baseCooldownMs
          : Math.min(this.opts.maxCooldownMs, this.cooldownMs * 2);
      this.cooldownUntil = now + this.cooldownMs;
      this.state = 'cooling';
    }
  }

  /** May this peer take a request now? A cooled peer past its cool-down takes one probe at a time. */
  admits(running: number, now = Date.now()): boolean {
    if (this.state === 'cooling') {
      if (now < this.cooldownUntil) return false;
      this.state = 'probing';
    }
    return this.state === 'ok' || running === 0;
  }

  /** Multiplies the peer's routing weight: a request that fails costs another try elsewhere. */
  get weightFactor(): number {
    return 1 + 2 * this.failureRate;
  }

  snapshot() {
    return {
      state: this.state,
      failureRate: Math.round(this.failureRate * 1000) / 1000,
      cooldownUntil: this.state === 'cooling' ? this.cooldownUntil : null,
    };
  }
}
