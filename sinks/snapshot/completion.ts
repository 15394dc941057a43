/**
 * When a trace has seen enough of the leak to diagnose it (DESIGN.md, "Heap snapshots"): the
 * growth pattern decides, from the totals of the profiles in the last `completionWindowMs`.
 *   steady  the total grows linearly: R² > 0.8
 *   stair   the average slope matches the detected one, |1 − slope/slope_k| < 0.1, and the trace
 *           ends on a flat (R² < 0.1 over the last third of the window): a step and the flat
 *           after it are in the profiles. (RESIN states the R² rule without saying over what;
 *           over the whole window it could not hold together with a matching positive slope.)
 *   spike   the profiles saw more than half the detected rise, ΔU/ΔU_k > 0.5
 * and never with fewer than `minProfiles` profiles. Pure.
 */
import type { GrowthPattern } from "../../schemas/suspect.ts";

const HOUR_MS = 3_600_000;

/** What the sink knows of one profile without reading it. */
export interface ProfilePoint {
  takenAt: number;
  /** Live bytes in the profile. */
  bytes: number;
}

/** The detector's view of the leak being traced. */
export interface TracedLeak {
  pattern: GrowthPattern;
  growthBytesPerHour: number;
  /** The suspicious interval (for a spike: the rise to expect is rate × its length). */
  start: number;
  end: number;
}

export interface CompletionRules {
  minProfiles: number;
  completionWindowMs: number;
  steadyMinR2: number;
  stairSlopeTolerance: number;
  stairMaxR2: number;
  spikeMinShare: number;
}

export interface Completion {
  complete: boolean;
  /** Why, in words (for logs and the ticket). */
  reason: string;
}

export interface LinearFit {
  slope: number;
  intercept: number;
  r2: number;
}

/** Least squares of y on x; R² is 0 for a constant y (no trend explained), 1 for 2 points. */
export function linearFit(xs: readonly number[], ys: readonly number[]): LinearFit {
  const n = xs.length;
  if (n === 0) return { slope: 0, intercept: 0, r2: 0 };
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += xs[i]!;
    my += ys[i]!;
  }
  mx /= n;
  my /= n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - mx;
    const dy = ys[i]! - my;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  const r2 = sxx > 0 && syy > 0 ? (sxy * sxy) / (sxx * syy) : 0;
  return { slope, intercept: my - slope * mx, r2 };
}

/** Whether the profiles so far complete the trace of `leak`. */
export function traceCompletion(
  points: readonly ProfilePoint[],
  leak: TracedLeak,
  rules: CompletionRules,
): Completion {
  const ring = [...points].sort((a, b) => a.takenAt - b.takenAt);
  if (ring.length < rules.minProfiles)
    return { complete: false, reason: `${ring.length} of at least ${rules.minProfiles} profiles` };
  const last = ring.at(-1)!.takenAt;
  const recent = ring.filter((p) => p.takenAt >= last - rules.completionWindowMs);
  const hours = recent.map((p) => (p.takenAt - last) / HOUR_MS);
  const fit = linearFit(
    hours,
    recent.map((p) => p.bytes),
  );
  const r2 = fit.r2.toFixed(2);
  switch (leak.pattern) {
    case "steady": {
      if (recent.length < 3) return { complete: false, reason: "fewer than 3 profiles in the window" };
      const ok = fit.r2 > rules.steadyMinR2 && fit.slope > 0;
      return {
        complete: ok,
        reason: ok
          ? `steady growth: R² ${r2} > ${rules.steadyMinR2} over the last ${recent.length} profiles`
          : `R² ${r2}${fit.slope > 0 ? "" : ", not growing"}; waiting for R² > ${rules.steadyMinR2}`,
      };
    }
    case "stair": {
      if (recent.length < 3) return { complete: false, reason: "fewer than 3 profiles in the window" };
      if (!(leak.growthBytesPerHour > 0))
        return { complete: false, reason: "no detected slope to compare with" };
      // The last third of the window (3 profiles at least) must be a flat: the trace has seen a
      // step and the stretch after it, so the step is in the profiles.
      const tail = recent.slice(-Math.max(3, Math.ceil(recent.length / 3)));
      const tailFit = linearFit(
        tail.map((p) => (p.takenAt - last) / HOUR_MS),
        tail.map((p) => p.bytes),
      );
      const off = Math.abs(1 - fit.slope / leak.growthBytesPerHour);
      const ok = off < rules.stairSlopeTolerance && tailFit.r2 < rules.stairMaxR2;
      return {
        complete: ok,
        reason: `stair: slope ${Math.round(off * 100)}% off the detected one (below ${Math.round(
          rules.stairSlopeTolerance * 100,
        )}% needed), R² of the last ${tail.length} profiles ${tailFit.r2.toFixed(2)} (below ${rules.stairMaxR2} needed)`,
      };
    }
    case "spike": {
      const expected = (leak.growthBytesPerHour * Math.max(0, leak.end - leak.start)) / HOUR_MS;
      if (!(expected > 0)) return { complete: false, reason: "no detected rise to compare with" };
      let lowest = Number.POSITIVE_INFINITY;
      let rise = 0;
      for (const p of recent) {
        lowest = Math.min(lowest, p.bytes);
        rise = Math.max(rise, p.bytes - lowest);
      }
      const share = rise / expected;
      const ok = share > rules.spikeMinShare;
      return {
        complete: ok,
        reason: `spike: the profiles rose ${Math.round(share * 100)}% of the detected rise (above ${Math.round(
          rules.spikeMinShare * 100,
        )}% needed)`,
      };
    }
  }
}
