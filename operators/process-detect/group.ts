import { SimpleLinearRegression } from "ml-regression";
import { median } from "../../lib/stats.ts";

const DAY_HOURS = 24;

/** What the group trend check needs from the process detector's configuration. */
export interface GroupTrendConfig {
  /** The length of one window, ms (the detector's hour). */
  hourMs: number;
  /** Hours of common-mode history kept per group (at least a day more than the longest interval). */
  historyHours: number;
  /** Growth over the interval in units of the common mode's hourly noise. */
  sigmas: number;
  /** Smallest growth of the common mode (log scale) that can be a group-wide leak. */
  minGrowth: number;
  minR2: number;
  /** A single hour may not carry more than this share of the growth (a fleet-wide config step). */
  maxStepShare: number;
  /** The common mode must exceed the same hour the day before by this many day-over-day wobbles. */
  seasonalSigmas: number;
  /** The second half of the interval must keep this share of the first half's pace (a warm-up slows). */
  pace: number;
  /** Consecutive windows that must agree. */
  confirmWindows: number;
}

/** How the members of a group must use its common mode in this window. */
export interface GroupVerdict {
  /** The common mode the members' levels are taken against. */
  used: number;
  /**
   * Set once, when the group starts to count as leaking: what to add to each member's level
   * `k + 1` hours back (index k), because their history was taken against a common mode that
   * carried the leak.
   */
  backfill?: number[];
}

/**
 * The common mode of a peer group (its members' median deviation from their own baselines)
 * cancels what the whole group does together: diurnal load, fleet-wide config steps, rolling
 * deploys. It would also cancel a leak that the whole group has, e.g. a leaking version rolled
 * out to a whole region. So the common mode is itself checked like a series: when it grows the
 * way a leak grows (sustained, close to linear, above the same hours of the day before, not one
 * step, not slowing down like a warm-up), the members are taken against the common mode of the
 * day before the growth began (its daily shape, without the growth) until the group falls back.
 */
export class GroupTrends {
  /** Per group: raw common mode per hour, newest last. */
  private readonly history: number[][] = [];
  private readonly lastHour: number[] = [];
  private readonly confirms: number[] = [];
  /** Per leaking group: the common mode of the day before the growth, by UTC hour of day. */
  private readonly reference: (number[] | undefined)[] = [];
  /** Per leaking group: growth of the common mode when it was flagged. */
  private readonly grown: number[] = [];
  private readonly fallbacks: number[] = [];

  constructor(private readonly config: GroupTrendConfig) {}

  private hourOfDay(ms: number): number {
    return Math.floor(ms / this.config.hourMs) % DAY_HOURS;
  }

  /** True while group `g` counts as leaking as a whole. */
  isLeaking(g: number): boolean {
    return this.reference[g] !== undefined;
  }

  /**
   * Records group `g`'s common mode `raw` (from its own members) for the window starting at `now`.
   * `raw` undefined: the group has too few members of its own this window.
   */
  observe(g: number, now: number, raw: number | undefined): GroupVerdict | undefined {
    const ref = this.reference[g];
    if (raw === undefined) return ref === undefined ? undefined : { used: ref[this.hourOfDay(now)]! };
    const hist = this.record(g, now, raw);
    if (ref !== undefined) {
      const above = raw - ref[this.hourOfDay(now)]!;
      this.fallbacks[g] = above < 0.3 * this.grown[g]! ? (this.fallbacks[g] ?? 0) + 1 : 0;
      if (this.fallbacks[g]! < 3) return { used: ref[this.hourOfDay(now)]! };
      this.reference[g] = undefined;
      this.confirms[g] = 0;
      return { used: raw };
    }
    const start = this.judgeLevels(hist) ?? this.judgeDayOverDay(hist);
    this.confirms[g] = start === undefined ? 0 : (this.confirms[g] ?? 0) + 1;
    if (start === undefined || this.confirms[g]! < this.config.confirmWindows) return { used: raw };
    // The reference day: the 24 hours before the growth began.
    const last = hist.length - 1;
    const refDay = new Array<number>(DAY_HOURS).fill(0);
    for (let back = start + 1; back <= start + DAY_HOURS; back++) {
      refDay[this.hourOfDay(now - back * this.config.hourMs)] = hist[last - back]!;
    }
    this.reference[g] = refDay;
    this.grown[g] = raw - refDay[this.hourOfDay(now)]!;
    this.fallbacks[g] = 0;
    const backfill: number[] = [];
    for (let back = 1; back <= start; back++) {
      backfill.push(hist[last - back]! - refDay[this.hourOfDay(now - back * this.config.hourMs)]!);
    }
    return { used: refDay[this.hourOfDay(now)]!, backfill };
  }

