/**
 * Root-cause accuracy of the diagnosis on a simulated fleet. For each leak resin found (a
 * true-positive suspect of a process leak), heap profiles are taken the way the snapshot sink
 * takes them (DESIGN.md "Heap snapshots"): every 30 min from the suspect's detectedAt, until
 * the pattern's completion rule holds over the traced span (at least 3 profiles) or for at most
 * 6 h, together with profiles of up to 3 healthy hosts running the same process at the same times.
 * `diagnose` ranks the stacks; the diagnosis is right at rank k when the k-th culprit's leaf
 * (function and file) is the leaf of the stack the truth names.
 * The profiles come from the simulator's heap model (simulate/heap.ts), the process memory the
 * sink would read from telemetry from the plan (with per-sample noise).
 */
import type { Frame, HeapProfile } from "../lib/heap/profile.ts";
import type { GrowthPattern } from "../schemas/suspect.ts";
import { leakStackOf, NoHeapProfileError, simulatedHeapProfile } from "../simulate/heap.ts";
import {
  type CompPlan,
  type HostPlan,
  healthyBytesAt,
  leakedBytesAt,
  lifeAt,
  type Plan,
  type ProcPlan,
} from "../simulate/plan.ts";
import { hash32 } from "../simulate/rng.ts";
import {
  type Culprit,
  DEFAULT_DIAGNOSE_OPTIONS,
  diagnose,
  type LeakEstimate,
} from "../sinks/snapshot/diagnose.ts";
import { fitLine, median } from "./stats.ts";
import { type Detection, HOUR_MS, type Target, type TruePositive, type TruthEval } from "./types.ts";

export interface DiagnosisOptions {
  /** Time between two profiles of a trace. */
  profileEveryMs: number;
  /** Longest trace (and the span the completion rule looks at: the sink's ring). */
  maxTraceMs: number;
  /** Profiles a trace needs before it may complete, and before a diagnosis is attempted. */
  minProfiles: number;
  /** Healthy hosts profiled alongside (fewer when fewer qualify). */
  references: number;
  /** A reference must not have grown over this much history before the trace (its current life)... */
  referenceHistoryMs: number;
  /** ...and have run at least this long, to tell. */
  referenceMinAgeMs: number;
  /** ...faster than this fraction of the suspect's estimated rate. */
  referenceMaxGrowthRatio: number;
}

export const DEFAULT_DIAGNOSIS_OPTIONS: DiagnosisOptions = {
  profileEveryMs: 30 * 60_000,
  maxTraceMs: 6 * HOUR_MS,
  minProfiles: 3,
  references: 3,
  referenceHistoryMs: 24 * HOUR_MS,
  referenceMinAgeMs: 3 * HOUR_MS,
  referenceMaxGrowthRatio: 0.25,
};

export const DIAGNOSIS_RULE =
  "Root-cause accuracy, on simulated heap profiles (simulate/heap.ts). For each resin true positive of a " +
  "process leak: one profile of the suspect's pid every 30 min from its detectedAt, until the completion " +
  "rule of resin's pattern holds over the traced span (steady: R² > 0.8; stair: |1 − slope/slope_k| < 0.1 " +
  "and R² < 0.1; spike: a rise ≥ 0.5 × the largest 1 h rise of the suspicious interval; on the process's " +
  "5-min memory) with at least 3 profiles, or for 6 h; a restart or the host going down ends the trace. " +
  "Reference profiles at the same times from up to 3 hosts running the same process that resin has not " +
  "flagged by then and whose memory over their current life (at least 3 h, at most the last 24 h; " +
  "Theil–Sen slope of hourly medians) grew slower than 25% of the suspect's rate; hosts running the " +
  "version most hosts run (the baseline a canary is compared with) in the suspect's cluster first, then " +
  "elsewhere, then other versions in the cluster, then any. diagnose() is told resin's pattern, resin's rate (or the traced memory's slope when " +
  "faster) and the process's start (since when it may have been leaking). Top-k is right when one of the first k culprits has the truth stack's leaf " +
  "function and file. Rates are over diagnosed leaks (traces with at least 3 profiles).";

