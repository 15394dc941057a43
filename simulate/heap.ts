/**
 * Heap profiles of simulated processes: what a heap profiler (Go's /debug/pprof/heap, jemalloc,
 * V8's sampling heap profiler) would report for any simulated process at any time, derived from
 * the simulator's plan, so the snapshot sink and the diagnosis can be exercised and measured
 * against ground truth. Deterministic: a function of (plan, target, time), whatever else is
 * asked and in whatever order.
 *
 * The process's memory as the telemetry shows it (healthyBytesAt + leakedBytesAt, without the
 * per-sample noise) is split over its catalogue of stacks (simulate/heap-stacks.ts):
 * - static stacks: a fixed share of the base size, allocated at start-up;
 * - caches (1–3): fill after every start, `cap·(1 − e^(−age/τ))`, and carry the component's
 *   warm-up when it has one;
 * - VM stacks carry the per-VM memory, burst stacks the transient bursts;
 * - churn and load stacks share the rest (diurnal load included), each moving up and down
 *   around its mean (a random walk on a lattice of 10–60 min), load stacks with the local
 *   time of day on top;
 * - per host, the shares vary (×e^(0.3·N)), and 1 stack in 20 serves a workload this host runs
 *   3–10× more than its peers;
 * - the leaking stack holds exactly leakedBytesAt(proc, t): its pattern, and a restart's reset;
 * - where another host's leak is in the code but does not bite, its stack churns a little
 *   (0.05–0.3% of the base size): an isolated leak's everywhere, a canary's in its version;
 * - a version other than the component's first has edited ~1 function in 10 (those stacks sit at
 *   another line) and added 0–2 stacks of new code (0.5–3% of the base size).
 * GC sawtooth memory is garbage awaiting collection: a heap profile (taken after a GC) does not
 * hold it, so profiles of a sawtooth process sum to its memory without the sawtooth.
 *
 * Sampling is pprof's: an allocation of s bytes is sampled with p = 1 − e^(−s/R) and reported
 * as s/p bytes, so small stacks are noisy and may be absent. Memory that stays (static, caches,
 * VM state) keeps its samples for the life of the process; churn is sampled afresh each profile;
 * the leak is a counting process over the leaked bytes, so its samples only accumulate.
 */
import { type Frame, type HeapProfile, type HeapStack, stackKey } from "../lib/heap/profile.ts";
import { DAY, HOUR, MINUTE } from "./duration.ts";
import { heapCatalog, leakStack, type StackRole, versionChanges } from "./heap-stacks.ts";
import {
  type CompPlan,
  type HostPlan,
  healthyBytesAt,
  isDown,
  leakedBytesAt,
  lifeAt,
  type Plan,
  type ProcPlan,
} from "./plan.ts";
import { hash32, Rand } from "./rng.ts";

export {
  type HeapCatalog,
  type HeapRuntime,
  heapCatalog,
  leakStackOf,
  type StackRole,
} from "./heap-stacks.ts";

/** A process to profile: the suspect event's target. `pid` 0 is a kernel pool, which has no heap profile. */
export interface HeapTarget {
  host: string;
  component: string;
  process: string;
  pid: number;
}

export interface HeapProfileOptions {
  /** false: exact live bytes per stack, without the profiler's sampling (for tests and ground truth). */
  sampling?: boolean;
}

/** Why a simulated process cannot be profiled, as a sink talking to an agent would find out. */
export type NoHeapProfileReason = "kernel" | "unknown-target" | "host-down" | "not-running";

export class NoHeapProfileError extends Error {
  override name = "NoHeapProfileError";
  constructor(
    message: string,
    readonly reason: NoHeapProfileReason,
  ) {
    super(message);
  }
}

interface ModelStack {
  frames: Frame[];
  /**
   * `dormant`: another leak's stack, where its code runs without leaking (a little churn);
   * `added`: a stack of code a later version added.
   */
  role: StackRole | "dormant" | "added";
  /** Index in the catalogue (a version may move its leaf line); -1 for stacks not in it. */
  catalogIndex: number;
  /** Share within its role on this host (weights of a role sum to 1). */
  share: number;
  /** Bytes per sample (s/p) and the probability that one allocation is sampled. */
  unit: number;
  p: number;
  /** churn/load: log-amplitude and lattice step of the random walk. */
  sigma: number;
  stepMs: number;
  /** cache: own capacity as a share of the base size, and its fill time constant. */
  capShare: number;
  tauMs: number;
  /** dormant, added: present only while the host runs this version; undefined = always. */
  version?: string | undefined;
  /** added: its memory churns (else it stays). */
  churns?: boolean;
}

