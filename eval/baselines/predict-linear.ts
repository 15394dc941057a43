import { DAY_MS, HOUR_MS } from "../types.ts";
import { type Baseline, FirstDayMedian, FirstFirings, type Sample, type Series } from "./common.ts";

export interface PredictLinearOptions {
  /** Range of the range vector: process_bytes[6h]. */
  windowMs: number;
  /** predict_linear's horizon: 3 days. */
  horizonMs: number;
  /** The alert's `for:` duration. */
  forMs: number;
  /** limit = limitFactor × the target's median hourly mean over its first learnMs. */
  limitFactor: number;
  learnMs: number;
  /** Rule evaluation interval; the window is made of slots of this width. */
  slotMs: number;
}

export const PREDICT_LINEAR_DEFAULTS: PredictLinearOptions = {
  windowMs: 6 * HOUR_MS,
  horizonMs: 3 * DAY_MS,
  forMs: HOUR_MS,
  limitFactor: 2,
  learnMs: 24 * HOUR_MS,
  slotMs: 15 * 60_000,
};

export function predictLinearRule(o: PredictLinearOptions): string {
  return (
    `Prometheus alert \`predict_linear(process_bytes[${o.windowMs / HOUR_MS}h], ${o.horizonMs / 1000}) > limit\` ` +
    `with \`for: ${o.forMs / 60_000}m\`, per process identity (a restart starts a new series). limit = ` +
    `${o.limitFactor} × the median of the target's hourly mean bytes over its first ${o.learnMs / HOUR_MS} h (a ` +
    "per-process limit a team would set as 'twice its normal size'; no alert before it is known). Evaluated every " +
    `${o.slotMs / 60_000} min of event time; the least-squares fit over the raw samples of the window is computed ` +
    "from per-slot sums, as Prometheus itself does, so the window is quantised to slots. Detected at the evaluation " +
    "where the condition has held for the `for` duration."
  );
}

const F = 5; // per-slot sums: n, Σx, Σy, Σxx, Σxy

interface State {
  x0: number;
  y0: number;
  sums: Float64Array;
  slotIds: Float64Array;
  cur: number;
  pendingSince: number | null;
}

/** Least-squares prediction from window sums; null when the window has < 2 distinct times. */
export function predictFromSums(
  n: number,
  sx: number,
  sy: number,
  sxx: number,
  sxy: number,
  atX: number,
): { value: number; slope: number } | null {
  if (n < 2) return null;
  const den = n * sxx - sx * sx;
  if (!(den > 1e-12 * n * sxx)) return null;
  const slope = (n * sxy - sx * sy) / den;
  const intercept = (sy - slope * sx) / n;
  return { value: intercept + slope * atX, slope };
}

export class PredictLinearBaseline implements Baseline {
  readonly name = "predict_linear";
  readonly rule: string;
  slot = 0;
  private readonly opts: PredictLinearOptions;
  private readonly nSlots: number;
  private readonly limits: FirstDayMedian;
  private readonly firings = new FirstFirings();
  lateSamples = 0;

  constructor(opts: Partial<PredictLinearOptions> = {}) {
    this.opts = { ...PREDICT_LINEAR_DEFAULTS, ...opts };
    this.rule = predictLinearRule(this.opts);
    this.nSlots = Math.max(2, Math.round(this.opts.windowMs / this.opts.slotMs));
    this.limits = new FirstDayMedian(this.opts.learnMs);
  }

  onSample(s: Sample): void {
    const series = s.series;
    this.limits.add(series.targetKey, s.ts, s.bytes);
    const slot = Math.floor(s.ts / this.opts.slotMs);
    let st = series.state[this.slot] as State | undefined;
    if (!st) {
      st = {
        x0: s.ts,
        y0: s.bytes,
        sums: new Float64Array(this.nSlots * F),
        slotIds: new Float64Array(this.nSlots).fill(-1),
        cur: slot,
        pendingSince: null,
      };
      series.state[this.slot] = st;
    }
    if (slot > st.cur) {
      // The previous slot is complete: evaluate the rule at this slot boundary.
      this.evaluate(series, st, slot * this.opts.slotMs, slot);
      st.cur = slot;
    } else if (slot <= st.cur - this.nSlots) {
      this.lateSamples++;
      return;
    }
    const i = slot % this.nSlots;
    const o = i * F;
    if (st.slotIds[i] !== slot) {
      st.slotIds[i] = slot;
      st.sums.fill(0, o, o + F);
    }
    const x = (s.ts - st.x0) / HOUR_MS;
    const y = s.bytes - st.y0;
    st.sums[o]! += 1;
    st.sums[o + 1]! += x;
    st.sums[o + 2]! += y;
    st.sums[o + 3]! += x * x;
    st.sums[o + 4]! += x * y;
  }

  endSeries(series: Series): void {
    const st = series.state[this.slot] as State | undefined;
    if (st) this.evaluate(series, st, (st.cur + 1) * this.opts.slotMs, st.cur + 1);
  }

  /** Evaluates at time `t` over the slots [endSlot − nSlots, endSlot). */
  private evaluate(series: Series, st: State, t: number, endSlot: number): void {
    if (this.firings.has(series.targetKey)) return;
    const limit = this.limitOf(series.targetKey);
    if (limit === undefined) {
      st.pendingSince = null;
      return;
    }
    let n = 0;
    let sx = 0;
    let sy = 0;
    let sxx = 0;
    let sxy = 0;
    for (let i = 0; i < this.nSlots; i++) {
      const id = st.slotIds[i]!;
      if (id < endSlot - this.nSlots || id >= endSlot) continue;
      const o = i * F;
      n += st.sums[o]!;
      sx += st.sums[o + 1]!;
      sy += st.sums[o + 2]!;
      sxx += st.sums[o + 3]!;
      sxy += st.sums[o + 4]!;
    }
    const atX = (t + this.opts.horizonMs - st.x0) / HOUR_MS;
    const p = predictFromSums(n, sx, sy, sxx, sxy, atX);
    const predicted = p === null ? null : p.value + st.y0;
    if (predicted === null || !(predicted > limit)) {
      st.pendingSince = null;
      return;
    }
    if (st.pendingSince === null) st.pendingSince = t;
    if (t - st.pendingSince >= this.opts.forMs) {
      const note = `predicted ${Math.round(predicted)} B in ${this.opts.horizonMs / HOUR_MS} h > limit ${Math.round(limit)} B`;
      this.firings.fire(series, t, note);
    }
  }

  detections() {
    return this.firings.list();
  }

  /** The alert's limit for a target (undefined until its first day is learned). */
  limitOf(targetKey: string): number | undefined {
    const m = this.limits.get(targetKey);
    return m === undefined ? undefined : m * this.opts.limitFactor;
  }
}
