import { ValidationError } from "../schemas/common.ts";
import type { GrowthPattern, LeakKind } from "../schemas/suspect.ts";
import { KERNEL_COMPONENT } from "../schemas/telemetry.ts";
import type { TruthRecord } from "../schemas/truth.ts";
import type { ComponentSpec, PatternWeights, ProcessSpec, SimConfig } from "./config.ts";
import { DAY, HOUR, MINUTE, parseDuration } from "./duration.ts";
import { leakStackOf } from "./heap-stacks.ts";
import { Rand, type Range } from "./rng.ts";

/**
 * Planning: everything about a simulation that is decided before the first sample — the fleet
 * layout, each host's components and parameters, VM timelines, deploys, crashes, config steps,
 * host deaths, the injected leaks and every process life (pid, startedAt). Each entity draws
 * from its own random stream keyed by (seed, entity id), so the plan does not depend on the
 * order in which entities are visited.
 */

export type RestartCause = "initial" | "deploy" | "crash" | "reboot" | "canary";
export type LeakCause = "isolated" | "canary" | "kernel";

/** One life of a process: from a (re)start to the next. */
export interface Life {
  startedAt: number;
  pid: number;
  cause: RestartCause;
}

/** An injected leak: its truth and its cumulative growth C(t) as a piecewise-linear function. */
export interface LeakPlan {
  kind: LeakKind;
  pattern: GrowthPattern;
  cause: LeakCause;
  startTs: number;
  ratePerHour: number;
  normalBytes: number;
  version: string | undefined;
  /** Breakpoint times (ascending, first = startTs) and the cumulative leaked bytes at each. */
  t: Float64Array;
  c: Float64Array;
}

export interface ProcPlan {
  readonly name: string;
  /** The name as a JSON string literal (quotes included). */
  readonly nameJson: string;
  readonly base: number;
  readonly noise: number;
  readonly perVm: number;
  readonly warmGain: number;
  readonly warmTauMs: number;
  readonly diurnalAmp: number;
  readonly diurnalPeakHour: number;
  readonly sawAmp: number;
  readonly sawPeriodMs: number;
  readonly burstStart: number[];
  readonly burstEnd: number[];
  readonly burstAmp: number[];
  /** Lives sorted by startedAt; the first starts before the simulation. */
  lives: Life[];
  leak: LeakPlan | null;
}

export interface CompPlan {
  readonly name: string;
  readonly kernel: boolean;
  /** Index in the catalog. */
  readonly catalogIndex: number;
  /** Version changes: versions[i] from versionAt[i] on (versionAt[0] = -Infinity). */
  versionAt: number[];
  versions: string[];
  /** When the config step applies on this host (Infinity: never) and its factor. */
  configAt: number;
  configFactor: number;
  readonly procs: ProcPlan[];
}

export interface HostPlan {
  readonly index: number;
  readonly id: string;
  readonly region: string;
  readonly tzOffsetMs: number;
  readonly cluster: string;
  readonly hw: string;
  readonly totalBytes: number;
  readonly os: string;
  readonly kernelVersion: string;
  /** Constant part of the agent's clock error, ms (0 ≤ offset ≤ jitterMs/2). */
  readonly clockOffsetMs: number;
  readonly vmBytes: number;
  /** VM count: vmCount[i] from vmAt[i] on (vmAt[0] = -Infinity). */
  readonly vmAt: number[];
  readonly vmCount: number[];
  /** The host sends nothing in [downFrom, downTo); downTo = Infinity when it never comes back. */
  downFrom: number;
  downTo: number;
  /**
   * More periods without telemetry, as [from, to) pairs in ascending order: reboots the closed
   * loop decides while the simulation runs (simulate/closed-loop). Absent in plans of their own.
   */
  outages?: number[] | undefined;
  readonly comps: CompPlan[];
}

export interface DeployEvent {
  component: string;
  version: string;
  start: number;
  hours: number;
}

export interface Plan {
  readonly config: SimConfig;
  readonly start: number;
  readonly intervalMs: number;
  readonly ticks: number;
  /** Time of the last tick. */
  readonly end: number;
  readonly hosts: HostPlan[];
  readonly regions: string[];
  readonly clusters: string[];
  readonly deploys: DeployEvent[];
  readonly configChange: { component: string; at: number; step: number } | null;
  readonly canary: {
    component: string;
    version: string;
    at: number;
    hosts: number;
    widerHosts: number;
  } | null;
  readonly leaks: { host: HostPlan; comp: CompPlan; proc: ProcPlan; leak: LeakPlan }[];
}

const PID_MAX = 4_194_304;

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

