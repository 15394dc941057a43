import { median } from "../stats.ts";
import { type Detection, HOUR_MS, kindOfComponent } from "../types.ts";

/** One process identity (host, component, name, pid, startedAt): a restart starts a new series. */
export interface Series {
  readonly idKey: string;
  /** (host, component, name): what detections are reported on. */
  readonly targetKey: string;
  readonly host: string;
  readonly component: string;
  readonly name: string;
  readonly pid: number;
  readonly startedAt: number | undefined;
  /** Each baseline's state for this series, at the baseline's slot. */
  readonly state: unknown[];
  lastTs: number;
}

/** One process sample as the streaming pass hands it to the baselines. */
export interface Sample {
  series: Series;
  ts: number;
  bytes: number;
  /** totalBytes − usedBytes of the message's hostMemory, when present. */
  hostFree: number | undefined;
}

/** A baseline detector: consumes samples in (roughly) time order, reports first firings per target. */
export interface Baseline {
  readonly name: string;
  readonly rule: string;
  /** Index of this baseline's state in Series.state; assigned by the SeriesRegistry. */
  slot: number;
  onSample(s: Sample): void;
  /** The series ended (idle, or end of input): flush its open hour / pending evaluation. */
  endSeries(series: Series): void;
  detections(): Detection[];
  /** Samples ignored because they arrived after their hour/slot was closed. */
  readonly lateSamples: number;
}

export function identityKey(
  host: string,
  component: string,
  name: string,
  pid: number,
  startedAt: number | undefined,
): string {
  return `${host}/${component}/${pid}/${startedAt ?? ""}/${name}`;
}

/**
 * The live process series of the pass, shared by all baselines so that a sample costs one
 * lookup. A series idle for `idleMs` of event time is ended (its state freed): restarts and
 * departed hosts do not accumulate state.
 */
export class SeriesRegistry {
  private readonly live = new Map<string, Series>();
  private nextSweep = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly baselines: readonly Baseline[],
    private readonly idleMs = 7 * HOUR_MS,
  ) {
    baselines.forEach((b, i) => {
      b.slot = i;
    });
  }

  get size(): number {
    return this.live.size;
  }

  get(
    host: string,
    component: string,
    name: string,
    pid: number,
    startedAt: number | undefined,
    targetKey: string,
  ) {
    const idKey = identityKey(host, component, name, pid, startedAt);
    let s = this.live.get(idKey);
    if (!s) {
      s = {
        idKey,
        targetKey,
        host,
        component,
        name,
        pid,
        startedAt,
        state: [],
        lastTs: Number.NEGATIVE_INFINITY,
      };
      this.live.set(idKey, s);
    }
    return s;
  }

  feed(series: Series, ts: number, bytes: number, hostFree: number | undefined): void {
    if (ts >= this.nextSweep) this.sweep(ts);
    if (ts > series.lastTs) series.lastTs = ts;
    const sample: Sample = { series, ts, bytes, hostFree };
    for (const b of this.baselines) b.onSample(sample);
  }

  private sweep(now: number): void {
    if (Number.isFinite(this.nextSweep)) {
      for (const [k, s] of this.live) {
        if (s.lastTs < now - this.idleMs) {
          for (const b of this.baselines) b.endSeries(s);
          this.live.delete(k);
        }
      }
    }
    this.nextSweep = now + HOUR_MS;
  }

  /** Ends every live series (end of input). */
  finish(): void {
    for (const s of this.live.values()) for (const b of this.baselines) b.endSeries(s);
    this.live.clear();
  }
}

/** Keeps the first firing per target. */
export class FirstFirings {
  private readonly byTarget = new Map<string, Detection>();

  fire(s: Series, at: number, note: string): void {
    const prev = this.byTarget.get(s.targetKey);
    if (prev && prev.detectedAt <= at) return;
    this.byTarget.set(s.targetKey, {
      host: s.host,
      component: s.component,
      process: s.name,
      kind: kindOfComponent(s.component),
      detectedAt: at,
      pid: s.pid,
      note,
    });
  }

  has(targetKey: string): boolean {
    return this.byTarget.has(targetKey);
  }

  list(): Detection[] {
    return [...this.byTarget.values()];
  }
}

/** How long after its end an hour stays open for late samples (above the contract's default lateness of 2 × 5 min). */
export const HOUR_GRACE_MS = 15 * 60_000;

/**
 * Hourly mean of one series, tolerant of late samples: an hour is closed once a sample at least
 * `HOUR_GRACE_MS` past its end arrives (or at flush); samples of a closed hour are counted as
 * late and ignored. Closed hours are appended to `out` as [hour, mean] pairs, oldest first.
 */
export class HourlyMean {
  private curHour = Number.NEGATIVE_INFINITY;
  private curSum = 0;
  private curCount = 0;
  private prevHour = Number.NEGATIVE_INFINITY;
  private prevSum = 0;
  private prevCount = 0;
  late = 0;

  add(ts: number, bytes: number, out: [number, number][]): void {
    const h = Math.floor(ts / HOUR_MS);
    if (this.prevCount > 0 && ts >= (this.prevHour + 1) * HOUR_MS + HOUR_GRACE_MS) {
      out.push([this.prevHour, this.prevSum / this.prevCount]);
      this.prevCount = 0;
    }
    if (h === this.curHour) {
      this.curSum += bytes;
      this.curCount++;
    } else if (h > this.curHour) {
      if (this.curCount > 0) {
        if (ts >= (this.curHour + 1) * HOUR_MS + HOUR_GRACE_MS) {
          out.push([this.curHour, this.curSum / this.curCount]);
        } else {
          // The previous hour was closed above (its grace ended before this hour's start).
          this.prevHour = this.curHour;
          this.prevSum = this.curSum;
          this.prevCount = this.curCount;
        }
      }
      this.curHour = h;
      this.curSum = bytes;
      this.curCount = 1;
    } else if (h === this.prevHour && this.prevCount > 0) {
      this.prevSum += bytes;
      this.prevCount++;
    } else {
      this.late++;
    }
  }

  /** Closes the open hours (end of the series). */
  flush(out: [number, number][]): void {
    if (this.prevCount > 0) out.push([this.prevHour, this.prevSum / this.prevCount]);
    if (this.curCount > 0) out.push([this.curHour, this.curSum / this.curCount]);
    this.prevCount = 0;
    this.curCount = 0;
  }
}

/**
 * Median of a target's hourly means over the first `learnMs` after its first sample (all its
 * identities together). Undefined until that period is over; learning state is then freed.
 */
export class FirstDayMedian {
  private readonly learning = new Map<string, { until: number; hours: Map<number, [number, number]> }>();
  private readonly learned = new Map<string, number>();

  constructor(private readonly learnMs = 24 * HOUR_MS) {}

  add(targetKey: string, ts: number, bytes: number): void {
    if (this.learned.has(targetKey)) return;
    let st = this.learning.get(targetKey);
    if (!st) {
      st = { until: ts + this.learnMs, hours: new Map() };
      this.learning.set(targetKey, st);
    }
    if (ts >= st.until) {
      const means = [...st.hours.values()].map(([sum, n]) => sum / n);
      const m = median(means);
      this.learning.delete(targetKey);
      if (m !== null) this.learned.set(targetKey, m);
      return;
    }
    const h = Math.floor(ts / HOUR_MS);
    const acc = st.hours.get(h);
    if (acc) {
      acc[0] += bytes;
      acc[1]++;
    } else {
      st.hours.set(h, [bytes, 1]);
    }
  }

  get(targetKey: string): number | undefined {
    return this.learned.get(targetKey);
  }
}
