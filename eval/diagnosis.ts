/**
 * Root-cause accuracy of the diagnosis on a simulated fleet. For each leak resin found (a
 * true-positive suspect of a process leak), heap profiles are taken the way the snapshot sink
 * takes them (DESIGN.md "Heap snapshots"): every 30 min from the suspect's detectedAt, until
 * the sink's completion rule for the pattern holds (at least 3 profiles) or for at most 6 h,
 * together with profiles of up to 3 healthy hosts running the same process at the same times.
 * `diagnose` ranks the stacks; the diagnosis is right at rank k when the k-th culprit's leaf
 * (function and file) is the leaf of the stack the truth names.
 * The profiles come from the simulator's heap model (simulate/heap.ts); the memory telemetry a
 * sink would judge references by comes from the plan (with per-sample noise).
 */
import type { Frame, HeapProfile } from "../lib/heap/profile.ts";
import { theilSenSlope } from "../lib/stats.ts";
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
  linearFit,
  type ProfilePoint,
  type TracedLeak,
  traceCompletion,
} from "../sinks/snapshot/completion.ts";
import { parseSnapshotSinkConfig } from "../sinks/snapshot/config.ts";
import {
  type Culprit,
  DEFAULT_DIAGNOSE_OPTIONS,
  diagnose,
  type LeakEstimate,
} from "../sinks/snapshot/diagnose.ts";
import { median } from "./stats.ts";
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
  /**
   * How references are chosen. `baseline`: hosts of the suspect's cluster running the version
   * most hosts run (a canary is compared with what it replaces), then the cluster's other
   * version, then elsewhere; as many VMs as the suspect first; only hosts whose memory did not
   * grow (above); the snapshot sink chooses the same way except for the growth check.
   * `lineage`: RESIN's same-fingerprint rule (same cluster, OS and version, else the same version
   * anywhere, fewer VMs first, no growth check), which the sink used before; kept for comparison.
   * `sink`: not a policy of this module: the snapshot sink's own core decides everything
   * (eval/diagnosis-sink.ts).
   */
  referencePolicy: "baseline" | "lineage" | "sink";
}

export const DEFAULT_DIAGNOSIS_OPTIONS: DiagnosisOptions = {
  profileEveryMs: 30 * 60_000,
  maxTraceMs: 6 * HOUR_MS,
  minProfiles: 3,
  references: 3,
  referenceHistoryMs: 24 * HOUR_MS,
  referenceMinAgeMs: 3 * HOUR_MS,
  referenceMaxGrowthRatio: 0.25,
  referencePolicy: "baseline",
};

export const DIAGNOSIS_RULE =
  "Root-cause accuracy, on simulated heap profiles (simulate/heap.ts). For each resin true positive of a " +
  "process leak: one profile of the suspect's pid every 30 min from its detectedAt, until the snapshot " +
  "sink's completion rule for resin's pattern holds (sinks/snapshot/completion.ts, on the profiles' " +
  "totals: steady R² > 0.8; stair the detected slope within 10% and a flat end; spike more than half the " +
  "detected rise) with at least 3 profiles, or for 6 h; a restart or the host going down ends the trace. " +
  "Reference profiles at the same times from up to 3 hosts running the same process that resin has not " +
  "flagged by then. Policy `baseline` (default): the suspect's cluster first, hosts of the version most " +
  "hosts run before others (a canary is compared with what it replaces), as many VMs as the suspect " +
  "first, and only hosts whose memory over their current life (3–24 h; Theil–Sen slope of hourly " +
  "medians) grew slower than 25% of the suspect's rate. Policy `lineage`: RESIN's same-fingerprint rule " +
  "(same cluster, OS and version, else same version; fewer VMs first). diagnose() is told resin's pattern, " +
  "resin's rate (or the profiles' slope when faster) and the process's start. Top-k is right when one of " +
  "the first k culprits has the truth stack's leaf function and file; rates are over diagnosed leaks " +
  "(traces with at least 3 profiles).";