/** How a trace ended. */
export type TraceEnd = "complete" | "max-duration" | "restarted" | "host-down";

export interface CulpritSummary {
  /** Leaf frame of the culprit's stack. */
  frame: Frame;
  growthBytes: number;
  excessBytes: number;
  score: number;
  reason: string;
}

export interface DiagnosisCase extends Target {
  /** Index into EvalResult.truth. */
  truth: number;
  pid: number;
  truthPattern: GrowthPattern;
  cause?: string;
  /** What the diagnosis was told: resin's pattern and rate (the traced memory's slope when faster). */
  estimate: LeakEstimate;
  /** resin's estimated rate, bytes per hour. */
  detectedGrowthBytesPerHour: number;
  /** Leaf of the leaking stack. */
  truthLeaf: Frame;
  from: number;
  to: number;
  profiles: number;
  referenceHosts: string[];
  traceEnd: TraceEnd;
  diagnosed: boolean;
  /** Why no diagnosis was made (fewer than minProfiles profiles). */
  reason?: string;
  method?: "series" | "last-two";
  /** 1-based rank of the first culprit with the truth's leaf; null when none of them has it. */
  rank: number | null;
  /** The first three culprits. */
  culprits: CulpritSummary[];
  dropped?: { tooLarge: number; onReferences: number };
}

export interface DiagnosisMetrics {
  /** True positives of process leaks. */
  cases: number;
  diagnosed: number;
  top1: number;
  top3: number;
  /** Over diagnosed cases; null when none. */
  top1Rate: number | null;
  top3Rate: number | null;
  /** Traces that ended because the completion rule held. */
  complete: number;
}

export interface DiagnosisResult {
  rule: string;
  options: DiagnosisOptions;
  overall: DiagnosisMetrics;
  /** By truth pattern. */
  byPattern: Record<string, DiagnosisMetrics>;
  cases: DiagnosisCase[];
}

/**
 * Diagnoses every true positive of a process leak on simulated profiles and scores the ranking.
 * `truth` are the judged truth records and `detections` all of resin's (for the references: a
 * host resin flagged is not healthy).
 */
export function evaluateDiagnosis(
  plan: Plan,
  truth: readonly TruthEval[],
  truePositives: readonly TruePositive[],
  detections: readonly Detection[],
  options: Partial<DiagnosisOptions> = {},
): DiagnosisResult {
  const opts = { ...DEFAULT_DIAGNOSIS_OPTIONS, ...options };
  const cases: DiagnosisCase[] = [];
  for (const tp of truePositives) {
    const t = truth[tp.truth[0]!];
    if (t === undefined || t.record.kind !== "process") continue;
    const entry = plan.leaks.find(
      (l) =>
        l.host.id === t.record.host && l.comp.name === t.record.component && l.proc.name === t.record.process,
    );
    if (entry === undefined) {
      throw new Error(`the simulation has no leak ${t.key}: it does not match the truth records`);
    }
    cases.push(diagnoseCase(plan, entry, t, tp, detections, opts));
  }
  const byPattern: Record<string, DiagnosisMetrics> = {};
  for (const p of [...new Set(cases.map((c) => c.truthPattern))].sort()) {
    byPattern[p] = scoreCases(cases.filter((c) => c.truthPattern === p));
  }
  return { rule: DIAGNOSIS_RULE, options: opts, overall: scoreCases(cases), byPattern, cases };
}

/** Top-1 and top-3 counts and rates over the diagnosed cases. */
export function scoreCases(cases: readonly DiagnosisCase[]): DiagnosisMetrics {
  const diagnosed = cases.filter((c) => c.diagnosed);
  const top1 = diagnosed.filter((c) => c.rank === 1).length;
  const top3 = diagnosed.filter((c) => c.rank !== null && c.rank <= 3).length;
  const rate = (n: number) => (diagnosed.length > 0 ? n / diagnosed.length : null);
  return {
    cases: cases.length,
    diagnosed: diagnosed.length,
    top1,
    top3,
    top1Rate: rate(top1),
    top3Rate: rate(top3),
    complete: cases.filter((c) => c.traceEnd === "complete").length,
  };
}