function bumpVersion(version: string, part: "patch" | "minor"): string {
  const m = /^(.*?)(\d+)\.(\d+)\.(\d+)(.*)$/.exec(version);
  if (m === null) return `${version}.1`;
  const [, pre, major, minor, patch, post] = m as unknown as [string, string, string, string, string, string];
  return part === "patch"
    ? `${pre}${major}.${minor}.${Number(patch) + 1}${post}`
    : `${pre}${major}.${Number(minor) + 1}.0${post}`;
}

/** Healthy shape factor of a process at `ts` with age `age` (no noise, bursts, VMs or config step). */
export function shapeFactor(p: ProcPlan, tzOffsetMs: number, ts: number, age: number): number {
  let f = 1;
  if (p.warmGain !== 0) f *= 1 + p.warmGain * (1 - Math.exp(-age / p.warmTauMs));
  if (p.diurnalAmp !== 0) {
    const localHour = ((((ts + tzOffsetMs) % DAY) + DAY) % DAY) / HOUR;
    f *= 1 + p.diurnalAmp * Math.cos(((localHour - p.diurnalPeakHour) * Math.PI) / 12);
  }
  if (p.sawAmp !== 0) f *= 1 + (p.sawAmp * (age % p.sawPeriodMs)) / p.sawPeriodMs;
  return f;
}

/** Healthy (leak-free, noise-free) bytes of a process at time t, by direct lookup. */
export function healthyBytesAt(host: HostPlan, comp: CompPlan, proc: ProcPlan, t: number): number {
  const life = lifeAt(proc, t);
  let vms = 0;
  for (let i = 0; i < host.vmAt.length && host.vmAt[i]! <= t; i++) vms = host.vmCount[i]!;
  let burst = 0;
  for (let i = 0; i < proc.burstStart.length; i++) {
    if (proc.burstStart[i]! <= t && t < proc.burstEnd[i]!) burst = proc.burstAmp[i]!;
  }
  const cfg = t >= comp.configAt ? comp.configFactor : 1;
  const shape = shapeFactor(proc, host.tzOffsetMs, t, t - life.startedAt);
  return (proc.base * shape * (1 + burst) + proc.perVm * vms) * cfg;
}

export function lifeAt(proc: ProcPlan, t: number): Life {
  let life = proc.lives[0]!;
  for (const l of proc.lives) {
    if (l.startedAt <= t) life = l;
    else break;
  }
  return life;
}

/** Cumulative leaked bytes C(t) (0 before the leak starts). */
export function leakCumulative(leak: LeakPlan, t: number): number {
  const ts = leak.t;
  const n = ts.length;
  if (t <= ts[0]!) return 0;
  if (t >= ts[n - 1]!) return leak.c[n - 1]!;
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (ts[mid]! <= t) lo = mid;
    else hi = mid;
  }
  const t0 = ts[lo]!;
  const c0 = leak.c[lo]!;
  return c0 + ((leak.c[hi]! - c0) * (t - t0)) / (ts[hi]! - t0);
}

/** Leaked bytes held at time t: growth since the later of the leak start and the last restart. */
export function leakedBytesAt(proc: ProcPlan, t: number): number {
  const leak = proc.leak;
  if (leak === null || t <= leak.startTs) return 0;
  const life = lifeAt(proc, t);
  return leakCumulative(leak, t) - leakCumulative(leak, Math.max(leak.startTs, life.startedAt));
}

/** Whether the host sends nothing at `t`: its planned death, or one of its extra outages. */
export function isDown(host: HostPlan, t: number): boolean {
  if (t >= host.downFrom && t < host.downTo) return true;
  const o = host.outages;
  if (o === undefined) return false;
  // Few pairs, ascending: the last one starting at or before t decides.
  for (let i = o.length - 2; i >= 0; i -= 2) if (t >= o[i]!) return t < o[i + 1]!;
  return false;
}

function drawProc(spec: ProcessSpec, rng: Rand): Omit<ProcPlan, "lives" | "leak"> {
  const r = (x: Range | undefined) => (x === undefined ? 0 : rng.range(x));
  const warmGain = r(spec.warmup?.gain);
  const warmTauMs = spec.warmup ? rng.range(spec.warmup.tauHours) * HOUR : 1;
  const diurnalAmp = r(spec.diurnal?.amplitude);
  const diurnalPeakHour = r(spec.diurnal?.peakHour);
  const sawAmp = r(spec.sawtooth?.amplitude);
  const sawPeriodMs = spec.sawtooth ? rng.range(spec.sawtooth.periodHours) * HOUR : 1;
  return {
    name: spec.name,
    nameJson: JSON.stringify(spec.name),
    base: rng.range(spec.baseBytes),
    noise: rng.range(spec.noise),
    perVm: r(spec.perVmBytes),
    warmGain,
    warmTauMs,
    diurnalAmp,
    diurnalPeakHour,
    sawAmp,
    sawPeriodMs,
    burstStart: [],
    burstEnd: [],
    burstAmp: [],
  };
}