interface ProcModel {
  host: HostPlan;
  comp: CompPlan;
  proc: ProcPlan;
  key: string;
  stacks: ModelStack[];
  staticShare: number;
  loadAmp: number;
  loadPeakHour: number;
  leak: { frames: Frame[]; unit: number; p: number; position: number } | null;
  /** The plan's seed: every draw of this process depends on it. */
  seed: number;
  /** The leak's sample points per life (this plan's seed and sampling unit). */
  samplePoints: Map<number, { rng: Rand; points: number[] }>;
}

const models = new WeakMap<Plan, Map<string, ProcModel>>();

function modelOf(plan: Plan, target: Omit<HeapTarget, "pid">): ProcModel {
  let perPlan = models.get(plan);
  if (perPlan === undefined) {
    perPlan = new Map();
    models.set(plan, perPlan);
  }
  const id = `${target.host}/${target.component}/${target.process}`;
  const cached = perPlan.get(id);
  if (cached !== undefined) return cached;

  const host = plan.hosts.find((h) => h.id === target.host);
  const comp = host?.comps.find((c) => c.name === target.component);
  const proc = comp?.procs.find((p) => p.name === target.process);
  if (host === undefined || comp === undefined || proc === undefined) {
    throw new NoHeapProfileError(`no simulated process ${id}`, "unknown-target");
  }
  if (comp.kernel) {
    throw new NoHeapProfileError(
      `${id} is a kernel pool (pid 0): kernel memory has no heap profile`,
      "kernel",
    );
  }
  const seed = plan.config.seed;
  const key = `heap/${id}`;
  const rng = new Rand(seed, key);
  const catalog = heapCatalog(plan.config, comp.name, proc.name);
  const R = catalog.samplingBytes;
  const sampling = (s: number) => {
    const p = 1 - Math.exp(-s / R);
    return { p, unit: s / p };
  };

  const stacks: ModelStack[] = catalog.stacks.map((s, catalogIndex) => {
    const churn = s.role === "churn";
    return {
      frames: s.frames,
      role: s.role,
      catalogIndex,
      share: s.weight * Math.exp(0.3 * rng.normal()) * workloadSkew(s.role, rng),
      ...sampling(s.objectBytes),
      sigma: churn ? rng.range([0.15, 0.45]) : rng.range([0.05, 0.15]),
      stepMs: (churn ? rng.range([10, 60]) : rng.range([30, 120])) * MINUTE,
      capShare: rng.range([0.004, 0.025]),
      tauMs: rng.range([0.3, 3]) * HOUR,
    };
  });
  const roleTotals = new Map<ModelStack["role"], number>();
  for (const s of stacks) roleTotals.set(s.role, (roleTotals.get(s.role) ?? 0) + s.share);
  for (const s of stacks) s.share /= roleTotals.get(s.role)!;

  let leak: ProcModel["leak"] = null;
  const entry = proc.leak === null ? undefined : plan.leaks.find((l) => l.proc === proc);
  if (entry !== undefined) {
    const ls = leakStack(plan, entry);
    leak = { frames: ls.frames, ...sampling(ls.objectBytes), position: rng.int(0, stacks.length) };
  }

  const model: ProcModel = {
    host,
    comp,
    proc,
    key,
    stacks,
    staticShare: rng.range([0.2, 0.4]),
    loadAmp: rng.range([0.1, 0.3]),
    loadPeakHour: proc.diurnalAmp !== 0 ? proc.diurnalPeakHour : rng.range([11, 16]),
    leak,
    seed,
    samplePoints: new Map(),
  };
  addDormantLeakStacks(plan, model, rng, sampling);
  addVersionStacks(plan, model, rng, sampling);
  perPlan.set(id, model);
  return model;
}

/**
 * Hosts do not all run the same workload: now and then one uses a feature, a tenant or a key far
 * more than its peers, and the stacks serving it hold several times what they hold elsewhere.
 * (Caches are sized by configuration, VM and burst memory have their own causes.)
 */
