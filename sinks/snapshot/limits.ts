/**
 * The global budget of heap collections (RESIN: at most 5 per cluster per hour), so that a leak
 * on many hosts of one cluster never has resin profiling the cluster all at once. A sliding
 * hour of the sink's clock; plain data, so it is saved with the sink's state. Pure.
 */

const HOUR_MS = 3_600_000;

/** Collection times per cluster within the last hour. */
export type LimiterState = Record<string, number[]>;

export class CollectionLimiter {
  constructor(
    private readonly perHour: number,
    readonly state: LimiterState = {},
  ) {}

  /**
   * Whether a collection in `cluster` at `at` keeps every hour-long window within the budget.
   * Collections of simulated agents may be charged out of order (a trace catching up on event
   * time charges its scheduled times), so collections after `at` count as well as those before.
   */
  allows(cluster: string, at: number): boolean {
    const times = this.state[cluster] ?? [];
    // The fullest window [w, w + 1 h) holding `at` starts just after `at` − 1 h or at a collection.
    const starts = [at - HOUR_MS + 1, ...times.filter((t) => t > at - HOUR_MS && t <= at)];
    for (const w of starts) {
      let n = 1;
      for (const t of times) if (t >= w && t < w + HOUR_MS) n++;
      if (n > this.perHour) return false;
    }
    return true;
  }

  /** Counts a collection; call only when `allows` said yes. */
  take(cluster: string, at: number): void {
    const times = this.state[cluster] ?? [];
    times.push(at);
    times.sort((a, b) => a - b);
    this.state[cluster] = times;
  }

  /** The earliest time from `at` on at which a collection in `cluster` is allowed. */
  nextAllowedAt(cluster: string, at: number): number {
    if (this.allows(cluster, at)) return at;
    // Allowance changes only when a collection leaves the hour before the candidate time.
    for (const t of this.state[cluster] ?? []) {
      const candidate = t + HOUR_MS;
      if (candidate > at && this.allows(cluster, candidate)) return candidate;
    }
    return at + HOUR_MS;
  }

  /** Forgets collections long before `now` (a day: room for traces catching up on event time). */
  prune(now: number): void {
    for (const [cluster, times] of Object.entries(this.state)) {
      const kept = times.filter((t) => t > now - 24 * HOUR_MS);
      if (kept.length === 0) delete this.state[cluster];
      else this.state[cluster] = kept;
    }
  }
}