/** 1-based rank of the first culprit whose leaf has the function and file of `leaf`; null if none. */
export function rankOf(culprits: readonly Pick<Culprit, "frames">[], leaf: Frame): number | null {
  const i = culprits.findIndex((c) => c.frames[0]?.fn === leaf.fn && c.frames[0]?.file === leaf.file);
  return i < 0 ? null : i + 1;
}

type LeakEntry = Plan["leaks"][number];

function diagnoseCase(
  plan: Plan,
  entry: LeakEntry,
  t: TruthEval,
  tp: TruePositive,
  detections: readonly Detection[],
  opts: DiagnosisOptions,
): DiagnosisCase {
  const { host, comp, proc } = entry;
  const start = tp.detectedAt;
  const pid = tp.pid ?? lifeAt(proc, start).pid;
  const life = lifeAt(proc, start);
  const estimate: LeakEstimate = {
    pattern: tp.pattern ?? "steady",
    growthBytesPerHour: Math.max(0, tp.growthBytesPerHour ?? 0),
    since: life.startedAt,
  };
  const truthLeaf = (t.record.stack ?? leakStackOf(plan, entry))[0]!;
  const target = { host: host.id, component: comp.name, process: proc.name };
  const refs = pickReferences(plan, entry, start, estimate, detections, opts);

  const profiles: HeapProfile[] = [];
  const references: HeapProfile[][] = refs.map(() => []);
  const refAlive = refs.map(() => true);
  let traceEnd: TraceEnd = "max-duration";
  const spikeSize = estimate.pattern === "spike" ? largestRise(plan, host, comp, proc, tp, HOUR_MS) : 0;
  for (let at = start; at <= start + opts.maxTraceMs; at += opts.profileEveryMs) {
    try {
      profiles.push(simulatedHeapProfile(plan, { ...target, pid }, at));
    } catch (err) {
      if (!(err instanceof NoHeapProfileError)) throw err;
      traceEnd = err.reason === "host-down" ? "host-down" : "restarted";
      break;
    }
    refs.forEach((r, i) => {
      if (!refAlive[i]) return;
      try {
        references[i]!.push(simulatedHeapProfile(plan, r.target, at));
      } catch (err) {
        if (!(err instanceof NoHeapProfileError)) throw err;
        refAlive[i] = false; // that reference's series ends here
      }
    });
    if (profiles.length >= opts.minProfiles && traceComplete(plan, entry, start, at, estimate, spikeSize)) {
      traceEnd = "complete";
      break;
    }
  }

  const base: DiagnosisCase = {
    ...target,
    truth: t.index,
    pid,
    truthPattern: t.record.pattern,
    ...(t.record.cause !== undefined ? { cause: t.record.cause } : {}),
    estimate,
    detectedGrowthBytesPerHour: estimate.growthBytesPerHour,
    truthLeaf,
    from: start,
    to: profiles.at(-1)?.takenAt ?? start,
    profiles: profiles.length,
    referenceHosts: refs.map((r) => r.target.host),
    traceEnd,
    diagnosed: false,
    rank: null,
    culprits: [],
  };
  if (profiles.length < opts.minProfiles) {
    return { ...base, reason: `only ${profiles.length} profile(s) before the trace ended (${traceEnd})` };
  }
  // The sink watches the memory while it traces: when the leak runs faster than the detector
  // estimated, it tells the diagnosis the faster rate (which bounds how much a stack may grow).
  const traced = memorySeries(plan, entry, start, profiles.at(-1)!.takenAt);
  const tracedSlope = (fitLine(traced.xs, traced.ys)?.slope ?? 0) * HOUR_MS;
  const told = { ...estimate, growthBytesPerHour: Math.max(estimate.growthBytesPerHour, tracedSlope) };
  const d = diagnose({ profiles, references, estimate: told }, { topN: DEFAULT_DIAGNOSE_OPTIONS.topN });
  return {
    ...base,
    diagnosed: true,
    estimate: told,
    method: d.method,
    rank: rankOf(d.culprits, truthLeaf),
    culprits: d.culprits.slice(0, 3).map((c) => ({
      frame: c.frames[0]!,
      growthBytes: c.growthBytes,
      excessBytes: c.excessBytes,
      score: c.score,
      reason: c.reason,
    })),
    dropped: d.dropped,
  };
}