  private record(g: number, now: number, raw: number): number[] {
    let hist = this.history[g];
    if (hist === undefined) {
      hist = [];
      this.history[g] = hist;
    }
    const last = this.lastHour[g];
    const gap = last === undefined ? 1 : Math.round((now - last) / this.config.hourMs);
    if (gap > 1) {
      // Missing hours repeat the last value, so an index is hours back.
      const prev = hist[hist.length - 1]!;
      for (let k = 1; k < Math.min(gap, this.config.historyHours); k++) hist.push(prev);
    }
    if (gap >= 1 || hist.length === 0) hist.push(raw);
    else hist[hist.length - 1] = raw;
    this.lastHour[g] = now;
    if (hist.length > this.config.historyHours) hist.splice(0, hist.length - this.config.historyHours);
    return hist;
  }

  /** Hours back to the start of a leak-like growth of the common mode (levels), or undefined. */
  private judgeLevels(hist: readonly number[]): number | undefined {
    const cfg = this.config;
    const n = hist.length;
    const last = n - 1;
    // Need the interval, the day before it and the day before that for the day-over-day scale.
    const maxBack = n - 1 - 2 * DAY_HOURS;
    if (maxBack < 6) return undefined;
    const diffs: number[] = [];
    for (let k = 1; k < n; k++) diffs.push(hist[k]! - hist[k - 1]!);
    const center = median(diffs);
    const noise = Math.max(1.4826 * median(diffs.map((d) => Math.abs(d - center))), 1e-4);
    const now = hist[last]!;
    // The growth starts at the lowest level, older starts needing to be lower by a drift allowance.
    let start = 0;
    let best = now;
    for (let back = 1; back <= Math.min(maxBack, 48); back++) {
      const v = hist[last - back]! + 0.25 * noise * back;
      if (v < best) {
        best = v;
        start = back;
      }
    }
    if (start < 6) return undefined;
    const base = hist[last - start]!;
    const growth = now - base;
    if (growth < cfg.minGrowth || growth < cfg.sigmas * noise) return undefined;
    const ts: number[] = [];
    const zs: number[] = [];
    let maxInc = 0;
    for (let back = start; back >= 0; back--) {
      ts.push(start - back);
      zs.push(hist[last - back]!);
      if (back < start) maxInc = Math.max(maxInc, hist[last - back]! - hist[last - back - 1]!);
    }
    if (maxInc > cfg.maxStepShare * growth) return undefined;
    const fit = new SimpleLinearRegression(ts, zs);
    if (fit.slope * start < cfg.minGrowth || fit.score(ts, zs).r2 < cfg.minR2) return undefined;
    const half = Math.floor(start / 2);
    const firstHalf = hist[last - half]! - base;
    const secondHalf = now - hist[last - half]!;
    if (secondHalf < cfg.pace * firstHalf) return undefined;
    // Above the same hour of the day before, by more than the group's day-over-day wobble
    // (measured before the growth), and above every level of the day before the growth.
    const dayDiffs: number[] = [];
    for (let k = DAY_HOURS; k <= last - start; k++) dayDiffs.push(hist[k]! - hist[k - DAY_HOURS]!);
    const sig24 = Math.max(1.4826 * median(dayDiffs.map((d) => Math.abs(d))), noise);
    if (now - hist[last - DAY_HOURS]! < cfg.seasonalSigmas * sig24) return undefined;
    let dayBeforeTop = Number.NEGATIVE_INFINITY;
    for (let back = start + 1; back <= start + DAY_HOURS; back++)
      dayBeforeTop = Math.max(dayBeforeTop, hist[last - back]!);
    if (now <= dayBeforeTop + 2 * noise) return undefined;
    // Still rising against the same hours of the day before: a leak's day-over-day change keeps
    // growing through its first day, a config step's (on a diurnal slope, say) is flat after it.
    const dod = (back: number) => hist[last - back]! - hist[last - back - DAY_HOURS]!;
    const recent = Math.min(6, start);
    const rise = dod(0) - dod(recent);
    if (rise < Math.max(3 * noise, 0.2 * dod(0))) return undefined;
    // ... and rising hour by hour, not in one jump (the step itself, which the daily shape hides
    // from the levels but not from their day-over-day change).
    let maxJump = 0;
    for (let back = 0; back < recent; back++) maxJump = Math.max(maxJump, dod(back) - dod(back + 1));
    if (maxJump > 0.5 * rise) return undefined;
    return start;
  }

