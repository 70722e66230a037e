/**
 * At most `perWindow` log lines per key in each window; the rest are counted and reported with the next
 * line that gets through. A flood of refused connections is then a counter, not a flood of log lines
 * (the refusals themselves are still counted one by one in /metrics).
 */
export class LogThrottle {
  private readonly keys = new Map<string, { windowStart: number; logged: number; suppressed: number }>();

  constructor(
    private readonly perWindow = 10,
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
    /** Most keys remembered; a stranger choosing keys cannot grow this. */
    private readonly maxKeys = 256,
  ) {}

  /** Whether to log a line for `key` now, and how many were suppressed since the last one logged. */
  admit(key: string): { log: boolean; suppressed: number } {
    const t = this.now();
    let k = this.keys.get(key);
    if (!k || t - k.windowStart >= this.windowMs) {
      if (!k && this.keys.size >= this.maxKeys) this.keys.delete(this.keys.keys().next().value!);
      k = { windowStart: t, logged: 0, suppressed: k?.suppressed ?? 0 };
      this.keys.set(key, k);
    }
    if (k.logged >= this.perWindow) {
      k.suppressed++;
      return { log: false, suppressed: 0 };
    }
    k.logged++;
    const suppressed = k.suppressed;
    k.suppressed = 0;
    return { log: true, suppressed };
  }
}
