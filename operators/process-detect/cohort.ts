import { median } from "../../lib/stats.ts";

/**
 * One member of a version cohort, as the cohort check reads it: its levels `z[b]` (log scale,
 * against its peers' common mode, `b` hours back) and its day-over-day changes `d[b]` (the level
 * less the smoothed level 24 hours earlier), with the scales that say what is noise for it.
 */
export interface CohortMember {
  z: Float64Array;
  d: Float64Array;
  /** Hourly level noise (log scale). */
  noise: number;
  /** Day-over-day wobble (log scale). */
  sig24: number;
  /** Whole hours since the member restarted into the version. */
  age: number;
}

export interface CohortCheckConfig {
  /** Growth and level must stand this many standard errors of the cohort's median above zero. */
  sigmas: number;
  /** Smallest median growth above the day before (log scale). */
  minRelGrowth: number;
  /** Shortest growth, in windows. */
  minHours: number;
  /** A single hour may not carry more than this share of the cohort's growth (a version's step). */
  maxStepShare: number;
  /** The second half of the growth must keep this share of the first half's pace (a warm-up slows). */
  pace: number;
  /** Fewest members whose growth over an interval can be judged (see `cohortGrowthStart`). */
  minMembers: number;
}

/** Standard error of a median of k normal values, in units of their spread, times √k. */
const MEDIAN_SE = 1.2533;

/** Where a version cohort's growth began (hours back), and how much its median member grew since. */
export interface CohortGrowth {
  start: number;
  growth: number;
}

/**
 * Where a version cohort's shared growth began, or undefined when the cohort does not grow like
 * a leak. A leaking version leaks on every host that runs it, so its hosts rise
 * together, while a host's bursts, sawtooth and tenant steps are its own: the median over k hosts
 * has 1/√k of one host's noise, and a leak stands out of it hours before it stands out of any one
 * host. Its hosts restarted into the version, so the check must also tell a leak from the
 * restart's warm-up and from a version that just needs more memory:
 *
 * - the cohort's median level is above the same hours of the day before (a warm-up only
 *   climbs back to where the process was), by `sigmas` standard errors and `minRelGrowth`;
 * - it grew since its lowest point by `sigmas` standard errors of the median growth;
 * - not in one step (a version that needs more memory steps once, then holds);
 * - without slowing down (a warm-up does).
 *
 * When the whole growth fails, later starts are tried (the longest that passes; see
 * `laterStarts`): a restart's warm-up is fast for an hour or a few, then the leak's own pace
 * shows.
 *
 * Members are the cohort's hosts with as many hours of history as the check reads (`z` and `d`
 * of equal length across members, at least `minHours + 1`).
 */
export function cohortGrowthStart(
  members: readonly CohortMember[],
  cfg: CohortCheckConfig,
): CohortGrowth | undefined {
  const k = members.length;
  if (k === 0 || k < cfg.minMembers) return undefined;
  const hours = members[0]!.z.length - 1;
  const root = Math.sqrt(k) / MEDIAN_SE;
  const over = (list: readonly CohortMember[], f: (m: CohortMember) => number) => median(list.map(f));
  const above = over(members, (m) => m.d[0]!);
  if (above < cfg.minRelGrowth || over(members, (m) => m.d[0]! / m.sig24) * root < cfg.sigmas)
    return undefined;
  // The lowest point of the cohort's day-over-day change: where its growth began.
  let start = 0;
  let low = above;
  for (let b = 1; b <= hours; b++) {
    const v = over(members, (m) => m.d[b]!);
    if (v < low) {
      low = v;
      start = b;
    }
  }
  // No further back than enough members ran the version (see below).
  const ages = members.map((m) => m.age).sort((x, y) => y - x);
  start = Math.min(start, ages[cfg.minMembers - 1]! + 1);
  for (const h of laterStarts(start, cfg.minHours)) {
    // Growth over `h` hours only of the members that ran the version then (or restarted into it
    // within the hour): a rolling deploy restarts its hosts hours apart, and the steps of its
    // later members from the old version to a new one that needs more memory, staggered, would
    // add up to a climb.
    const judged = members.filter((m) => m.age + 1 >= h);
    if (judged.length < cfg.minMembers) continue;
    const rootJudged = Math.sqrt(judged.length) / MEDIAN_SE;
    if (over(judged, (m) => (m.z[0]! - m.z[h]!) / (Math.SQRT2 * m.noise)) * rootJudged < cfg.sigmas) continue;
    // The cohort's path since `h`: the median of its members' levels against their own at `h`.
    const path: number[] = [];
    for (let b = 0; b <= h; b++) path.push(over(judged, (m) => m.z[b]! - m.z[h]!));
    const grown = path[0]!;
    let maxStep = 0;
    for (let b = 0; b < h; b++) maxStep = Math.max(maxStep, path[b]! - path[b + 1]!);
    // Paces per hour: over an odd number of hours the newer half is an hour shorter. (Its growth
    // against the older half's asked 0.9 of the older pace over 5 hours and 1.2 over 3, and a
    // cache's canary, refilling for hours under its leak, failed it for hours. Rolling deploys'
    // warm-ups keep 0.6–0.7 of their pace for hours: what that held back, `cohortSettleHours`
    // holds now.)
    const mid = Math.floor(h / 2);
    const half = path[mid]!;
    const keepsPace = mid > 0 && (grown - half) * (h - mid) >= cfg.pace * half * mid;
    if (grown >= cfg.minRelGrowth && maxStep <= cfg.maxStepShare * grown && keepsPace)
      return { start: h, growth: grown };
  }
  return undefined;
}

/**
 * The starts (hours back) a cohort's growth is judged from, longest first: its lowest point, the
 * three hours after it, then halves of it. A restart's first hour or few are often a cache
 * refilling in a step, which fails the whole growth's one-step or pace test; the half after it
 * is often too short to clear its standard errors, so a leaking cohort passed in one window and
 * not the next. Every hour down to the shortest is not tried: among so many starts, a rolling
 * deploy's slow warm-ups find one that passes (altgen 7022: 14 hosts of one version).
 */
function laterStarts(start: number, minHours: number): number[] {
  const starts: number[] = [];
  for (let h = start; h >= Math.max(minHours, start - 3); h--) starts.push(h);
  for (let h = Math.floor(start / 2); h >= minHours; h = Math.floor(h / 2)) if (h < start - 3) starts.push(h);
  return starts;
}