function drawBursts(p: ProcPlan, spec: ProcessSpec, rng: Rand, from: number, to: number): void {
  const b = spec.bursts;
  if (b === undefined) return;
  const perDay = rng.range(b.perDay);
  if (perDay <= 0) return;
  const meanGap = DAY / perDay;
  let t = from + rng.exp(meanGap);
  while (t < to) {
    const dur = rng.range(b.durationHours) * HOUR;
    p.burstStart.push(Math.round(t));
    p.burstEnd.push(Math.round(t + dur));
    p.burstAmp.push(rng.range(b.amplitude));
    t += dur + rng.exp(meanGap);
  }
}

/** Integer counts per pattern for n leaks, proportional to the weights; every pattern with weight > 0 gets one when n allows. */
export function apportionPatterns(n: number, w: PatternWeights): GrowthPattern[] {
  const keys: GrowthPattern[] = ["steady", "stair", "spike"];
  const active = keys.filter((k) => w[k] > 0);
  const total = active.reduce((s, k) => s + w[k], 0);
  const counts = new Map<GrowthPattern, number>();
  let left = n;
  if (n >= active.length) {
    for (const k of active) counts.set(k, 1);
    left -= active.length;
  }
  const exact = active.map((k) => ({ k, x: (left * w[k]) / total }));
  for (const e of exact) counts.set(e.k, (counts.get(e.k) ?? 0) + Math.floor(e.x));
  let assigned = [...counts.values()].reduce((s, c) => s + c, 0);
  exact.sort((a, b) => b.x - Math.floor(b.x) - (a.x - Math.floor(a.x)) || w[b.k] - w[a.k]);
  for (let i = 0; assigned < n; i++, assigned++) {
    const k = exact[i % exact.length]!.k;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const out: GrowthPattern[] = [];
  for (const k of keys) for (let i = 0; i < (counts.get(k) ?? 0); i++) out.push(k);
  return out;
}

/** Builds the breakpoints of C(t) for a leak from startTs to `until`. */
function leakSegments(
  pattern: GrowthPattern,
  startTs: number,
  ratePerHour: number,
  until: number,
  intervalMs: number,
  rng: Rand,
): { t: Float64Array; c: Float64Array } {
  const t: number[] = [startTs];
  const c: number[] = [0];
  let now = startTs;
  let cum = 0;
  const push = (dt: number, grow: number) => {
    now += dt;
    cum += grow;
    t.push(now);
    c.push(cum);
  };
  while (now < until) {
    if (pattern === "steady") {
      const dt = rng.range([1, 4]) * HOUR;
      push(dt, ratePerHour * rng.range([0.85, 1.15]) * (dt / HOUR));
    } else if (pattern === "stair") {
      const grow = rng.range([2, 8]) * HOUR;
      const flat = rng.range([3, 12]) * HOUR;
      push(grow, ratePerHour * ((grow + flat) / HOUR));
      push(flat, 0);
    } else {
      const gap = rng.range([4, 16]) * HOUR;
      const rise = rng.range([1, 2]) * intervalMs;
      push(rise, ratePerHour * (gap / HOUR));
      push(gap - rise, 0);
    }
  }
  return { t: Float64Array.from(t), c: Float64Array.from(c) };
}

interface PendingLeak {
  host: HostPlan;
  comp: CompPlan;
  proc: ProcPlan;
  kind: LeakKind;
  cause: LeakCause;
  pattern: GrowthPattern;
  startTs: number;
  /** Either a rate relative to normal size per day, or absolute bytes per hour. */
  ratePerDay?: number;
  bytesPerHour?: number;
  version?: string;
}

/** Plans a whole simulation. Throws ValidationError when explicit leaks name missing targets. */
export function buildPlan(config: SimConfig): Plan {
  const seed = config.seed;
  const start = config.start;
  const intervalMs = config.intervalMs;
  const ticks = Math.max(1, Math.round((config.days * DAY) / intervalMs));
  const end = start + (ticks - 1) * intervalMs;
  const runMs = Math.max(end - start, intervalMs);
  const at = (frac: number) => Math.round(start + frac * runMs);
  const catalog = config.components;

  // --- layout: regions → clusters → hosts -----------------------------------------------
  const layoutRng = new Rand(seed, "layout");
  const nRegions = Math.min(
    config.regions.length,
    Math.max(1, Math.floor(config.hosts / config.clusterSize[0])),
  );
  const regions = config.regions.slice(0, nRegions);
  const clusters: string[] = [];
  const hostCluster: { region: number; cluster: string; hw: number }[] = [];
  for (let r = 0; r < nRegions; r++) {
    const nHosts = Math.floor(config.hosts / nRegions) + (r < config.hosts % nRegions ? 1 : 0);
    const nClusters = Math.max(1, Math.ceil(nHosts / config.clusterSize[1]));
    for (let c = 0; c < nClusters; c++) {
      const size = Math.floor(nHosts / nClusters) + (c < nHosts % nClusters ? 1 : 0);
      const name = `c${pad(clusters.length, 2)}`;
      clusters.push(name);
      const hwWeights: Record<string, number> = {};
      config.hardware.forEach((h, i) => {
        hwWeights[String(i)] = h.weight;
      });
      const hw = Number(new Rand(seed, `cluster/${name}`).weighted(hwWeights));
      for (let i = 0; i < size; i++) hostCluster.push({ region: r, cluster: name, hw });
    }
  }
  void layoutRng;

  // --- hosts -------------------------------------------------------------------------------
  const osWeights: Record<string, number> = {};
  config.os.forEach((o, i) => {
    osWeights[String(i)] = o.weight;
  });
  const hosts: HostPlan[] = hostCluster.map((hc, index) => {
    const region = regions[hc.region]!;
    const id = `r${pad(hc.region, 2)}-h${pad(index, 5)}`;
    const rng = new Rand(seed, `host/${id}`);
    const hw = config.hardware[hc.hw]!;
    const os = config.os[Number(rng.weighted(osWeights))]!;
    const jitter = config.faults.jitterMs;
    const clockOffsetMs = Math.round(rng.float() * 0.5 * jitter);
    const vmBytes = rng.range(config.vms.vmBytes);
    const cap = Math.max(1, Math.min(64, Math.floor((hw.totalBytes * 0.75) / Math.max(vmBytes, 1))));
    const vmAt: number[] = [Number.NEGATIVE_INFINITY];
    const vmCount: number[] = [];
    if (rng.chance(config.vms.emptyShare)) {
      vmCount.push(0);
    } else {
      let n = Math.max(1, Math.round(cap * rng.range(config.vms.fill)));
      vmCount.push(n);
      const perDay = rng.range(config.vms.changesPerDay);
      if (perDay > 0) {
        let t = start + rng.exp(DAY / perDay);
        while (t < end + DAY) {
          const pUp = Math.min(0.9, Math.max(0.1, 1 - n / cap));
          const step = rng.chance(0.8) ? 1 : 2;
          const next = rng.chance(pUp) ? Math.min(cap, n + step) : Math.max(0, n - step);
          if (next !== n) {
            n = next;
            vmAt.push(Math.round(t));
            vmCount.push(n);
          }
          t += rng.exp(DAY / perDay);
        }
      }
    }
    const bootAt = Math.round(start - rng.logRange([1, 120]) * DAY);
    const comps: CompPlan[] = [];
    catalog.forEach((spec, catalogIndex) => {
      const kernel = spec.name === KERNEL_COMPONENT;
      const crng = new Rand(seed, `hc/${id}/${spec.name}`);
      if (!kernel && !crng.chance(spec.share)) return;
      const compStart = kernel
        ? bootAt
        : Math.max(
            bootAt + 2 * MINUTE,
            Math.round(
              start - (crng.chance(0.15) ? crng.range([0.3, 24]) * HOUR : crng.logRange([1, 60]) * DAY),
            ),
          );
      const procs: ProcPlan[] = [];
      spec.processes.forEach((ps, pi) => {
        const prng = new Rand(seed, `p/${id}/${spec.name}/${ps.name}`);
        if (!prng.chance(ps.share) && !(pi === spec.processes.length - 1 && procs.length === 0)) return;
        const p = drawProc(ps, prng) as ProcPlan;
        let startedAt = kernel ? bootAt : compStart + Math.round(prng.range([0, 30_000]));
        if (!kernel && prng.chance(0.1)) {
          startedAt = Math.max(startedAt, Math.round(start - prng.logRange([0.5, 240]) * HOUR));
        }
        p.lives = [{ startedAt: Math.min(startedAt, start - MINUTE), pid: 0, cause: "initial" }];
        p.leak = null;
        drawBursts(p, ps, prng, start - 2 * DAY, end + DAY);
        procs.push(p);
      });
      comps.push({
        name: spec.name,
        kernel,
        catalogIndex,
        versionAt: [Number.NEGATIVE_INFINITY],
        versions: [kernel ? os.kernelVersion : spec.version],
        configAt: Number.POSITIVE_INFINITY,
        configFactor: 1,
        procs,
      });
    });
    return {
      index,
      id,
      region: region.name,
      tzOffsetMs: Math.round(region.utcOffsetHours * HOUR),
      cluster: hc.cluster,
      hw: hw.name,
      totalBytes: hw.totalBytes,
      os: os.name,
      kernelVersion: os.kernelVersion,
      clockOffsetMs,
      vmBytes,
      vmAt,
      vmCount,
      downFrom: Number.POSITIVE_INFINITY,
      downTo: Number.POSITIVE_INFINITY,
      // Declared up front, so a host given outages later keeps its object shape (the sample loop reads it).
      outages: undefined,
      comps,
    };
  });
  const hostsById = new Map(hosts.map((h) => [h.id, h]));
  const compOf = (h: HostPlan, name: string) => h.comps.find((c) => c.name === name);
  const clusterHosts = new Map<string, HostPlan[]>();
  for (const h of hosts) {
    const list = clusterHosts.get(h.cluster) ?? [];
    list.push(h);
    clusterHosts.set(h.cluster, list);
  }

  /** Restarts per (host, component): time + cause, all processes of the component. */
  const restarts = new Map<CompPlan, { t: number; cause: RestartCause }[]>();
  const addRestart = (c: CompPlan, t: number, cause: RestartCause) => {
    const list = restarts.get(c) ?? [];
    list.push({ t, cause });
    restarts.set(c, list);
  };
  const versionChanges = new Map<CompPlan, { t: number; v: string }[]>();
  const addVersion = (c: CompPlan, t: number, v: string) => {
    const list = versionChanges.get(c) ?? [];
    list.push({ t, v });
    versionChanges.set(c, list);
  };
  const commonNames = catalog.filter((c) => c.name !== KERNEL_COMPONENT && c.share >= 0.5).map((c) => c.name);
  const nonKernel = catalog.filter((c) => c.name !== KERNEL_COMPONENT).map((c) => c.name);

  // --- host deaths -------------------------------------------------------------------------
  const deathRng = new Rand(seed, "deaths");
  const deaths = deathRng
    .shuffle([...hosts])
    .slice(0, Math.round(config.events.hostDeaths.share * hosts.length));
  for (const h of deaths) {
    const r = new Rand(seed, `death/${h.id}`);
    // Between two samples (mid-interval), so whether a tick is up does not depend on clock jitter.
    const between = (t: number) =>
      start + Math.floor((t - start) / intervalMs) * intervalMs + Math.floor(intervalMs / 2);
    h.downFrom = between(at(r.range([0.05, 0.95])));
    if (r.chance(config.events.hostDeaths.comebackShare)) {
      h.downTo = between(h.downFrom + r.range(config.events.hostDeaths.downHours) * HOUR);
    }
  }
  const permanentlyDead = (h: HostPlan) => h.downTo === Number.POSITIVE_INFINITY && h.downFrom <= end;

  // --- canary component (chosen first: regular deploys leave it alone) -------------------
  const canarySpec = config.leaks.canary;
  const canaryRng = new Rand(seed, "canary");
  let canaryComp: ComponentSpec | undefined;
  if (canarySpec !== null) {
    const name =
      canarySpec.component ??
      (commonNames.length > 0
        ? canaryRng.pick(commonNames)
        : nonKernel.length > 0
          ? canaryRng.pick(nonKernel)
          : undefined);
    canaryComp = catalog.find((c) => c.name === name);
  }

  // --- rolling deploys ---------------------------------------------------------------------
  const deployRng = new Rand(seed, "deploys");
  const deployable = nonKernel.filter((n) => n !== canaryComp?.name);
  const meanDeploys = config.events.deploysPerDay * config.days;
  const nDeploys =
    deployable.length === 0 ? 0 : Math.floor(meanDeploys) + (deployRng.chance(meanDeploys % 1) ? 1 : 0);
  const order = deployRng.shuffle([...deployable]);
  const deployPlans = Array.from({ length: nDeploys }, (_, j) => ({
    component: order[j % order.length]!,
    start: at(deployRng.range([0.02, 0.9])),
    hours: deployRng.range(config.events.deployHours),
    clusterOrder: deployRng.shuffle([...clusters]),
  })).sort((a, b) => a.start - b.start || (a.component < b.component ? -1 : 1));
  const currentVersion = new Map(catalog.map((c) => [c.name, c.version]));
  const deploys: DeployEvent[] = [];
  deployPlans.forEach((d, j) => {
    const version = bumpVersion(currentVersion.get(d.component)!, "patch");
    currentVersion.set(d.component, version);
    deploys.push({ component: d.component, version, start: d.start, hours: d.hours });
    rollOut(d.clusterOrder, d.start, d.hours, `deploy/${j}`, (h, t) => {
      const c = compOf(h, d.component);
      if (c === undefined) return;
      addVersion(c, t, version);
      addRestart(c, t, "deploy");
    });
  });

  function rollOut(
    clusterOrder: string[],
    from: number,
    hours: number,
    key: string,
    apply: (h: HostPlan, t: number) => void,
  ): void {
    const slot = (hours * HOUR) / Math.max(1, clusterOrder.length);
    clusterOrder.forEach((cl, k) => {
      for (const h of clusterHosts.get(cl) ?? []) {
        const t = Math.round(from + k * slot + new Rand(seed, `${key}/${h.id}`).float() * slot);
        if (t <= end) apply(h, t);
      }
    });
  }

  // --- fleet-wide config change --------------------------------------------------------------
  let configChange: Plan["configChange"] = null;
  const cc = config.events.configChange;
  if (cc !== null) {
    const r = new Rand(seed, "config-change");
    // Random choice: prefer a component other than the canary's, so the two signals stay separable.
    const pool = commonNames.filter((n) => n !== canaryComp?.name);
    const name =
      cc.component ??
      (pool.length > 0 ? r.pick(pool) : commonNames.length > 0 ? r.pick(commonNames) : undefined);
    if (name !== undefined) {
      const t0 = at(r.range(cc.at));
      const step = r.range(cc.step);
      configChange = { component: name, at: t0, step };
      for (const h of hosts) {
        const c = compOf(h, name);
        if (c === undefined) continue;
        const hr = new Rand(seed, `config-change/${h.id}`);
        c.configAt = Math.round(t0 + hr.float() * cc.withinHours * HOUR);
        c.configFactor = 1 + step * hr.range([0.95, 1.05]);
      }
    }
  }

  // --- crashes -----------------------------------------------------------------------------
  const crashes = new Map<ProcPlan, number[]>();
  const crashRate = config.events.crashesPerProcessPerDay;
  if (crashRate > 0) {
    for (const h of hosts) {
      for (const c of h.comps) {
        if (c.kernel) continue;
        for (const p of c.procs) {
          const r = new Rand(seed, `crash/${h.id}/${c.name}/${p.name}`);
          const n = r.poisson(crashRate * config.days);
          if (n === 0) continue;
          crashes.set(
            p,
            Array.from({ length: n }, () => Math.round(start + r.float() * runMs)),
          );
        }
      }
    }
  }

  // --- explicit leaks (validated against the fleet) ----------------------------------------
  const pending: PendingLeak[] = [];
  const used = new Set<HostPlan>();
  const violations: { path: string; value: unknown; message: string }[] = [];
  config.leaks.explicit.forEach((e, i) => {
    const path = `leaks.explicit[${i}]`;
    const host = typeof e.host === "number" ? hosts[e.host] : hostsById.get(e.host);
    if (host === undefined) {
      violations.push({
        path: `${path}.host`,
        value: e.host,
        message: `no such host (the fleet has ${hosts.length})`,
      });
      return;
    }
    const comp = compOf(host, e.component);
    if (comp === undefined) {
      violations.push({
        path: `${path}.component`,
        value: e.component,
        message: `host ${host.id} does not run it`,
      });
      return;
    }
    const proc = e.process === undefined ? comp.procs[0] : comp.procs.find((p) => p.name === e.process);
    if (proc === undefined) {
      violations.push({
        path: `${path}.process`,
        value: e.process,
        message: `no such process on ${host.id}/${comp.name}`,
      });
      return;
    }
    if (proc.leak !== null || pending.some((l) => l.proc === proc)) {
      violations.push({
        path,
        value: `${host.id}/${comp.name}/${proc.name}`,
        message: "this process already leaks",
      });
      return;
    }
    const startTs = start + parseDuration(e.at);
    if (startTs > end) {
      violations.push({ path: `${path}.at`, value: e.at, message: "starts after the end of the simulation" });
      return;
    }
    const leak: PendingLeak = {
      host,
      comp,
      proc,
      kind: comp.kernel ? "kernel" : "process",
      cause: comp.kernel ? "kernel" : "isolated",
      pattern: e.pattern,
      startTs,
    };
    if (e.ratePerDay !== undefined) leak.ratePerDay = e.ratePerDay;
    if (e.bytesPerHour !== undefined) leak.bytesPerHour = e.bytesPerHour;
    pending.push(leak);
    used.add(host);
  });
  if (violations.length > 0) throw new ValidationError("scenario", violations);

  // --- canary regression ------------------------------------------------------------------
  let canary: Plan["canary"] = null;
  if (canarySpec !== null && canaryComp !== undefined) {
    const cname = canaryComp.name;
    const version = bumpVersion(canaryComp.version, "minor");
    const pattern = canaryRng.weighted(canarySpec.patterns);
    const rate = canaryRng.logRange(canarySpec.ratePerDay);
    const tc = at(canaryRng.range(canarySpec.at));
    const procName = canarySpec.process ?? canaryComp.processes[0]!.name;
    const eligible = hosts.filter((h) => {
      const c = compOf(h, cname);
      return (
        c !== undefined && !permanentlyDead(h) && !used.has(h) && c.procs.some((p) => p.name === procName)
      );
    });
    const nCanary = Math.max(1, Math.round(canaryRng.range(canarySpec.share) * eligible.length));
    const ring = canaryRng.shuffle([...eligible]).slice(0, nCanary);
    const leakOn = (h: HostPlan, t: number) => {
      if (isDown(h, t) || t > end) return false;
      const c = compOf(h, cname)!;
      addVersion(c, t, version);
      addRestart(c, t, "canary");
      pending.push({
        host: h,
        comp: c,
        proc: c.procs.find((p) => p.name === procName)!,
        kind: "process",
        cause: "canary",
        pattern,
        startTs: t,
        ratePerDay: rate * new Rand(seed, `canary-rate/${h.id}`).range([0.8, 1.2]),
        version,
      });
      used.add(h);
      return true;
    };
    let nRing = 0;
    for (const h of ring) {
      if (leakOn(h, Math.round(tc + new Rand(seed, `canary/${h.id}`).float() * 45 * MINUTE))) nRing++;
    }
    let nWider = 0;
    const wider = canarySpec.wider;
    if (wider !== null) {
      const inRing = new Set(ring);
      const rest = eligible.filter((h) => !inRing.has(h));
      const target = wider.share * rest.length;
      const chosen: string[] = [];
      let covered = 0;
      for (const cl of canaryRng.shuffle([...clusters])) {
        if (covered >= target) break;
        const n = rest.filter((h) => h.cluster === cl).length;
        if (n === 0) continue;
        chosen.push(cl);
        covered += n;
      }
      const restSet = new Set(rest);
      rollOut(chosen, at(canaryRng.range(wider.at)), canaryRng.range(wider.hours), "wider", (h, t) => {
        if (restSet.has(h) && leakOn(h, t)) nWider++;
      });
    }
    if (nRing + nWider > 0) canary = { component: cname, version, at: tc, hosts: nRing, widerHosts: nWider };
  }

  // --- lives: restarts from deploys, canaries, crashes and host comebacks -----------------
  for (const h of hosts) {
    for (const c of h.comps) {
      const vc = (versionChanges.get(c) ?? []).sort((a, b) => a.t - b.t);
      for (const v of vc) {
        c.versionAt.push(v.t);
        c.versions.push(v.v);
      }
      const rs = restarts.get(c) ?? [];
      for (const p of c.procs) {
        const events: { t: number; cause: RestartCause }[] = c.kernel ? [] : [...rs];
        for (const t of crashes.get(p) ?? []) events.push({ t, cause: "crash" });
        if (h.downTo !== Number.POSITIVE_INFINITY) events.push({ t: h.downTo, cause: "reboot" });
        addLives(h, p, events);
      }
    }
  }

  function addLives(h: HostPlan, p: ProcPlan, events: { t: number; cause: RestartCause }[]): void {
    events.sort((a, b) => a.t - b.t);
    for (const e of events) {
      if (e.t > end || isDown(h, e.t)) continue;
      if (e.t <= p.lives[p.lives.length - 1]!.startedAt) continue;
      p.lives.push({ startedAt: e.t, pid: 0, cause: e.cause });
    }
  }

  // --- kernel and isolated leaks ----------------------------------------------------------
  const candidates = (key: string) =>
    new Rand(seed, key).shuffle(hosts.filter((h) => !permanentlyDead(h) && !used.has(h)));
  const drawStart = (h: HostPlan, r: Rand, window: Range) => {
    let t = at(r.range(window));
    for (let i = 0; i < 20 && h.downFrom - HOUR <= t && t < h.downTo + HOUR; i++) t = at(r.range(window));
    return t;
  };

  const kspec = config.leaks.kernel;
  const kernelCount = new Rand(seed, "kernel-leaks").int(
    Math.ceil(kspec.count[0]),
    Math.floor(kspec.count[1]),
  );
  const kernelHosts = candidates("kernel-leak-hosts").filter(
    (h) => compOf(h, KERNEL_COMPONENT) !== undefined,
  );
  kernelHosts.slice(0, kernelCount).forEach((h, i) => {
    const r = new Rand(seed, `kernel-leak/${i}`);
    const comp = compOf(h, KERNEL_COMPONENT)!;
    pending.push({
      host: h,
      comp,
      proc: r.pick(comp.procs),
      kind: "kernel",
      cause: "kernel",
      pattern: r.weighted(kspec.patterns),
      startTs: drawStart(h, r, kspec.window),
      ratePerDay: r.logRange(kspec.ratePerDay),
    });
    used.add(h);
  });

  const ispec = config.leaks.isolated;
  const isoRng = new Rand(seed, "isolated-leaks");
  const nIsolated = ispec.count ?? Math.round(isoRng.range(ispec.share) * hosts.length);
  const isoHosts = candidates("isolated-leak-hosts")
    .filter((h) => h.comps.some((c) => !c.kernel))
    .slice(0, nIsolated);
  const patterns = isoRng.shuffle(apportionPatterns(isoHosts.length, ispec.patterns));
  const isolated: PendingLeak[] = [];
  isoHosts.forEach((h, i) => {
    const r = new Rand(seed, `isolated-leak/${i}`);
    const comp = r.pick(h.comps.filter((c) => !c.kernel));
    const leak: PendingLeak = {
      host: h,
      comp,
      proc: r.pick(comp.procs),
      kind: "process",
      cause: "isolated",
      pattern: patterns[i]!,
      startTs: drawStart(h, r, ispec.window),
      ratePerDay: r.logRange(ispec.ratePerDay),
    };
    pending.push(leak);
    isolated.push(leak);
    used.add(h);
  });

  // Make sure enough isolated leaks restart mid-leak (a crash between start and end).
  const restartedMidLeak = (l: PendingLeak) => l.proc.lives.some((x) => x.startedAt > l.startTs);
  let missing = ispec.minRestarted - isolated.filter(restartedMidLeak).length;
  for (const l of [...isolated].sort((a, b) => a.startTs - b.startTs)) {
    if (missing <= 0) break;
    if (restartedMidLeak(l)) continue;
    const r = new Rand(seed, `mid-leak-crash/${l.host.id}`);
    const t = Math.round(l.startTs + r.range([0.3, 0.6]) * (end - l.startTs));
    if (t - l.startTs < 2 * HOUR || isDown(l.host, t)) continue;
    const lives = l.proc.lives.filter((x) => x.startedAt < t);
    const after = l.proc.lives.filter((x) => x.startedAt > t);
    l.proc.lives = [...lives, { startedAt: t, pid: 0, cause: "crash" }, ...after];
    missing--;
  }

  // --- pids: increasing per host in start order; kernel pseudo-processes have pid 0 ----------
  for (const h of hosts) {
    const r = new Rand(seed, `pids/${h.id}`);
    const all: { life: Life; ci: number; pi: number }[] = [];
    h.comps.forEach((c, ci) => {
      if (c.kernel) return;
      c.procs.forEach((p, pi) => {
        for (const life of p.lives) all.push({ life, ci, pi });
      });
    });
    all.sort((a, b) => a.life.startedAt - b.life.startedAt || a.ci - b.ci || a.pi - b.pi);
    let pid = r.int(300, 3000);
    for (const x of all) {
      pid += x.life.cause === "initial" ? r.int(1, 400) : r.int(1, 2500);
      if (pid >= PID_MAX) pid = 300 + (pid % 1000);
      x.life.pid = pid;
    }
  }

  // --- leak growth functions and truth ----------------------------------------------------
  const leaks: Plan["leaks"] = [];
  for (const l of pending) {
    const normalBytes = healthyBytesAt(l.host, l.comp, l.proc, l.startTs);
    const ratePerHour = l.bytesPerHour ?? (normalBytes * (l.ratePerDay ?? 0)) / 24;
    const seg = leakSegments(
      l.pattern,
      l.startTs,
      ratePerHour,
      end + DAY,
      intervalMs,
      new Rand(seed, `leak-growth/${l.host.id}/${l.comp.name}/${l.proc.name}`),
    );
    const leak: LeakPlan = {
      kind: l.kind,
      pattern: l.pattern,
      cause: l.cause,
      startTs: l.startTs,
      ratePerHour,
      normalBytes,
      version: l.version,
      t: seg.t,
      c: seg.c,
    };
    l.proc.leak = leak;
    leaks.push({ host: l.host, comp: l.comp, proc: l.proc, leak });
  }
  leaks.sort(
    (a, b) =>
      a.leak.startTs - b.leak.startTs ||
      a.host.index - b.host.index ||
      a.comp.catalogIndex - b.comp.catalogIndex ||
      (a.proc.name < b.proc.name ? -1 : a.proc.name > b.proc.name ? 1 : 0),
  );

  return {
    config,
    start,
    intervalMs,
    ticks,
    end,
    hosts,
    regions: regions.map((r) => r.name),
    clusters,
    deploys,
    configChange,
    canary,
    leaks,
  };
}

/** The ground-truth record of a planned leak (fixed key order, integer bytes). */
export function truthRecord(plan: Plan, entry: Plan["leaks"][number]): TruthRecord {
  const { host, comp, proc, leak } = entry;
  const rec: TruthRecord = {
    host: host.id,
    component: comp.name,
    process: proc.name,
    kind: leak.kind,
    pattern: leak.pattern,
    startTs: leak.startTs,
    ratePerHour: Math.round(leak.ratePerHour),
    cause: leak.cause,
  };
  if (leak.version !== undefined) rec.version = leak.version;
  rec.normalBytes = Math.round(leak.normalBytes);
  rec.grownBytes = Math.round(leakedBytesAt(proc, plan.end));
  if (leak.kind === "process") rec.stack = leakStackOf(plan, entry);
  return rec;
}
