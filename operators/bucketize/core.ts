import type { ClosedWindow, SeriesInfo } from "../window/core.ts";

const MB = 1024 * 1024;
const GB = 1024 * MB;

/** RESIN-style bucket lower bounds: 50 MB … 50 GB, about 20 buckets, denser where processes live. */
export const DEFAULT_BUCKETS: readonly number[] = [
  50 * MB,
  100 * MB,
  200 * MB,
  300 * MB,
  500 * MB,
  750 * MB,
  1 * GB,
  1.5 * GB,
  2 * GB,
  3 * GB,
  4 * GB,
  6 * GB,
  8 * GB,
  12 * GB,
  16 * GB,
  24 * GB,
  32 * GB,
  40 * GB,
  50 * GB,
].map(Math.round);

/** Cumulative host counts of one component (process image) in one window. */
export interface BucketCounts {
  start: number;
  component: string;
  process: string;
  /** hosts[i] = distinct hosts whose process is at or above bounds[i]. */
  hosts: number[];
  /** Distinct hosts that reported the process in the window. */
  total: number;
}

/**
 * RESIN's bucketization pivot, as a pure function of one closed window: per component (process
 * image, or pool tag for the kernel), the count of distinct hosts at or above each bucket's
 * lower bound. Cumulative, so a mass drop never looks like growth.
 */
export function bucketize(
  w: ClosedWindow,
  infoOf: (slot: number) => SeriesInfo | undefined,
  bounds: readonly number[] = DEFAULT_BUCKETS,
): BucketCounts[] {
  // Largest value per (component, process, host): a host counts once per bucket. Nested maps
  // keyed by the strings the window core hands out (the same string objects every window, their
  // hashes cached): a key string built per series was most of this pivot's time and garbage.
  const perComponent = new Map<string, Map<string, Map<string, number>>>();
  for (let i = 0; i < w.slots.length; i++) {
    const info = infoOf(w.slots[i]!);
    if (info === undefined) continue;
    let byName = perComponent.get(info.component);
    if (byName === undefined) {
      byName = new Map();
      perComponent.set(info.component, byName);
    }
    let hosts = byName.get(info.name);
    if (hosts === undefined) {
      hosts = new Map();
      byName.set(info.name, hosts);
    }
    const v = w.values[i]!;
    const prev = hosts.get(info.host);
    if (prev === undefined || v > prev) hosts.set(info.host, v);
  }
  // In the order of the key "component \u0001 process", as a plain string sort orders it.
  const groups: { key: string; component: string; process: string; hosts: Map<string, number> }[] = [];
  for (const [component, byName] of perComponent)
    for (const [process, hosts] of byName)
      groups.push({ key: `${component}\u0001${process}`, component, process, hosts });
  groups.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const out: BucketCounts[] = [];
  for (const { component, process, hosts } of groups) {
    const counts = new Array<number>(bounds.length).fill(0);
    for (const v of hosts.values()) {
      for (let b = 0; b < bounds.length && v >= bounds[b]!; b++) counts[b]!++;
    }
    out.push({ start: w.start, component, process, hosts: counts, total: hosts.size });
  }
  return out;
}
