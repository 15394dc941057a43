/**
 * Diagnosis: which allocation stacks hold the leak, from a series of heap profiles of the
 * leaking process (DESIGN.md, "Diagnosis"). RESIN diffs consecutive snapshots, ranks stacks by
 * what each retained, drops those too large for the leak's rate and those seen on healthy
 * hosts. We keep its filters and look at the whole series, because the usual impostors differ
 * from a leak in *how* they grow, not in how much:
 *   - churn goes up and down, so little of its movement is retained;
 *   - a cache fills and settles, so its growth is early and stops;
 *   - warm-up or fleet-wide growth happens on healthy hosts as well.
 * And what a leak retained before the trace began is still there: a stack that holds far more
 * than on any healthy host counts even when it did not grow while we watched (a stair between
 * steps, a spike between spikes).
 * Pure and synchronous: profiles in, ranked culprits with readable reasons out.
 */
import { type Frame, type HeapProfile, stackKey } from "../../lib/heap/profile.ts";
import { median } from "../../lib/stats.ts";

/** The detector's view of the leak, from memory telemetry (not from the profiles). */
export interface LeakEstimate {
  pattern: "steady" | "stair" | "spike";
  /** Growth rate of the process's memory, bytes per hour. 0 when unknown. */
  growthBytesPerHour: number;
  /**
   * Since when the process may have been accumulating the leak, epoch ms, when known (its start is
   * a safe bound; a detector's suspicious interval may begin long after the leak did): unless
   * spike, a stack cannot hold more beyond the references than the leak could have retained since.
   */
  since?: number;
}

export interface DiagnoseInput {
  /** Profiles of the suspect process, ≥ 2; sorted by `takenAt` here. */
  profiles: HeapProfile[];
  /**
   * Profiles of healthy hosts running the same thing, one series per host (sorted here), to tell
   * how fast each stack grows where nothing leaks. Series of fewer than 2 profiles are ignored.
   */
  references?: HeapProfile[][];
  estimate: LeakEstimate;
}

export interface DiagnoseOptions {
  /** How many culprits to return. */
  topN: number;
  /** A change of at most this many bytes between two profiles is noise, not growth or shrinkage. */
  noiseBytes: number;
  /** Unless spike, drop stacks that grew more than this many times the leak's rate × the window. */
  maxGrowthOverEstimate: number;
  /** Drop stacks that grow on healthy hosts at least this fraction of their rate here. */
  referenceDropRatio: number;
  /**
   * A stack that held, throughout the series, more than this many times the most it held on any
   * healthy host holds memory they do not: the bytes beyond that add to its score.
   */
  excessOverReferences: number;
}

export const DEFAULT_DIAGNOSE_OPTIONS: DiagnoseOptions = {
  topN: 5,
  noiseBytes: 0,
  maxGrowthOverEstimate: 2,
  referenceDropRatio: 0.5,
  excessOverReferences: 3,
};

export interface Culprit {
  /** Leaf (allocating function) first. */
  frames: Frame[];
  /** In-use bytes retained over the series: last profile minus first (last two in a fallback). */
  growthBytes: number;
  /**
   * Bytes it held throughout the series (its smallest size) beyond `excessOverReferences` × the
   * most any healthy host held; 0 without references or when within that.
   */
  excessBytes: number;
  /** Share of the growth of every stack that grew (filtered out or not), 0..1. */
  growthShare: number;
  /** Intervals between consecutive profiles in which this stack grew (of `intervals`). */
  growingIntervals: number;
  intervals: number;
  /** Ranking score, in bytes: the growth discounted by how little it looks like a leak. */
  score: number;
  reason: string;
}

export interface Diagnosis {
  culprits: Culprit[];
  /** `series` normally; `last-two` when every stack was filtered out and we fell back. */
  method: "series" | "last-two";
  /** Stacks removed by each filter, so a thin result can be explained. */
  dropped: { tooLarge: number; onReferences: number };
  /** Time from the first to the last profile, ms. */
  windowMs: number;
}

