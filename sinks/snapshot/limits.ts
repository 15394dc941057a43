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
   * Whether a collection in `cluster` at `at` stays within the budget. Collections of simulated
   * agents may be charged out of order (a trace catching up on event time charges its scheduled
   * times), so every collection within an hour of `at`, before or after it, counts.
   */
  allows(cluster: string, at: number): boolean {
    return this.near(cluster, at) < this.perHour;
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

  private near(cluster: string, at: number): number {
    let n = 0;
    for (const t of this.state[cluster] ?? []) if (Math.abs(t - at) < HOUR_MS) n++;
    return n;
  }
}
