import { HOUR_MS } from "../types.ts";
import { type Baseline, FirstFirings, HourlyMean, type Sample, type Series } from "./common.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * Memory-bucket boundaries, RESIN-style (50 MB, 100 MB, 200 MB … 40 GB, 50 GB), extended
 * below 50 MB for small processes and pool tags and above 50 GB for big hosts.
 */
export const BUCKET_LADDER: readonly number[] = [
  1 * MiB,
  2 * MiB,
  5 * MiB,
  10 * MiB,
  20 * MiB,
  50 * MiB,
  100 * MiB,
  200 * MiB,
  300 * MiB,
  500 * MiB,
  750 * MiB,
  1 * GiB,
  1.5 * GiB,
  2 * GiB,
  3 * GiB,
  4 * GiB,
  5 * GiB,
  7.5 * GiB,
  10 * GiB,
  15 * GiB,
  20 * GiB,
  25 * GiB,
  30 * GiB,
  40 * GiB,
  50 * GiB,
  75 * GiB,
  100 * GiB,
  150 * GiB,
  200 * GiB,
  300 * GiB,
  500 * GiB,
  1024 * GiB,
];

export interface StaticOptions {
  /** Alert when at least this many hosts of a (component, process) group are at or above X in one hour. */
  minHosts: number;
  /** X is learned from each group's hourly means over this long after its first sample. */
  learnMs: number;
  /** X = the ladder boundary above this quantile of the learned hourly means. */
  quantile: number;
}

export const STATIC_DEFAULTS: StaticOptions = { minHosts: 1, learnMs: 24 * HOUR_MS, quantile: 0.99 };

export function staticRule(o: StaticOptions): string {
  return (
    `static threshold "memory >= X on >= ${o.minHosts} host(s)" per (component, process name): X = the memory-bucket ` +
    `boundary (1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 750 MiB, 1, 1.5, 2, 3, 4, 5, 7.5, 10 … 50 GiB …) just above ` +
    `the p${Math.round(o.quantile * 100)} of all hosts' hourly mean bytes during the group's first ` +
    `${o.learnMs / HOUR_MS} h; afterwards, in any hour where >= ${o.minHosts} distinct host(s) have an hourly mean >= X, ` +
    "those hosts' processes are suspects, detected at the end of that hour (an hour's mean takes samples up to " +
    "15 min late). N=1 is the strongest setting for " +
    "isolated leaks (a fleet-wide N such as 80 hosts would miss every single-host leak)."
  );
}

/** Smallest ladder boundary strictly above the `q` quantile of the histogrammed values. */
export function thresholdFromHistogram(hist: ArrayLike<number>, total: number, q: number): number | null {
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]!;
    // Bin i holds values in [ladder[i-1], ladder[i]); its upper boundary is ladder[i].
    if (seen >= rank) return BUCKET_LADDER[i] ?? Number.POSITIVE_INFINITY;
  }
  return Number.POSITIVE_INFINITY;
}

export function binOf(bytes: number): number {
  let i = 0;
  while (i < BUCKET_LADDER.length && bytes >= BUCKET_LADDER[i]!) i++;
  return i;
}

interface Group {
  learnUntil: number;
  hist: Uint32Array;
  total: number;
  /** undefined while learning; +Infinity when the learned quantile is above the ladder. */
  threshold: number | undefined;
  /** hour -> hosts (with their series) at or above X in that hour. */
  above: Map<number, Map<string, Series>>;
}

interface State {
  group: Group;
  hourly: HourlyMean;
}

export class StaticThresholdBaseline implements Baseline {
  readonly name = "static";
  readonly rule: string;
  slot = 0;
  private readonly opts: StaticOptions;
  private readonly groups = new Map<string, Group>();
  private readonly firings = new FirstFirings();
  /** Hours closed by the current sample, drained right away. */
  private readonly closed: [number, number][] = [];
  private late = 0;

  constructor(opts: Partial<StaticOptions> = {}) {
    this.opts = { ...STATIC_DEFAULTS, ...opts };
    this.rule = staticRule(this.opts);
  }

  get lateSamples(): number {
    return this.late;
  }

  private stateOf(s: Sample): State {
    const series = s.series;
    let st = series.state[this.slot] as State | undefined;
    if (!st) {
      const groupKey = `${series.component}/${series.name}`;
      let group = this.groups.get(groupKey);
      if (!group) {
        group = {
          learnUntil: s.ts + this.opts.learnMs,
          hist: new Uint32Array(BUCKET_LADDER.length + 1),
          total: 0,
          threshold: undefined,
          above: new Map(),
        };
        this.groups.set(groupKey, group);
      }
      st = { group, hourly: new HourlyMean() };
      series.state[this.slot] = st;
    }
    return st;
  }

  onSample(s: Sample): void {
    const st = this.stateOf(s);
    st.hourly.add(s.ts, s.bytes, this.closed);
    this.drain(st.group, s.series);
  }

  endSeries(series: Series): void {
    const st = series.state[this.slot] as State | undefined;
    if (!st) return;
    st.hourly.flush(this.closed);
    this.late += st.hourly.late;
    st.hourly.late = 0;
    this.drain(st.group, series);
  }

  private drain(group: Group, series: Series): void {
    if (this.closed.length === 0) return;
    for (const [hour, mean] of this.closed) this.onHour(group, series, hour, mean);
    this.closed.length = 0;
  }

  private onHour(g: Group, series: Series, hour: number, mean: number): void {
    const hourEnd = (hour + 1) * HOUR_MS;
    if (g.threshold === undefined) {
      if (hourEnd <= g.learnUntil || g.total === 0) {
        g.hist[binOf(mean)]!++;
        g.total++;
        if (hourEnd > g.learnUntil) g.learnUntil = hourEnd; // nothing learned yet: keep learning
        return;
      }
      g.threshold = thresholdFromHistogram(g.hist, g.total, this.opts.quantile) ?? Number.POSITIVE_INFINITY;
    }
    if (mean < g.threshold) return;
    let hosts = g.above.get(hour);
    if (!hosts) {
      hosts = new Map();
      g.above.set(hour, hosts);
      for (const h of g.above.keys()) if (h < hour - 3) g.above.delete(h);
    }
    hosts.set(series.host, series);
    if (hosts.size >= this.opts.minHosts) {
      const note = `hourly mean >= ${g.threshold} B on ${hosts.size} host(s) of ${series.component}/${series.name}`;
      for (const member of hosts.values()) this.firings.fire(member, hourEnd, note);
    }
  }

  detections() {
    return this.firings.list();
  }

  /** The learned X of a (component, process) group, for tests and reports. */
  thresholdOf(component: string, name: string): number | undefined {
    return this.groups.get(`${component}/${name}`)?.threshold;
  }
}