interface StackSeries {
  frames: Frame[];
  /** In-use bytes in each profile, 0 where the stack is absent. */
  bytes: number[];
}

/** Rank the stacks most likely to hold the leak. Throws on fewer than two profiles. */
export function diagnose(input: DiagnoseInput, options: Partial<DiagnoseOptions> = {}): Diagnosis {
  const opts = { ...DEFAULT_DIAGNOSE_OPTIONS, ...options };
  if (input.profiles.length < 2) {
    throw new RangeError(`diagnosis needs at least 2 profiles of the suspect, got ${input.profiles.length}`);
  }
  const profiles = byTime(input.profiles);
  const series = seriesByStack(profiles);
  const windowMs = profiles.at(-1)!.takenAt - profiles[0]!.takenAt;
  const referenceSeries = (input.references ?? []).filter((r) => r.length >= 2).map(byTime);
  const references = referenceSeries.map(referenceGrowth);
  const referenceMax = largestOnReferences(referenceSeries);
  const dropped = { tooLarge: 0, onReferences: 0 };

  const candidates: Omit<Culprit, "growthShare">[] = [];
  let totalGrowth = 0;
  const { pattern, growthBytesPerHour, since } = input.estimate;
  const maxGrowth = opts.maxGrowthOverEstimate * growthBytesPerHour * (windowMs / HOUR_MS);
  const lastAt = profiles.at(-1)!.takenAt;
  // Unless spike, no stack holds more of the leak than it could have retained since it began.
  const maxExcess =
    pattern !== "spike" && since !== undefined && growthBytesPerHour > 0
      ? opts.maxGrowthOverEstimate * growthBytesPerHour * (Math.max(0, lastAt - since) / HOUR_MS)
      : Number.POSITIVE_INFINITY;
  for (const s of series.values()) {
    const shape = growthShape(s.bytes, opts.noiseBytes);
    const grew = shape.net > opts.noiseBytes;
    if (grew) totalGrowth += shape.net;
    let excess = 0;
    if (referenceMax !== null) {
      excess = Math.max(0, Math.min(...s.bytes) - opts.excessOverReferences * referenceMax.get(s.frames));
      if (excess <= opts.noiseBytes || excess > maxExcess) excess = 0;
    }
    if (!grew && excess === 0) continue;

    const reasons: string[] = [];
    let score = 0;
    const tooLarge = grew && pattern !== "spike" && maxGrowth > 0 && shape.net > maxGrowth;
    if (tooLarge) {
      // More growth than the leak's rate allows: not scored as growth. What it holds beyond
      // healthy hosts still counts (the detector may have underestimated the rate).
      if (excess === 0) {
        dropped.tooLarge++;
        continue;
      }
      reasons.push(`${describeGrowth(shape)}, more than the leak's rate allows: growth not scored`);
    } else if (grew) {
      reasons.push(describeGrowth(shape));
      score = shape.net * shape.retained;
      if (pattern === "steady") {
        // A steady leak grows in most intervals; growth in few of them is a burst or a fill.
        score *= shape.growing / shape.intervals;
      }
      if (pattern !== "spike") {
        // A cache stops growing once full; a leak does not. A spike's single rise may come early.
        score *= shape.lateFactor;
        if (shape.lateFactor < 0.5) reasons.push("grew early then settled, like a cache filling");
      }
      const ref = referenceFactor(s.frames, shape.net, shape.intervals, windowMs, references, opts);
      if (ref.drop && excess === 0) {
        dropped.onReferences++;
        continue;
      }
      // Growth that healthy hosts share explains nothing; what it holds beyond theirs still may.
      score *= ref.factor;
      if (ref.note) reasons.push(ref.note);
    } else {
      reasons.push(`did not grow (${formatBytes(shape.net)} over ${shape.intervals} intervals)`);
    }
    if (excess > 0) {
      score += excess;
      reasons.push(
        `held ${formatBytes(excess)} beyond ${opts.excessOverReferences}× the most any of ` +
          `${references.length} healthy hosts held`,
      );
    }

    candidates.push({
      frames: s.frames,
      growthBytes: shape.net,
      excessBytes: excess,
      growingIntervals: shape.growing,
      intervals: shape.intervals,
      score,
      reason: reasons.join("; "),
    });
  }

  if (candidates.length === 0) {
    const why = totalGrowth > 0 ? "every stack that grew was filtered out" : "no stack grew";
    return { culprits: lastTwo(profiles, opts, why), method: "last-two", dropped, windowMs };
  }
  return { culprits: rank(candidates, totalGrowth, opts.topN), method: "series", dropped, windowMs };
}