function workloadSkew(role: StackRole, rng: Rand): number {
  const skewed = rng.chance(0.05);
  const factor = rng.logRange([3, 10]);
  return skewed && (role === "static" || role === "churn" || role === "load") ? factor : 1;
}

/**
 * A leak's code runs on every host that has it, but leaks only where the bug bites: elsewhere its
 * stack allocates a little and frees it. An isolated leak's stack is in every host's copy of
 * the process; a canary's only in the leaking version's.
 */
function addDormantLeakStacks(
  plan: Plan,
  m: ProcModel,
  rng: Rand,
  sampling: (objectBytes: number) => { p: number; unit: number },
): void {
  const seen = new Set<string>(m.leak === null ? [] : [stackKey(m.leak.frames)]);
  for (const l of plan.leaks) {
    if (l.proc === m.proc || l.leak.kind !== "process") continue;
    if (l.comp.name !== m.comp.name || l.proc.name !== m.proc.name) continue;
    const ls = leakStack(plan, l);
    const key = stackKey(ls.frames);
    if (seen.has(key)) continue;
    seen.add(key);
    const at = rng.int(0, m.stacks.length);
    m.stacks.splice(at, 0, {
      frames: ls.frames,
      role: "dormant",
      catalogIndex: -1,
      share: rng.range([0.0005, 0.003]),
      ...sampling(ls.objectBytes),
      sigma: rng.range([0.2, 0.5]),
      stepMs: rng.range([10, 60]) * MINUTE,
      capShare: 0,
      tauMs: 1,
      version: l.leak.cause === "canary" ? l.leak.version : undefined,
    });
    if (m.leak !== null && at <= m.leak.position) m.leak.position++;
  }
}

/** The stacks each version this host will run added, each present while it runs that version. */
function addVersionStacks(
  plan: Plan,
  m: ProcModel,
  rng: Rand,
  sampling: (objectBytes: number) => { p: number; unit: number },
): void {
  for (const version of new Set(m.comp.versions)) {
    for (const a of versionChanges(plan.config, m.comp.name, m.proc.name, version).added) {
      const at = rng.int(0, m.stacks.length);
      m.stacks.splice(at, 0, {
        frames: a.frames,
        role: "added",
        catalogIndex: -1,
        share: a.weight * Math.exp(0.3 * rng.normal()),
        ...sampling(a.objectBytes),
        sigma: rng.range([0.15, 0.45]),
        stepMs: rng.range([10, 60]) * MINUTE,
        capShare: 0,
        tauMs: 1,
        version,
        churns: a.role === "churn",
      });
      if (m.leak !== null && at <= m.leak.position) m.leak.position++;
    }
  }
}

function versionAt(comp: CompPlan, t: number): string {
  let v = comp.versions[0]!;
  for (let i = 1; i < comp.versionAt.length && comp.versionAt[i]! <= t; i++) v = comp.versions[i]!;
  return v;
}

/**
 * The heap profile of a simulated process at `at` (epoch ms): live bytes and objects per
 * allocation stack, sampled as the runtime's profiler does. Throws NoHeapProfileError for a
 * kernel pool (pid 0), an unknown target, a host that is down, or when `pid` is not the
 * process's pid at `at` (it restarted, or has not started yet).
 * After the simulation's last tick the process lives on as planned (no new restarts).
 */
