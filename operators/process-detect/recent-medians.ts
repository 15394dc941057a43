import { median } from "../../lib/stats.ts";

/**
 * Medians of the most recent observations per (group, bucket): e.g. the hourly level change of a
 * component's restarted processes at each hour of age (their warm-up), or the level change per
 * VM added. A FIFO of `samples` values per cell keeps it current and bounded; a canary of
 * leaking restarts stays visible as long as healthy observations dominate the recent samples.
 */
export class RecentMedians {
  private readonly rings = new Map<number, { values: Float32Array; len: number; pos: number }[]>();

  constructor(
    private readonly buckets: number,
    private readonly samples: number,
    private readonly minSamples = 8,
  ) {}

  add(group: number, bucket: number, value: number): void {
    if (bucket < 0 || bucket >= this.buckets || !Number.isFinite(value)) return;
    let rings = this.rings.get(group);
    if (rings === undefined) {
      rings = Array.from({ length: this.buckets }, () => ({
        values: new Float32Array(this.samples),
        len: 0,
        pos: 0,
      }));
      this.rings.set(group, rings);
    }
    const r = rings[bucket]!;
    r.values[r.pos] = value;
    r.pos = (r.pos + 1) % this.samples;
    if (r.len < this.samples) r.len++;
  }

  /** The median of the recent values, or undefined while fewer than minSamples were seen. */
  expected(group: number, bucket: number): number | undefined {
    const r = this.rings.get(group)?.[bucket];
    if (r === undefined || r.len < this.minSamples) return undefined;
    return median(Array.from(r.values.subarray(0, r.len)));
  }
}