const HOUR_MS = 3_600_000;

/** How a stack's in-use bytes moved over the series. */
interface GrowthShape {
  /** Last minus first. */
  net: number;
  /** net / total movement, 0..1: 1 when it only ever grew, near 0 for churn. */
  retained: number;
  growing: number;
  intervals: number;
  /** Share of net growth made in the later half of the series. */
  lateShare: number;
  /** lateShare relative to an even spread over the series, capped to [0.1, 1]. */
  lateFactor: number;
}

function growthShape(bytes: number[], noise: number): GrowthShape {
  const intervals = bytes.length - 1;
  let movement = 0;
  let growing = 0;
  for (let i = 1; i <= intervals; i++) {
    const d = bytes[i]! - bytes[i - 1]!;
    movement += Math.abs(d);
    if (d > noise) growing++;
  }
  const net = bytes[intervals]! - bytes[0]!;
  // Later half: from the middle profile on (for 2 profiles, the only interval).
  const mid = Math.floor(intervals / 2);
  const lateShare = net > 0 ? Math.max(0, bytes[intervals]! - bytes[mid]!) / net : 0;
  const evenShare = (intervals - mid) / intervals;
  return {
    net,
    retained: movement > 0 ? Math.max(0, net) / movement : 0,
    growing,
    intervals,
    lateShare,
    lateFactor: Math.min(1, Math.max(0.1, lateShare / evenShare)),
  };
}

function describeGrowth(g: GrowthShape): string {
  const parts = [
    `grew ${formatBytes(g.net)}`,
    `in ${g.growing} of ${g.intervals} intervals`,
    `kept ${percent(g.retained)} of what moved`,
  ];
  if (g.intervals > 1) parts.push(`${percent(Math.min(1, g.lateShare))} of it in the later half`);
  return parts.join(", ");
}

/** A healthy host's growth per stack over its series, and how long the series lasted. */
interface ReferenceGrowth {
  growth: StackMap;
  ms: number;
  intervals: number;
}

function referenceGrowth(series: HeapProfile[]): ReferenceGrowth {
  const growth = new StackMap();
  for (const s of seriesByStack([series[0]!, series.at(-1)!]).values()) {
    growth.add(s.frames, s.bytes[1]! - s.bytes[0]!);
  }
  return { growth, ms: series.at(-1)!.takenAt - series[0]!.takenAt, intervals: series.length - 1 };
}

/** The most each stack held in any profile of any reference; null without references. */
function largestOnReferences(series: HeapProfile[][]): StackMap | null {
  if (series.length === 0) return null;
  const most = new Map<string, { frames: Frame[]; bytes: number }>();
  for (const r of series) {
    for (const s of seriesByStack(r).values()) {
      const key = stackKey(s.frames);
      most.set(key, { frames: s.frames, bytes: Math.max(most.get(key)?.bytes ?? 0, ...s.bytes) });
    }
  }
  const map = new StackMap();
  for (const m of most.values()) map.add(m.frames, m.bytes);
  return map;
}

/**
 * Bytes per stack of a reference, found by the exact stack or, when a release moved lines (the
 * reference runs another version), by the same functions and files: the sum over its stacks
 * that differ from it only in lines.
 */
class StackMap {
  private readonly byStack = new Map<string, number>();
  private readonly byFunctions = new Map<string, number>();