/**
 * The process's memory as an agent would report it at `t`: healthy with per-sample noise (its own
 * draw, not the telemetry file's), plus the leak.
 */
export function simulatedMemoryAt(
  plan: Plan,
  host: HostPlan,
  comp: CompPlan,
  proc: ProcPlan,
  t: number,
): number {
  const u = (hash32(`${plan.config.seed}/mem/${host.id}/${comp.name}/${proc.name}/${t}`, 3) + 0.5) / 2 ** 32;
  const v = (hash32(`${plan.config.seed}/mem/${host.id}/${comp.name}/${proc.name}/${t}`, 5) + 0.5) / 2 ** 32;
  const n = Math.max(-4, Math.min(4, Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)));
  return healthyBytesAt(host, comp, proc, t) * (1 + proc.noise * n) + leakedBytesAt(proc, t);
}

function memorySeries(
  plan: Plan,
  entry: Pick<LeakEntry, "host" | "comp" | "proc">,
  from: number,
  to: number,
) {
  const step = plan.intervalMs;
  const xs: number[] = [];
  const ys: number[] = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
    xs.push(t);
    ys.push(simulatedMemoryAt(plan, entry.host, entry.comp, entry.proc, t));
  }
  return { xs, ys };
}

/** The largest rise of memory within any `windowMs` of the suspicious interval (the spike's size). */
function largestRise(
  plan: Plan,
  host: HostPlan,
  comp: CompPlan,
  proc: ProcPlan,
  tp: TruePositive,
  windowMs: number,
): number {
  const from = tp.start ?? tp.detectedAt - 24 * HOUR_MS;
  const to = tp.end ?? tp.detectedAt;
  const { ys } = memorySeries(plan, { host, comp, proc }, from, to);
  const w = Math.max(1, Math.round(windowMs / plan.intervalMs));
  let best = 0;
  for (let j = 1; j < ys.length; j++) {
    for (let i = Math.max(0, j - w); i < j; i++) best = Math.max(best, ys[j]! - ys[i]!);
  }
  return best > 0 ? best : (tp.growthBytesPerHour ?? 0) * (windowMs / HOUR_MS);
}

/** DESIGN.md's completion rule of the estimated pattern, over the memory of the traced span so far. */
function traceComplete(
  plan: Plan,
  entry: LeakEntry,
  from: number,
  now: number,
  estimate: LeakEstimate,
  spikeSize: number,
): boolean {
  const { xs, ys } = memorySeries(plan, entry, from, now);
  if (estimate.pattern === "spike") {
    let low = Number.POSITIVE_INFINITY;
    let rise = 0;
    for (const y of ys) {
      low = Math.min(low, y);
      rise = Math.max(rise, y - low);
    }
    return spikeSize > 0 && rise / spikeSize > 0.5;
  }
  const fit = fitLine(xs, ys);
  if (fit === null) return false;
  if (estimate.pattern === "steady") return fit.r2 > 0.8;
  const known = estimate.growthBytesPerHour / HOUR_MS;
  return known > 0 && Math.abs(1 - fit.slope / known) < 0.1 && fit.r2 < 0.1;
}

interface Reference {
  target: { host: string; component: string; process: string; pid: number };
}