export function simulatedHeapProfile(
  plan: Plan,
  target: HeapTarget,
  at: number,
  options: HeapProfileOptions = {},
): HeapProfile {
  const id = `${target.host}/${target.component}/${target.process}`;
  const m = modelOf(plan, target);
  const { host, proc } = m;
  if (isDown(host, at)) {
    throw new NoHeapProfileError(`host ${host.id} is down at ${new Date(at).toISOString()}`, "host-down");
  }
  const life = lifeAt(proc, at);
  if (life.startedAt > at || life.pid !== target.pid) {
    const running = life.startedAt > at ? "nothing" : `pid ${life.pid}`;
    throw new NoHeapProfileError(
      `${id} pid ${target.pid} is not running at ${new Date(at).toISOString()} (${running} is)`,
      "not-running",
    );
  }
  const lifeIndex = proc.lives.indexOf(life);
  const age = at - life.startedAt;
  const bytes = splitMemory(m, at, age);

  const sampled = options.sampling !== false;
  const stacks: HeapStack[] = [];
  /** A stack with `exact` live bytes; `samples()` counts what the profiler sampled of them. */
  const push = (frames: Frame[], exact: number, s: { unit: number; p: number }, samples: () => number) => {
    if (!sampled) {
      const objects = Math.max(1, Math.round(exact / (s.unit * s.p)));
      if (exact > 0) stacks.push({ frames, bytes: Math.round(exact), objects });
      return;
    }
    const n = samples();
    if (n > 0) stacks.push({ frames, bytes: Math.round(n * s.unit), objects: Math.round(n / s.p) });
  };
  const pushLeak = () => {
    const leak = m.leak!;
    const leaked = leakedBytesAt(proc, at);
    const key = `${m.key}/leak/life${lifeIndex}`;
    push(leak.frames, leaked, leak, () => sampledCount(m, lifeIndex, key, leak.unit, leaked));
  };
  // The version running now may have edited some allocating functions: their stacks moved line.
  const moved = versionChanges(plan.config, m.comp.name, proc.name, versionAt(m.comp, at)).movedLines;
  for (let i = 0; i < m.stacks.length; i++) {
    if (m.leak?.position === i) pushLeak();
    const s = m.stacks[i]!;
    const live = bytes[i]!;
    // Memory that stays keeps its samples for the process's life; churn is sampled afresh.
    const stays =
      s.role === "static" || s.role === "cache" || s.role === "vm" || (s.role === "added" && !s.churns);
    const key = `${m.key}/${i}/${stays ? `life${lifeIndex}` : `t${at}`}`;
    const line = moved.get(s.catalogIndex);
    const frames = line === undefined ? s.frames : [{ ...s.frames[0]!, line }, ...s.frames.slice(1)];
    push(frames, live, s, () => poissonQuantile(live / s.unit, uniform(m.seed, key, 7)));
  }
  if (m.leak?.position === m.stacks.length) pushLeak();
  return { takenAt: at, stacks };
}

/** Exact live bytes of each catalogue stack of the model at `at` (the leak apart). */
function splitMemory(m: ProcModel, at: number, age: number): number[] {
  const { host, comp, proc } = m;
  const cfg = at >= comp.configAt ? comp.configFactor : 1;
  let vms = 0;
  for (let i = 0; i < host.vmAt.length && host.vmAt[i]! <= at; i++) vms = host.vmCount[i]!;
  let burst = 0;
  for (let i = 0; i < proc.burstStart.length; i++) {
    if (proc.burstStart[i]! <= at && at < proc.burstEnd[i]!) burst = proc.burstAmp[i]!;
  }
  const B = proc.base * cfg;
  const W = 1 + proc.warmGain * (1 - Math.exp(-age / proc.warmTauMs));
  const localHour = ((((at + host.tzOffsetMs) % DAY) + DAY) % DAY) / HOUR;
  const D = 1 + proc.diurnalAmp * Math.cos(((localHour - proc.diurnalPeakHour) * Math.PI) / 12);
  const S = proc.sawAmp !== 0 ? 1 + (proc.sawAmp * (age % proc.sawPeriodMs)) / proc.sawPeriodMs : 1;
  const vmBytes = proc.perVm * vms * cfg;
  // The telemetry's healthy memory, without the garbage a GC sawtooth holds.
  const live = (healthyBytesAt(host, comp, proc, at) - vmBytes) / S + vmBytes;

  const has = (role: StackRole) => m.stacks.some((s) => s.role === role);
  const staticBytes = B * m.staticShare;
  const warmBytes = B * (W - 1);
  const burstBytes = has("burst") ? B * W * D * burst : 0;
  const vmStackBytes = has("vm") ? vmBytes : 0;
  const fill = m.stacks.map((s) =>
    s.role === "cache" ? B * s.capShare * (1 - Math.exp(-age / s.tauMs)) : 0,
  );
  const cacheFill = fill.reduce((a, b) => a + b, 0);
  const version = versionAt(comp, at);
  const walk = (s: ModelStack, i: number) =>
    Math.exp(s.sigma * latticeNormal(m.seed, `${m.key}/${i}/walk`, at, s.stepMs) - (s.sigma * s.sigma) / 2);
  // Stacks outside the catalogue: other leaks' code, and code later versions added.
  const extra = m.stacks.map((s, i) => {
    if (s.role !== "dormant" && s.role !== "added") return 0;
    if (s.version !== undefined && s.version !== version) return 0;
    return B * s.share * (s.role === "dormant" || s.churns ? walk(s, i) : 1);
  });
  const extraTotal = extra.reduce((a, b) => a + b, 0);
  const rest = Math.max(
    0,
    live - staticBytes - warmBytes - burstBytes - vmStackBytes - cacheFill - extraTotal,
  );

  // Churn and load share the rest, each wandering around its mean; load follows the time of day.
  const load = 1 + m.loadAmp * Math.cos(((localHour - m.loadPeakHour) * Math.PI) / 12);
  const moving = m.stacks.map((s, i) => {
    if (s.role !== "churn" && s.role !== "load") return 0;
    return s.share * walk(s, i) * (s.role === "load" ? load : 1);
  });
  const movingTotal = moving.reduce((a, b) => a + b, 0);

  return m.stacks.map((s, i) => {
    switch (s.role) {
      case "static":
        return staticBytes * s.share;
      case "cache":
        return fill[i]! + warmBytes * s.share;
      case "vm":
        return vmStackBytes * s.share;
      case "burst":
        return burstBytes * s.share;
      case "dormant":
      case "added":
        return extra[i]!;
      default:
        return movingTotal > 0 ? (rest * moving[i]!) / movingTotal : 0;
    }
  });
}

