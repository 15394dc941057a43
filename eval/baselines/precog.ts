import { fitLine } from "../stats.ts";
import { DAY_MS, HOUR_MS } from "../types.ts";
import {
  type Baseline,
  FirstDayMedian,
  FirstFirings,
  HourlyMean,
  type Sample,
  type Series,
} from "./common.ts";

export interface PrecogOptions {
  /** Trailing windows (hours) tried at every hourly point; the rule fires if any qualifies. */
  windowsH: number[];
  /** Fewest hourly points a window needs, as a fraction of its length (and never below 6). */
  minCoverage: number;
  minR2: number;
  /** Fire when the extrapolated trend reaches capacity within this long. */
  horizonMs: number;
  /** Capacity when the telemetry has no hostMemory: this factor × the target's first-day median. */
  fallbackFactor: number;
  learnMs: number;
}

export const PRECOG_DEFAULTS: PrecogOptions = {
  windowsH: [6, 12, 24],
  minCoverage: 0.75,
  minR2: 0.8,
  horizonMs: 7 * DAY_MS,
  fallbackFactor: 2,
  learnMs: 24 * HOUR_MS,
};

export function precogRule(o: PrecogOptions): string {
  return (
    "Precog-style trend rule per process identity (a restart starts a new series), on hourly mean bytes: at " +
    `every hour, a least-squares line over the trailing ${o.windowsH.join(" / ")} h (each needs >= ` +
    `max(6, ${Math.round(o.minCoverage * 100)}% of its hours) points) with R² > ${o.minR2} and positive slope ` +
    `whose extrapolation from the window's end reaches capacity within ${o.horizonMs / DAY_MS} days fires. ` +
    "capacity = the host's free memory (hostMemory.totalBytes − usedBytes of the latest sample) + the process's " +
    "bytes, i.e. the size at which the host runs out of memory if the process keeps growing; without hostMemory " +
    `it falls back to ${o.fallbackFactor} × the target's median hourly mean over its first ${o.learnMs / HOUR_MS} h. ` +
    "Detected at the end of the hour whose mean completed the window (an hour's mean takes samples up to 15 min late)."
  );
}

const RING = 32;

interface State {
  hourly: HourlyMean;
  hours: Float64Array;
  means: Float64Array;
  /** Number of points pushed so far (ring index = count % RING). */
  count: number;
  capacity: number | undefined;
  latestTs: number;
}

export class PrecogBaseline implements Baseline {
  readonly name = "precog";
  readonly rule: string;
  slot = 0;
  private readonly opts: PrecogOptions;
  private readonly limits: FirstDayMedian;
  private readonly firings = new FirstFirings();
  /** Hours closed by the current sample, drained right away. */
  private readonly closed: [number, number][] = [];
  private late = 0;
  private readonly maxWindow: number;

  constructor(opts: Partial<PrecogOptions> = {}) {
    this.opts = { ...PRECOG_DEFAULTS, ...opts };
    this.rule = precogRule(this.opts);
    this.maxWindow = Math.min(RING, Math.max(...this.opts.windowsH));
    this.limits = new FirstDayMedian(this.opts.learnMs);
  }

  get lateSamples(): number {
    return this.late;
  }

  onSample(s: Sample): void {
    const series = s.series;
    this.limits.add(series.targetKey, s.ts, s.bytes);
    let st = series.state[this.slot] as State | undefined;
    if (!st) {
      st = {
        hourly: new HourlyMean(),
        hours: new Float64Array(RING),
        means: new Float64Array(RING),
        count: 0,
        capacity: undefined,
        latestTs: s.ts,
      };
      series.state[this.slot] = st;
    }
    st.hourly.add(s.ts, s.bytes, this.closed);
    if (s.ts >= st.latestTs) {
      st.latestTs = s.ts;
      if (s.hostFree !== undefined) st.capacity = s.hostFree + s.bytes;
    }
    this.drain(series, st);
  }

  endSeries(series: Series): void {
    const st = series.state[this.slot] as State | undefined;
    if (!st) return;
    st.hourly.flush(this.closed);
    this.late += st.hourly.late;
    st.hourly.late = 0;
    this.drain(series, st);
  }

  private drain(series: Series, st: State): void {
    if (this.closed.length === 0) return;
    for (const [hour, mean] of this.closed) this.onHour(series, st, hour, mean);
    this.closed.length = 0;
  }

  private capacityOf(series: Series, st: State): number | undefined {
    if (st.capacity !== undefined) return st.capacity;
    const m = this.limits.get(series.targetKey);
    return m === undefined ? undefined : m * this.opts.fallbackFactor;
  }

  private onHour(series: Series, st: State, hour: number, mean: number): void {
    const i = st.count % RING;
    st.hours[i] = hour;
    st.means[i] = mean;
    st.count++;
    if (this.firings.has(series.targetKey)) return;
    const capacity = this.capacityOf(series, st);
    if (capacity === undefined) return;
    const have = Math.min(st.count, this.maxWindow);
    const xs: number[] = [];
    const ys: number[] = [];
    for (let k = have - 1; k >= 0; k--) {
      const j = (st.count - 1 - k) % RING;
      xs.push(st.hours[j]!);
      ys.push(st.means[j]!);
    }
    const tEnd = (hour + 1) * HOUR_MS;
    for (const w of this.opts.windowsH) {
      const from = hour - w + 1;
      const first = xs.findIndex((h) => h >= from);
      if (first < 0) continue;
      const need = Math.max(6, Math.ceil(w * this.opts.minCoverage));
      if (xs.length - first < need) continue;
      const fit = fitLine(xs.slice(first), ys.slice(first));
      if (!fit || !(fit.slope > 0) || !(fit.r2 > this.opts.minR2)) continue;
      const now = fit.intercept + fit.slope * (hour + 1);
      const hoursToCapacity = (capacity - now) / fit.slope;
      if (hoursToCapacity * HOUR_MS <= this.opts.horizonMs) {
        const note = `${w} h fit: +${Math.round(fit.slope)} B/h, R²=${fit.r2.toFixed(2)}, reaches capacity ${Math.round(capacity)} B in ${Math.max(0, hoursToCapacity).toFixed(1)} h`;
        this.firings.fire(series, tEnd, note);
        return;
      }
    }
  }

  detections() {
    return this.firings.list();
  }
}