/** Theil–Sen slope (bytes per ms) of the hourly medians of a series; null below 3 hours. */
export function hourlyTheilSen(xs: readonly number[], ys: readonly number[]): number | null {
  const hours = new Map<number, number[]>();
  xs.forEach((x, i) => {
    const h = Math.floor(x / HOUR_MS);
    const list = hours.get(h);
    if (list) list.push(ys[i]!);
    else hours.set(h, [ys[i]!]);
  });
  const points = [...hours].map(([h, v]) => [h * HOUR_MS, median(v)!] as const);
  if (points.length < 3) return null;
  const slopes: number[] = [];
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) {
      slopes.push((points[j]![1] - points[i]![1]) / (points[j]![0] - points[i]![0]));
    }
  }
  return median(slopes);
}

function versionAt(comp: CompPlan, t: number): string {
  let v = comp.versions[0]!;
  for (let i = 1; i < comp.versionAt.length && comp.versionAt[i]! <= t; i++) v = comp.versions[i]!;
  return v;
}

/**
 * Healthy hosts running the same process, as the sink would choose them at `start`: not flagged
 * by resin by then, up, and with a memory that did not grow over the last day by more than a
 * fraction of the suspect's rate; same version and cluster preferred. The process must keep its
 * pid through the trace (a sink would replace one that restarts; it comes to the same).
 */
function pickReferences(
  plan: Plan,
  entry: LeakEntry,
  start: number,
  estimate: LeakEstimate,
  detections: readonly Detection[],
  opts: DiagnosisOptions,
): Reference[] {
  const { host, comp, proc } = entry;
  const flagged = new Set(
    detections
      .filter((d) => d.component === comp.name && d.process === proc.name && d.detectedAt <= start)
      .map((d) => d.host),
  );
  const end = start + opts.maxTraceMs;
  const running: { h: HostPlan; c: CompPlan; p: ProcPlan; version: string }[] = [];
  for (const h of plan.hosts) {
    if (h.downFrom <= start && h.downTo > start) continue;
    const c = h.comps.find((x) => x.name === comp.name);
    const p = c?.procs.find((x) => x.name === proc.name);
    if (c !== undefined && p !== undefined) running.push({ h, c, p, version: versionAt(c, start) });
  }
  // What most of the fleet runs is the baseline: a canary of a new version is compared with the
  // version it replaces, not with other canaries that may carry the same bug.
  const counts = new Map<string, number>();
  for (const r of running) counts.set(r.version, (counts.get(r.version) ?? 0) + 1);
  const baseline = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0];
  const candidates: { h: HostPlan; c: CompPlan; p: ProcPlan; rank: number; tie: number }[] = [];
  for (const { h, c, p, version } of running) {
    if (h === host || flagged.has(h.id)) continue;
    if (h.downFrom <= end && h.downTo > start - opts.referenceHistoryMs) continue;
    const life = lifeAt(p, start);
    if (life.startedAt > start || lifeAt(p, end) !== life) continue;
    const sameCluster = h.cluster === host.cluster;
    const rank = version === baseline ? (sameCluster ? 0 : 1) : sameCluster ? 2 : 3;
    candidates.push({ h, c, p, rank, tie: hash32(`${host.id}/${h.id}/${start}`, 9) });
  }
  candidates.sort((a, b) => a.rank - b.rank || a.tie - b.tie);

  const maxGrowth = opts.referenceMaxGrowthRatio * estimate.growthBytesPerHour;
  const out: Reference[] = [];
  for (const x of candidates) {
    if (out.length >= opts.references) break;
    // Judge its growth over its current life only (a canary deploy restarts the process just when
    // its leak starts, and the drop would hide it), robustly: the slope of hourly medians through
    // their pairwise slopes' median, so noise and a burst cannot make a leaking host look flat.
    const since = Math.max(start - opts.referenceHistoryMs, lifeAt(x.p, start).startedAt);
    if (start - since < opts.referenceMinAgeMs) continue;
    const { xs, ys } = memorySeries(plan, { host: x.h, comp: x.c, proc: x.p }, since, start);
    const slope = hourlyTheilSen(xs, ys);
    if (slope === null || slope * HOUR_MS > maxGrowth) continue;
    out.push({
      target: { host: x.h.id, component: comp.name, process: proc.name, pid: lifeAt(x.p, start).pid },
    });
  }
  return out;
}
