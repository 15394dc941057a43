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

  /** Whether a collection in `cluster` at `now` stays within the budget. */
  allows(cluster: string, now: number): boolean {
    return this.recent(cluster, now).length < this.perHour;
  }

  /** Counts a collection; call only when `allows` said yes. */
  take(cluster: string, now: number): void {
    const times = this.recent(cluster, now);
    times.push(now);
    this.state[cluster] = times;
  }

  /** When the next collection in `cluster` will be allowed (now if it is). */
  nextAllowedAt(cluster: string, now: number): number {
    const times = this.recent(cluster, now);
    if (times.length < this.perHour) return now;
    return times[times.length - this.perHour]! + HOUR_MS;
  }

  /** Forgets clusters with nothing in the last hour. */
  prune(now: number): void {
    for (const cluster of Object.keys(this.state))
      if (this.recent(cluster, now).length === 0) delete this.state[cluster];
  }

  private recent(cluster: string, now: number): number[] {
    const times = (this.state[cluster] ?? []).filter((t) => t > now - HOUR_MS && t <= now);
    this.state[cluster] = times;
    return times;
  }
}
