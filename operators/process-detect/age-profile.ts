import { median } from "../../lib/stats.ts";

/**
 * What a restarted process of a component typically does at each hour of age: the median of
 * the last `samples` hourly level changes seen at that age across all its restarts. Subtracting
 * it removes cache warm-up after restarts without a model of the cache; a canary of leaking
 * restarts stays visible as long as healthy restarts dominate the recent samples.
 */
export class AgeProfiles {
  private readonly rings = new Map<number, { values: Float32Array; len: number; pos: number }[]>();

  constructor(
    private readonly hours: number,
    private readonly samples: number,
    private readonly minSamples = 8,
  ) {}

  add(group: number, age: number, change: number): void {
    if (age < 0 || age >= this.hours) return;
    let rings = this.rings.get(group);
    if (rings === undefined) {
      rings = Array.from({ length: this.hours }, () => ({
        values: new Float32Array(this.samples),
        len: 0,
        pos: 0,
      }));
      this.rings.set(group, rings);
    }
    const r = rings[age]!;
    r.values[r.pos] = change;
    r.pos = (r.pos + 1) % this.samples;
    if (r.len < this.samples) r.len++;
  }

  /** Expected hourly change at `age`, or undefined while too few restarts were seen. */
  expected(group: number, age: number): number | undefined {
    const r = this.rings.get(group)?.[age];
    if (r === undefined || r.len < this.minSamples) return undefined;
    return median(Array.from(r.values.subarray(0, r.len)));
  }
}