/** Uniform in (0, 1) from a seed and a key: the same seed and key, the same value. */
export function uniform(seed: number, key: string, salt: number): number {
  return (hash32(`${seed}\u0000${key}`, salt) + 0.5) / 4_294_967_296;
}

/** A standard normal process over time: iid values on a lattice, linearly interpolated. */
function latticeNormal(seed: number, key: string, at: number, stepMs: number): number {
  const x = at / stepMs;
  const k = Math.floor(x);
  const f = x - k;
  const a = inverseNormal(uniform(seed, `${key}/${k}`, 11));
  const b = inverseNormal(uniform(seed, `${key}/${k + 1}`, 11));
  // Interpolating two independent normals shrinks the variance; rescale to keep it 1.
  return (a * (1 - f) + b * f) / Math.sqrt((1 - f) * (1 - f) + f * f);
}

/** The number of samples, Poisson with mean `mean`, at quantile `u`: monotone in `mean`. */
export function poissonQuantile(mean: number, u: number): number {
  if (!(mean > 0)) return 0;
  if (mean > 60) return Math.max(0, Math.round(mean + Math.sqrt(mean) * inverseNormal(u)));
  let p = Math.exp(-mean);
  let cdf = p;
  let k = 0;
  while (u > cdf && k < 1000) {
    k++;
    p *= mean / k;
    cdf += p;
  }
  return k;
}

/**
 * Samples among the first `bytes` bytes a leak allocated in one life: a Poisson process over
 * the bytes (gaps ~ Exp(unit)), so a larger amount always holds the samples of a smaller one.
 */
const SAMPLE_POINTS_CACHE = 64;

/** Cached on the plan's model of the process, so another plan (seed, unit) never reuses them. */
function sampledCount(m: ProcModel, life: number, key: string, unit: number, bytes: number): number {
  if (!(bytes > 0)) return 0;
  const cache = m.samplePoints;
  let s = cache.get(life);
  if (s === undefined) {
    if (cache.size >= SAMPLE_POINTS_CACHE) cache.delete(cache.keys().next().value!);
    s = { rng: new Rand(m.seed, key), points: [] };
    cache.set(life, s);
  }
  const pts = s.points;
  while (pts.length === 0 || pts[pts.length - 1]! <= bytes) {
    pts.push((pts.length === 0 ? 0 : pts[pts.length - 1]!) + s.rng.exp(unit));
  }
  let lo = 0;
  let hi = pts.length - 1; // pts[hi] > bytes
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pts[mid]! <= bytes) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9). */
export function inverseNormal(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lowP = 0.02425;
  if (p < lowP) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1)
    );
  }
  if (p > 1 - lowP) {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    return (
      -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1)
    );
  }
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}