/** The snapshot sink's completion rules, at its defaults (sinks/snapshot/config.ts). */
const COMPLETION_RULES = parseSnapshotSinkConfig({});

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
  const traced: TracedLeak = {
    pattern: estimate.pattern,
    growthBytesPerHour: estimate.growthBytesPerHour,
    start: tp.start ?? start,
    end: tp.end ?? start,
  };
  const points: ProfilePoint[] = [];
  for (let at = start; at <= start + opts.maxTraceMs; at += opts.profileEveryMs) {
    try {
      const profile = simulatedHeapProfile(plan, { ...target, pid }, at);
      profiles.push(profile);
      points.push({ takenAt: at, bytes: profile.stacks.reduce((a, x) => a + x.bytes, 0) });
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
    if (traceCompletion(points, traced, { ...COMPLETION_RULES, minProfiles: opts.minProfiles }).complete) {
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
  // When the profiles grew faster than the detector estimated, the diagnosis is told the faster
  // rate (it bounds how much a stack may grow).
  const tracedSlope = linearFit(
    points.map((p) => (p.takenAt - start) / HOUR_MS),
    points.map((p) => p.bytes),
  ).slope;
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
  return theilSenSlope(
    points.map((p) => p[0]),
    points.map((p) => p[1]),
  );
}

function versionAt(comp: CompPlan, t: number): string {
  let v = comp.versions[0]!;
  for (let i = 1; i < comp.versionAt.length && comp.versionAt[i]! <= t; i++) v = comp.versions[i]!;
  return v;
}

/**
 * Healthy hosts running the same process, as a sink would choose them at `start`, with the
 * process keeping its pid through the trace (a sink would replace one that restarts; it comes to
 * the same). Not flagged by resin by then. `baseline`: see DiagnosisOptions.referencePolicy;
 * `lineage`: RESIN's same-fingerprint rule (same cluster, OS and version), which the snapshot
 * sink used before it switched to the baseline version; kept to show why it switched.
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
  const vmsAt = (h: HostPlan) => {
    let v = 0;
    for (let i = 0; i < h.vmAt.length && h.vmAt[i]! <= start; i++) v = h.vmCount[i]!;
    return v;
  };
  const running: { h: HostPlan; c: CompPlan; p: ProcPlan; version: string }[] = [];
  for (const h of plan.hosts) {
    if (h.downFrom <= start && h.downTo > start) continue;
    const c = h.comps.find((x) => x.name === comp.name);
    const p = c?.procs.find((x) => x.name === proc.name);
    if (c !== undefined && p !== undefined) running.push({ h, c, p, version: versionAt(c, start) });
  }
  const version = versionAt(comp, start);
  // What most of the fleet runs is the baseline: a canary of a new version is compared with the
  // version it replaces, not with other canaries that may carry the same bug.
  const counts = new Map<string, number>();
  for (const r of running) counts.set(r.version, (counts.get(r.version) ?? 0) + 1);
  const baseline = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0];
  const vms = vmsAt(host);
  const candidates: { h: HostPlan; p: ProcPlan; rank: number; tie: number; c: CompPlan }[] = [];
  for (const { h, c, p, version: v } of running) {
    if (h === host || flagged.has(h.id)) continue;
    if (h.downFrom <= end && h.downTo > start - opts.referenceHistoryMs) continue;
    const life = lifeAt(p, start);
    if (life.startedAt > start || lifeAt(p, end) !== life) continue;
    const sameCluster = h.cluster === host.cluster;
    let rank: number;
    let tie: number;
    if (opts.referencePolicy === "lineage") {
      // RESIN's rule, the sink's former catalogue: same cluster, OS and version, else the same
      // version anywhere; fewer VMs first.
      if (v !== version) continue;
      rank = sameCluster && h.os === host.os ? 0 : 1;
      tie = vmsAt(h);
    } else {
      // Same cluster (same time of day, same rollout), baseline version first; then a host as
      // loaded as the suspect, as VM memory would otherwise look like memory only it holds.
      rank = sameCluster ? (v === baseline ? 0 : 1) : v === baseline ? 2 : 3;
      tie = Math.abs(Math.log((vmsAt(h) + 1) / (vms + 1)));
    }
    candidates.push({ h, c, p, rank, tie: tie + hash32(`${host.id}/${h.id}/${start}`, 9) / 2 ** 40 });
  }
  candidates.sort((a, b) => a.rank - b.rank || a.tie - b.tie);

  const maxGrowth = opts.referenceMaxGrowthRatio * estimate.growthBytesPerHour;
  const out: Reference[] = [];
  for (const x of candidates) {
    if (out.length >= opts.references) break;
    if (opts.referencePolicy === "baseline") {
      // Judge its growth over its current life only (a canary deploy restarts the process just
      // when its leak starts, and the drop would hide it), robustly: the slope of hourly medians
      // through their pairwise slopes' median, so noise and a burst cannot make a leak look flat.
      const since = Math.max(start - opts.referenceHistoryMs, lifeAt(x.p, start).startedAt);
      if (start - since < opts.referenceMinAgeMs) continue;
      const { xs, ys } = memorySeries(plan, { host: x.h, comp: x.c, proc: x.p }, since, start);
      const slope = hourlyTheilSen(xs, ys);
      if (slope === null || slope * HOUR_MS > maxGrowth) continue;
    }
    out.push({
      target: { host: x.h.id, component: comp.name, process: proc.name, pid: lifeAt(x.p, start).pid },
    });
  }
  return out;
}
