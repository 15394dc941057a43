import { SimpleLinearRegression } from "ml-regression";
import type { GrowthPattern } from "../../schemas/suspect.ts";

export interface PatternResult {
  pattern: GrowthPattern;
  /** Growth per hour of the log level over the growing parts (steady: the whole interval). */
  slopePerHour: number;
  /** Share of the interval's hours that were flat. */
  flatShare: number;
}

/**
 * Classifies the growth of a suspicious interval from its hourly levels (log scale), as RESIN
 * does: near-flat hours are dropped, linear regression is fitted to the growing ones; no flat
 * stretch → steady; flat stretches between growing ones → stair; most of the rise in a few
 * hours → spike. `noise` is the typical hourly change of a healthy series (same scale).
 */
export function classifyGrowth(levels: ArrayLike<number>, noise: number): PatternResult {
  const n = levels.length;
  if (n < 3) return { pattern: "steady", slopePerHour: n === 2 ? levels[1]! - levels[0]! : 0, flatShare: 0 };
  const incs: number[] = [];
  for (let i = 1; i < n; i++) incs.push(levels[i]! - levels[i - 1]!);
  const total = levels[n - 1]! - levels[0]!;
  const rises = incs.filter((d) => d > 0).sort((a, b) => b - a);
  const positive = rises.reduce((a, b) => a + b, 0);

  // Spike: one to three hours carry most of the rise, each far above the noise and the other hours.
  if (total > 0 && incs.length >= 4) {
    let top = 0;
    for (let k = 0; k < Math.min(3, rises.length); k++) {
      top += rises[k]!;
      const rest = rises.slice(k + 1);
      const typicalRest = rest.length > 0 ? rest[rest.length >> 1]! : 0;
      if (rises[k]! < 5 * noise || rises[k]! < 4 * typicalRest) break;
      if (top >= 0.6 * positive)
        return { pattern: "spike", slopePerHour: total / (n - 1), flatShare: 1 - (k + 1) / incs.length };
    }
  }

  // Flat hours: change within the noise, or small against the typical rise.
  const meanRise = positive / Math.max(1, rises.length);
  const flatTol = Math.max(2 * noise, 0.25 * meanRise);
  const flat = incs.map((d) => Math.abs(d) <= flatTol);
  const flatCount = flat.filter(Boolean).length;
  let growingRuns = 0;
  let flatRunsBetween = 0;
  let i = 0;
  while (i < flat.length) {
    const isFlat = flat[i];
    let j = i;
    while (j < flat.length && flat[j] === isFlat) j++;
    if (!isFlat) growingRuns++;
    else if (i > 0 && j < flat.length && j - i >= 3) flatRunsBetween++;
    i = j;
  }
  const growingHours: number[] = [];
  const growingLevels: number[] = [];
  let cumulative = 0;
  for (let h = 0; h < incs.length; h++) {
    if (!flat[h]) {
      cumulative += incs[h]!;
      growingHours.push(growingHours.length);
      growingLevels.push(cumulative);
    }
  }
  const flatShare = flatCount / incs.length;
  let flatRise = 0;
  let growRise = 0;
  for (let h = 0; h < incs.length; h++) {
    if (flat[h]) flatRise += incs[h]!;
    else growRise += incs[h]!;
  }
  const flatPace = flatRise / Math.max(1, flatCount);
  const growPace = growRise / Math.max(1, incs.length - flatCount);
  if (growingRuns >= 2 && flatRunsBetween >= 1 && flatShare >= 0.3 && growPace > 5 * Math.max(flatPace, 0)) {
    const slope =
      growingHours.length >= 2
        ? new SimpleLinearRegression(growingHours, growingLevels).slope
        : total / (n - 1);
    return { pattern: "stair", slopePerHour: slope, flatShare };
  }
  const hours = Array.from({ length: n }, (_, h) => h);
  const fit = new SimpleLinearRegression(hours, Array.from(levels));
  return { pattern: "steady", slopePerHour: fit.slope, flatShare };
}