  add(frames: Frame[], bytes: number): void {
    this.byStack.set(stackKey(frames), bytes);
    const f = functionsKey(frames);
    this.byFunctions.set(f, (this.byFunctions.get(f) ?? 0) + bytes);
  }

  get(frames: Frame[]): number {
    return this.byStack.get(stackKey(frames)) ?? this.byFunctions.get(functionsKey(frames)) ?? 0;
  }
}

function functionsKey(frames: Frame[]): string {
  return JSON.stringify(frames.map((f) => [f.fn, f.file]));
}

/**
 * How much healthy hosts explain this stack's growth: its growth rate there (median across
 * hosts, so one odd host decides nothing; absent from a host = 0 there) relative to here.
 * Rates are per hour, or per interval when some series has no time span.
 */
function referenceFactor(
  frames: Frame[],
  net: number,
  intervals: number,
  windowMs: number,
  references: ReferenceGrowth[],
  opts: DiagnoseOptions,
): { drop: boolean; factor: number; note?: string } {
  if (references.length === 0) return { drop: false, factor: 1 };
  const useHours = windowMs > 0 && references.every((r) => r.ms > 0);
  const rate = (growth: number, ms: number, n: number) => growth / (useHours ? ms / HOUR_MS : n);
  const here = rate(net, windowMs, intervals);
  const there = median(references.map((r) => rate(r.growth.get(frames), r.ms, r.intervals)));
  if (there >= opts.referenceDropRatio * here) {
    return { drop: true, factor: 0, note: `grows ${percent(there / here)} as fast on healthy hosts` };
  }
  if (there <= 0) return { drop: false, factor: 1 };
  return {
    drop: false,
    factor: 1 - there / here,
    note: `grows ${percent(there / here)} as fast on healthy hosts`,
  };
}

/** RESIN's fallback: what grew between the last two profiles, unfiltered. */
function lastTwo(profiles: HeapProfile[], opts: DiagnoseOptions, why: string): Culprit[] {
  const last = seriesByStack(profiles.slice(-2));
  const candidates: Omit<Culprit, "growthShare">[] = [];
  for (const s of last.values()) {
    const net = s.bytes[1]! - s.bytes[0]!;
    if (net <= opts.noiseBytes) continue;
    candidates.push({
      frames: s.frames,
      growthBytes: net,
      excessBytes: 0,
      growingIntervals: 1,
      intervals: 1,
      score: net,
      reason: `${why} over the series; grew ${formatBytes(net)} between the last two profiles`,
    });
  }
  return rank(
    candidates,
    candidates.reduce((a, c) => a + c.growthBytes, 0),
    opts.topN,
  );
}

/** Best first; `total` is the growth of every stack that grew, filtered out or not. */
function rank(candidates: Omit<Culprit, "growthShare">[], total: number, topN: number): Culprit[] {
  return candidates
    .sort(
      (a, b) =>
        b.score - a.score ||
        b.growthBytes - a.growthBytes ||
        (stackKey(a.frames) < stackKey(b.frames) ? -1 : 1),
    )
    .slice(0, topN)
    .map((c) => ({ ...c, growthShare: total > 0 ? Math.max(0, c.growthBytes) / total : 0 }));
}

function seriesByStack(profiles: HeapProfile[]): Map<string, StackSeries> {
  const series = new Map<string, StackSeries>();
  profiles.forEach((p, i) => {
    for (const stack of p.stacks) {
      const key = stackKey(stack.frames);
      let s = series.get(key);
      if (!s) {
        s = { frames: stack.frames, bytes: new Array(profiles.length).fill(0) };
        series.set(key, s);
      }
      s.bytes[i]! += stack.bytes;
    }
  });
  return series;
}

function byTime(profiles: HeapProfile[]): HeapProfile[] {
  return [...profiles].sort((a, b) => a.takenAt - b.takenAt);
}

function percent(x: number): string {
  return `${Math.round(x * 100)}%`;
}

function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}