  /**
   * Hours back to the start of a leak-like growth of the common mode, or undefined. Judged on the
   * day-over-day change D(t) = M(t) − M(t − 24 h), which cancels the group's daily shape: a leak
   * that began at s makes D a ramp from zero at s; a config step makes it jump at once; a
   * warm-up makes it rise and slow down; diurnal load leaves it at zero.
   */
  private judgeDayOverDay(hist: readonly number[]): number | undefined {
    const cfg = this.config;
    const n = hist.length;
    const last = n - 1;
    if (n < DAY_HOURS + 12) return undefined;
    const dod = (back: number) => hist[last - back]! - hist[last - back - DAY_HOURS]!;
    // Scales from the day-over-day series: its hourly wobble and its spread before the ramp.
    const maxBack = Math.min(DAY_HOURS, last - DAY_HOURS);
    const steps: number[] = [];
    const level: number[] = [];
    for (let back = 0; back < last - DAY_HOURS; back++) {
      steps.push(dod(back) - dod(back + 1));
      if (back >= 12) level.push(Math.abs(dod(back)));
    }
    const noise = Math.max(1.4826 * median(steps.map((d) => Math.abs(d))), 1e-4);
    const spread = level.length >= 12 ? Math.max(1.4826 * median(level), noise) : 2 * noise;
    const now = dod(0);
    if (now < cfg.minGrowth || now < cfg.seasonalSigmas * spread || now < cfg.sigmas * noise)
      return undefined;
    // The ramp starts where D was last near zero.
    let start = 0;
    while (start < maxBack && dod(start + 1) > Math.max(2 * noise, 0.1 * now)) start++;
    start++;
    if (start < 6 || start > maxBack) return undefined;
    const ts: number[] = [];
    const ds: number[] = [];
    let maxInc = 0;
    for (let back = start; back >= 0; back--) {
      ts.push(start - back);
      ds.push(dod(back));
      if (back < start) maxInc = Math.max(maxInc, dod(back) - dod(back + 1));
    }
    const growth = now - dod(start);
    if (maxInc > cfg.maxStepShare * growth) return undefined;
    const fit = new SimpleLinearRegression(ts, ds);
    if (fit.slope * start < 0.5 * growth || fit.score(ts, ds).r2 < cfg.minR2) return undefined;
    const half = Math.floor(start / 2);
    const firstHalf = dod(half) - dod(start);
    const secondHalf = now - dod(half);
    if (secondHalf < cfg.pace * firstHalf) return undefined;
    // A growth shows against two days back as well as against one: a transient dip a day ago (a
    // rolling deploy's restarts, their warm-up) makes today look like a ramp against yesterday
    // while the level has only come back to where it was before the dip.
    if (last >= 2 * DAY_HOURS && hist[last]! - hist[last - 2 * DAY_HOURS]! < 0.5 * now) return undefined;
    return start;
  }
}
