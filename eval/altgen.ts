/**
 * altgen — an independent fleet-telemetry generator, written from the telemetry v1 / truth v1
 * contracts only, so the leak detector can be measured on fleets it was not developed against.
 *
 *   npx tsx eval/altgen.ts --seed 7001 --hosts 200 --days 5 --scenario mixed|quiet \
 *       --out t.ndjson --truth g.ndjson [--interval 300] [--start 2026-03-02T00:00:00Z]
 *
 * Self-contained (Node built-ins only) and deterministic per seed. The healthy fleet is drawn from
 * random streams that do not depend on the scenario, so `quiet` and `mixed` with the same seed
 * share the same healthy behaviour; `mixed` adds isolated leaks, one canary regression and kernel
 * pool leaks on top of it.
 *
 * Models (every parameter varies per host / component / process):
 *  - size: per-host log-normal base; VM-following processes are fixed + per-VM bytes
 *  - noise: multiplicative white noise and an AR(1) wander (time constant 0.5–3 h)
 *  - diurnal load (region timezone, per-host phase jitter, amplitude 0–25%, 2nd harmonic) and a
 *    weekend dip on some hosts
 *  - warm-up after every (re)start, exponential or logistic, 1–6 h; cache-like processes start
 *    30–100% below their normal size
 *  - GC sawtooth (period 20 min–4 h, depth 5–30%)
 *  - tenant steps (VM arrivals/departures, tenant-driven level steps of 5–30%) that stay
 *  - bursts (10 min–3 h, +10–80%, sometimes overlapping clusters)
 *  - fleet-wide config pushes (+5–20%, rolled out over 0–6 h)
 *  - rolling deploys (version change + restart), one possibly needing ~10% more memory
 *  - host reboots, process crashes (and a few crash-looping processes), silent hosts, hosts added
 *    and removed mid-run
 *  - delivery faults: drops, duplicates, late lines (within 580 s of their ts-order position),
 *    a handful of invalid lines
 *  - leaks (mixed): isolated steady/stair/spike leaks (incl. near misses below 10%), a canary
 *    regression (leaking version on 5–10% of one component's hosts), 1–3 kernel pool leaks
 */
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { parseArgs } from "node:util";

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

// ---------------------------------------------------------------------------------------------
// Seeded randomness: sfc32 seeded through splitmix32; Box–Muller normals.

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare = Number.NaN;

  constructor(seed: number, label: string) {
    let s = (Math.floor(seed) ^ Math.floor(seed / 4294967296) ^ Math.imul(fnv1a(label), 0x9e3779b1)) >>> 0;
    const sm = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      return (z ^ (z >>> 15)) >>> 0;
    };
    this.a = sm();
    this.b = sm();
    this.c = sm();
    this.d = sm();
    for (let i = 0; i < 16; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer in [lo, hi], both inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  logUniform(lo: number, hi: number): number {
    return Math.exp(this.uniform(Math.log(lo), Math.log(hi)));
  }

  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const v = this.spare;
      this.spare = Number.NaN;
      return v;
    }
    let u = this.next();
    while (u <= 1e-12) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  poisson(lambda: number): number {
    if (lambda <= 0) return 0;
    if (lambda > 30) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * this.normal()));
    const limit = Math.exp(-lambda);
    let k = 0;
    let p = this.next();
    while (p > limit) {
      k++;
      p *= this.next();
    }
    return k;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[Math.floor(this.next() * items.length)]!;
  }

  weighted<T extends { weight: number }>(items: readonly T[]): T {
    const total = items.reduce((s, x) => s + x.weight, 0);
    let r = this.next() * total;
    for (const item of items) {
      r -= item.weight;
      if (r < 0) return item;
    }
    return items[items.length - 1]!;
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
    return items;
  }
}

// ---------------------------------------------------------------------------------------------
// Fleet catalogue.

interface Region {
  name: string;
  tz: number;
  zones: number;
  weight: number;
}

const REGIONS: readonly Region[] = [
  { name: "eu2", tz: 1, zones: 3, weight: 0.28 },
  { name: "us1", tz: -5, zones: 3, weight: 0.26 },
  { name: "us4", tz: -8, zones: 2, weight: 0.18 },
  { name: "ap3", tz: 9, zones: 2, weight: 0.16 },
  { name: "in1", tz: 5.5, zones: 2, weight: 0.12 },
];

interface Hardware {
  name: string;
  totalGiB: number;
  weight: number;
}

const HARDWARE: readonly Hardware[] = [
  { name: "hv-g5-256", totalGiB: 256, weight: 0.35 },
  { name: "hv-g6-384", totalGiB: 384, weight: 0.4 },
  { name: "hv-g7-512", totalGiB: 512, weight: 0.25 },
];

interface ProcSpec {
  name: string;
  /** Typical normal size (ignored when `vm` is set). */
  baseMiB: number;
  /** Log-normal sigma of the per-host base size. */
  spread: number;
  /** Normal size = fixed + perVm × VMs on the host. */
  vm: { fixedMiB: number; perVmMiB: number } | null;
  /** Cache-like: warms up from far below normal after a start. */
  cache: boolean;
  /** Probability that the process shows a GC sawtooth on a host. */
  sawProb: number;
  /** Maximum diurnal amplitude. */
  diurnal: number;
  /** Maximum burst rate per day. */
  burstsPerDay: number;
  /** Level follows tenant arrivals/departures. */
  tenant: boolean;
  crashPerDay: number;
}

interface CompSpec {
  name: string;
  presence: number;
  version: string;
  kernel: boolean;
  procs: readonly ProcSpec[];
}

function P(name: string, baseMiB: number, o: Partial<ProcSpec> = {}): ProcSpec {
  return {
    name,
    baseMiB,
    spread: o.spread ?? 0.35,
    vm: o.vm ?? null,
    cache: o.cache ?? false,
    sawProb: o.sawProb ?? 0,
    diurnal: o.diurnal ?? 0.1,
    burstsPerDay: o.burstsPerDay ?? 0.3,
    tenant: o.tenant ?? false,
    crashPerDay: o.crashPerDay ?? 0.015,
  };
}

const APP_COMPONENTS: readonly CompSpec[] = [
  {
    name: "ingest-gw",
    presence: 1,
    version: "4.12.3",
    kernel: false,
    procs: [
      P("ingest-gw", 900, { spread: 0.4, sawProb: 0.8, diurnal: 0.25, burstsPerDay: 1.2, tenant: true }),
      P("tls-offload", 220, { spread: 0.3, diurnal: 0.2, burstsPerDay: 0.8 }),
    ],
  },
  {
    name: "metrics-daemon",
    presence: 1,
    version: "2.31.0",
    kernel: false,
    procs: [P("metrics-daemon", 160, { sawProb: 0.9, diurnal: 0.08, burstsPerDay: 0.3 })],
  },
  {
    name: "tenant-mgr",
    presence: 1,
    version: "1.8.14",
    kernel: false,
    procs: [
      P("tenant-mgr", 0, { vm: { fixedMiB: 60, perVmMiB: 28 }, sawProb: 0.5, diurnal: 0.05 }),
      P("tenant-watch", 110, { diurnal: 0.05, burstsPerDay: 0.2 }),
    ],
  },
  {
    name: "blob-store",
    presence: 0.5,
    version: "7.2.0",
    kernel: false,
    procs: [
      P("blob-store", 5000, { spread: 0.5, cache: true, diurnal: 0.15, burstsPerDay: 0.6, tenant: true }),
    ],
  },
  {
    name: "dns-cache",
    presence: 0.55,
    version: "0.19.2",
    kernel: false,
    procs: [P("dns-cache", 350, { cache: true, diurnal: 0.2, burstsPerDay: 1.0 })],
  },
  {
    name: "vswitch-agent",
    presence: 0.45,
    version: "3.3.7",
    kernel: false,
    procs: [
      P("vswitch-agent", 0, {
        vm: { fixedMiB: 180, perVmMiB: 9 },
        sawProb: 0.6,
        diurnal: 0.1,
        burstsPerDay: 0.5,
      }),
    ],
  },
];

const KERNEL_POOLS: readonly ProcSpec[] = [
  P("slab-dentry", 420, { spread: 0.6, cache: true, diurnal: 0.05, burstsPerDay: 0.2, crashPerDay: 0 }),
  P("slab-inode", 260, { spread: 0.5, cache: true, diurnal: 0.03, burstsPerDay: 0.1, crashPerDay: 0 }),
  P("kmalloc-512", 70, { spread: 0.4, diurnal: 0.05, burstsPerDay: 0.2, crashPerDay: 0 }),
  P("kmalloc-4k", 140, { spread: 0.4, diurnal: 0.06, burstsPerDay: 0.3, crashPerDay: 0 }),
  P("vmalloc", 260, { spread: 0.3, diurnal: 0.02, burstsPerDay: 0.05, crashPerDay: 0 }),
  P("skbuff", 48, { spread: 0.5, diurnal: 0.25, burstsPerDay: 1.5, crashPerDay: 0 }),
  P("page-tables", 0, {
    vm: { fixedMiB: 30, perVmMiB: 7 },
    diurnal: 0.02,
    burstsPerDay: 0.05,
    crashPerDay: 0,
  }),
];
/** Pools every host reports; the others are present on most hosts. */
const ALWAYS_POOLS = new Set(["slab-dentry", "kmalloc-512", "vmalloc", "skbuff"]);

const KERNEL_SPEC: CompSpec = {
  name: "kernel",
  presence: 1,
  version: "6.6.58",
  kernel: true,
  procs: KERNEL_POOLS,
};
const KERNEL_VERSIONS = ["6.6.58", "6.1.112"];

// ---------------------------------------------------------------------------------------------
// Runtime state.

type Pattern = "steady" | "stair" | "spike";
type Cause = "isolated" | "canary" | "kernel";

interface Burst {
  start: number;
  riseEnd: number;
  holdEnd: number;
  end: number;
  amp: number;
}

interface Leak {
  cause: Cause;
  pattern: Pattern;
  host: Host;
  comp: Comp;
  proc: Proc;
  /** Planned start (isolated, kernel); the restart into the version for a canary. */
  startT: number;
  /** Planned growth by the end of the run, as a fraction of normal (isolated, kernel). */
  growth: number;
  /** Canary: planned rate per hour as a fraction of normal, before the ±20% per-host factor. */
  rateFrac: number;
  /** Whether the leak continues in the process after a restart (leak memory still resets). */
  continues: boolean;
  /** Canary: the leaking version is installed; the leak starts at the next (re)start. */
  armed: boolean;
  started: boolean;
  stopped: boolean;
  normal: number;
  rate: number;
  held: number;
  lastT: number;
  jitter: number;
  stairGrow: [number, number];
  stairFlat: [number, number];
  spikeGap: [number, number];
  segs: Array<[number, number]>;
  growRate: number;
  jumps: Array<{ t: number; size: number }>;
  jumpIdx: number;
  rng: Rng;
}

interface Saw {
  period: number;
  depth: number;
  last: number;
  next: number;
}

interface Proc {
  spec: ProcSpec;
  comp: Comp;
  pid: number;
  startedAt: number;
  scale: number;
  w0: number;
  warmMs: number;
  logistic: boolean;
  ar: number;
  arPhi: number;
  arInnov: number;
  noise: number;
  amp: number;
  peak: number;
  harm2: number;
  peak2: number;
  saw: Saw | null;
  bursts: Burst[];
  crashes: number[];
  crashIdx: number;
  leak: Leak | null;
  bytes: number;
}

interface CompEvent {
  t: number;
  kind: "deploy" | "config";
  version: string;
  factor: number;
  canary: boolean;
}

interface Comp {
  spec: CompSpec;
  host: Host;
  version: string;
  versionFactor: number;
  configFactor: number;
  tenantFactor: number;
  events: CompEvent[];
  evIdx: number;
  procs: Proc[];
}

interface HostEvent {
  t: number;
  kind: "reboot" | "vm" | "tenant";
  boot: number;
}

interface Host {
  idx: number;
  name: string;
  region: Region;
  zone: string;
  hw: Hardware;
  totalBytes: number;
  osBytes: number;
  vms: number;
  guestBytes: number;
  tz: number;
  weekendDip: number;
  offsetMs: number;
  joinT: number;
  removeT: number;
  silences: Array<[number, number]>;
  events: HostEvent[];
  evIdx: number;
  pendingBoot: number | null;
  booted: boolean;
  bootT: number;
  comps: Comp[];
  rng: Rng;
  nextPid: number;
  pc: number;
  pcMean: number;
  pcPhi: number;
  pcInnov: number;
  usedBytes: number;
}

interface Options {
  seed: number;
  hosts: number;
  days: number;
  scenario: "mixed" | "quiet";
  out: string;
  truth: string;
  intervalMs: number;
  start: number;
}

// ---------------------------------------------------------------------------------------------
// Planning.

class Fleet {
  readonly hosts: Host[] = [];
  readonly leaks: Leak[] = [];
  readonly start: number;
  readonly end: number;
  readonly steps: number;
  readonly dt: number;
  readonly notes: string[] = [];

  constructor(readonly opts: Options) {
    this.dt = opts.intervalMs;
    this.start = opts.start;
    this.steps = Math.max(1, Math.floor((opts.days * DAY) / this.dt));
    this.end = this.start + this.steps * this.dt;
    const plan = new Rng(opts.seed, "fleet");
    this.planHosts(plan);
    this.planLifecycle(plan);
    this.planConfigPushes(plan);
    this.planDeploys(plan);
    if (opts.scenario === "mixed") this.planLeaks(new Rng(opts.seed, "leaks"));
    for (const h of this.hosts) {
      h.events.sort((x, y) => x.t - y.t);
      for (const c of h.comps) c.events.sort((x, y) => x.t - y.t);
    }
  }

  private at(frac: number): number {
    return this.start + frac * (this.end - this.start);
  }

  private planHosts(plan: Rng): void {
    const counters = new Map<string, number>();
    for (const r of REGIONS) counters.set(r.name, plan.int(20, 600));
    const kernelMix = plan.uniform(0.55, 0.85);
    for (let i = 0; i < this.opts.hosts; i++) {
      const region = plan.weighted(REGIONS);
      const n = counters.get(region.name)! + plan.int(1, 9);
      counters.set(region.name, n);
      const name = `${region.name}-n${String(n).padStart(4, "0")}`;
      const zone = `${region.name}-az${plan.int(1, region.zones)}`;
      const hw = plan.weighted(HARDWARE);
      const rng = new Rng(this.opts.seed, `host:${i}`);
      const totalBytes = hw.totalGiB * GiB;
      const guestBytes = Math.round(rng.uniform(3, 8) * GiB);
      const vms = Math.max(2, Math.floor((totalBytes * rng.uniform(0.3, 0.65)) / guestBytes));
      const dtH = this.dt / HOUR;
      const pcTau = rng.uniform(1, 6);
      const pcPhi = Math.exp(-dtH / pcTau);
      const pcSd = rng.uniform(0.005, 0.02);
      const h: Host = {
        idx: i,
        name,
        region,
        zone,
        hw,
        totalBytes,
        osBytes: Math.round(rng.uniform(1.5, 4) * GiB),
        vms,
        guestBytes,
        tz: region.tz + rng.uniform(-1.5, 1.5),
        weekendDip: rng.chance(0.4) ? rng.uniform(0.02, 0.08) : 0,
        offsetMs: rng.int(0, 20_000),
        joinT: this.start,
        removeT: Number.POSITIVE_INFINITY,
        silences: [],
        events: [],
        evIdx: 0,
        pendingBoot: null,
        booted: true,
        bootT: this.start - Math.round(rng.uniform(1, 60) * DAY),
        comps: [],
        rng,
        nextPid: rng.int(300, 2000),
        pc: 0,
        pcMean: rng.uniform(0.04, 0.14),
        pcPhi,
        pcInnov: pcSd * Math.sqrt(1 - pcPhi * pcPhi),
        usedBytes: 0,
      };
      const sizeScale = (hw.totalGiB / 384) ** 0.3;
      const kernelVersion = rng.chance(kernelMix) ? KERNEL_VERSIONS[0]! : KERNEL_VERSIONS[1]!;
      const kernel = this.makeComp(h, KERNEL_SPEC, kernelVersion);
      for (const spec of KERNEL_POOLS) {
        if (!ALWAYS_POOLS.has(spec.name) && !rng.chance(0.85)) continue;
        kernel.procs.push(this.makeProc(h, kernel, spec, sizeScale));
      }
      h.comps.push(kernel);
      for (const spec of APP_COMPONENTS) {
        if (spec.presence < 1 && !rng.chance(spec.presence)) continue;
        const comp = this.makeComp(h, spec, spec.version);
        for (const ps of spec.procs) comp.procs.push(this.makeProc(h, comp, ps, sizeScale));
        h.comps.push(comp);
      }
      this.hosts.push(h);
    }
  }

  private makeComp(h: Host, spec: CompSpec, version: string): Comp {
    return {
      spec,
      host: h,
      version,
      versionFactor: 1,
      configFactor: 1,
      tenantFactor: 1,
      events: [],
      evIdx: 0,
      procs: [],
    };
  }

  private makeProc(h: Host, comp: Comp, spec: ProcSpec, sizeScale: number): Proc {
    const rng = h.rng;
    const dtH = this.dt / HOUR;
    const tau = rng.uniform(0.5, 3);
    const arPhi = Math.exp(-dtH / tau);
    const arSd = rng.uniform(0.01, 0.05);
    const gain = spec.cache ? rng.uniform(0.3, 1.0) : rng.uniform(0.1, 0.35);
    let saw: Saw | null = null;
    if (rng.chance(spec.sawProb)) {
      const period = rng.logUniform(20 * MIN, 4 * HOUR);
      const last = this.start - rng.uniform(0, period);
      saw = { period, depth: rng.uniform(0.05, 0.3), last, next: last + period };
    }
    const startedAt = comp.spec.kernel
      ? h.bootT
      : rng.chance(0.6)
        ? h.bootT + rng.int(5_000, 120_000)
        : Math.round(rng.uniform(h.bootT, this.start - 6 * HOUR));
    const p: Proc = {
      spec,
      comp,
      pid: comp.spec.kernel ? 0 : newPid(h),
      startedAt,
      scale: sizeScale * Math.exp(spec.spread * rng.normal()),
      w0: Math.max(0.03, 1 - gain),
      warmMs: rng.uniform(1, 6) * HOUR,
      logistic: rng.chance(0.5),
      ar: arSd * rng.normal(),
      arPhi,
      arInnov: arSd * Math.sqrt(1 - arPhi * arPhi),
      noise: rng.uniform(0.003, 0.02),
      amp: rng.uniform(0, spec.diurnal),
      peak: rng.uniform(12, 20),
      harm2: rng.uniform(0, 0.3),
      peak2: rng.uniform(0, 12),
      saw,
      bursts: [],
      crashes: [],
      crashIdx: 0,
      leak: null,
      bytes: 0,
    };
    return p;
  }

  /** Joins, removals, reboots, silences, tenant events, crashes, bursts. */
  private planLifecycle(plan: Rng): void {
    const H = this.hosts.length;
    const order = plan.shuffle(this.hosts.map((_, i) => i));
    const nJoin = H >= 10 ? Math.max(1, Math.round(H * 0.025)) : 0;
    const nRemove = H >= 10 ? Math.max(1, Math.round(H * 0.025)) : 0;
    for (let k = 0; k < nJoin; k++) {
      const h = this.hosts[order[k]!]!;
      h.joinT = Math.round(this.at(plan.uniform(0.1, 0.75)));
      h.pendingBoot = h.joinT;
      h.booted = false;
    }
    for (let k = nJoin; k < nJoin + nRemove; k++) {
      this.hosts[order[k]!]!.removeT = Math.round(this.at(plan.uniform(0.2, 0.9)));
    }
    const pickSome = (frac: number): Host[] => {
      const idx = plan.shuffle(this.hosts.map((_, i) => i));
      const n = H >= 10 ? Math.max(1, Math.round(H * frac)) : 0;
      return idx.slice(0, n).map((i) => this.hosts[i]!);
    };
    for (const h of pickSome(0.07)) {
      const t = Math.round(plan.uniform(Math.max(h.joinT + 2 * HOUR, this.at(0.05)), this.at(0.95)));
      h.events.push({ t, kind: "reboot", boot: t + plan.int(4, 20) * MIN });
    }
    for (const h of pickSome(0.05)) {
      const s = Math.round(plan.uniform(Math.max(h.joinT + HOUR, this.at(0.05)), this.at(0.9)));
      h.silences.push([s, s + Math.round(plan.uniform(1, 6) * HOUR)]);
    }
    for (const h of pickSome(0.35)) {
      const n = plan.int(1, 3);
      for (let k = 0; k < n; k++) {
        const t = Math.round(plan.uniform(Math.max(h.joinT + HOUR, this.at(0.05)), this.at(0.95)));
        h.events.push({ t, kind: plan.chance(0.55) ? "vm" : "tenant", boot: 0 });
      }
    }
    for (const h of this.hosts) {
      const rng = h.rng;
      const from = h.joinT;
      const to = Math.min(this.end, h.removeT);
      const days = (to - from) / DAY;
      for (const c of h.comps) {
        for (const p of c.procs) {
          const flaky = !c.spec.kernel && rng.chance(0.008);
          const n = rng.poisson(p.spec.crashPerDay * days) + (flaky ? rng.poisson(1.2 * days) + 2 : 0);
          for (let k = 0; k < n; k++) p.crashes.push(Math.round(rng.uniform(from, to)));
          p.crashes.sort((x, y) => x - y);
          const rate = rng.chance(0.3) ? 0 : rng.uniform(0, p.spec.burstsPerDay);
          const nb = rng.poisson(rate * days);
          for (let k = 0; k < nb; k++) {
            const s = rng.uniform(from, to);
            p.bursts.push(this.makeBurst(rng, s));
            if (rng.chance(0.25)) {
              const extra = rng.int(1, 3);
              for (let e = 0; e < extra; e++)
                p.bursts.push(this.makeBurst(rng, s + rng.uniform(-45, 45) * MIN));
            }
          }
          p.bursts.sort((x, y) => x.start - y.start);
        }
      }
    }
  }

  private makeBurst(rng: Rng, start: number): Burst {
    const dur = rng.logUniform(10 * MIN, 3 * HOUR);
    const rise = Math.min(dur * 0.3, rng.uniform(2, 15) * MIN);
    const fall = dur * rng.uniform(0.2, 0.5);
    return {
      start,
      riseEnd: start + rise,
      holdEnd: start + dur - fall,
      end: start + dur,
      amp: rng.uniform(0.1, 0.8),
    };
  }

  private planConfigPushes(plan: Rng): void {
    const comps = plan.shuffle([...APP_COMPONENTS]);
    const n = plan.chance(0.4) ? 2 : 1;
    for (let k = 0; k < n; k++) {
      const spec = comps[k]!;
      const t0 = this.at(plan.uniform(0.2, 0.7));
      const rollout = plan.uniform(0, 6) * HOUR;
      const mag = plan.uniform(0.05, 0.2);
      this.notes.push(`config ${spec.name} +${(mag * 100).toFixed(0)}%`);
      for (const h of this.hosts) {
        const c = h.comps.find((x) => x.spec === spec);
        if (!c) continue;
        c.events.push({
          t: Math.round(t0 + plan.next() * rollout),
          kind: "config",
          version: "",
          factor: 1 + mag + plan.uniform(-0.01, 0.01),
          canary: false,
        });
      }
    }
  }

  private planDeploys(plan: Rng): void {
    const comps = plan.shuffle([...APP_COMPONENTS]);
    const n = plan.chance(0.5) ? 2 : 1;
    for (let k = 0; k < n; k++) {
      const spec = comps[k]!;
      const t0 = this.at(plan.uniform(0.15, 0.75));
      const rollout = plan.uniform(4, 24) * HOUR;
      const waves = plan.int(3, 8);
      const gap = rollout / waves;
      const bigger = k === 0 && plan.chance(0.6);
      const factor = bigger ? 1 + plan.uniform(0.08, 0.12) : 1 + plan.uniform(-0.02, 0.02);
      const version = bumpMinor(spec.version, 1);
      this.notes.push(`deploy ${spec.name} ${version} x${factor.toFixed(3)}`);
      for (const h of plan.shuffle([...this.hosts])) {
        const c = h.comps.find((x) => x.spec === spec);
        if (!c) continue;
        const wave = plan.int(0, waves - 1);
        c.events.push({
          t: Math.round(t0 + wave * gap + plan.uniform(0, gap * 0.6)),
          kind: "deploy",
          version,
          factor: factor * (1 + plan.uniform(-0.005, 0.005)),
          canary: false,
        });
      }
    }
  }

  private fullRun(h: Host): boolean {
    return h.joinT === this.start && h.removeT === Number.POSITIVE_INFINITY;
  }

  private newLeak(rng: Rng, cause: Cause, pattern: Pattern, h: Host, c: Comp, p: Proc): Leak {
    const gLo = rng.uniform(1, 3);
    const fLo = rng.uniform(2, 5);
    const sLo = rng.uniform(3, 8);
    return {
      cause,
      pattern,
      host: h,
      comp: c,
      proc: p,
      startT: Number.NaN,
      growth: 0,
      rateFrac: 0,
      continues: true,
      armed: false,
      started: false,
      stopped: false,
      normal: 0,
      rate: 0,
      held: 0,
      lastT: 0,
      jitter: rng.uniform(0.05, 0.2),
      stairGrow: [gLo, rng.uniform(gLo, 6)],
      stairFlat: [fLo, rng.uniform(fLo, 10)],
      spikeGap: [sLo, rng.uniform(sLo + 1, 14)],
      segs: [],
      growRate: 0,
      jumps: [],
      jumpIdx: 0,
      rng,
    };
  }

  private planLeaks(rng: Rng): void {
    const taken = new Set<string>();
    const key = (h: Host, c: Comp, p: Proc) => `${h.name}/${c.spec.name}/${p.spec.name}`;
    const patterns: Pattern[] = ["steady", "stair", "spike"];

    // Canary regression.
    const canarySpec = rng.pick(APP_COMPONENTS);
    const hostsWith = this.hosts.filter((h) => this.fullRun(h) && h.comps.some((c) => c.spec === canarySpec));
    const nCanary = Math.max(1, Math.round(hostsWith.length * rng.uniform(0.05, 0.1)));
    const canaryHosts = rng.shuffle([...hostsWith]).slice(0, nCanary);
    const tCanary = this.at(rng.uniform(0.3, 0.5));
    const stagger = rng.uniform(0.5, 3) * HOUR;
    const procName = rng.pick(canarySpec.procs).name;
    const canaryPattern = rng.pick(patterns);
    const canaryGrowth = rng.uniform(0.25, 1.0);
    const rateFrac = canaryGrowth / ((this.end - tCanary) / HOUR);
    const version = `${bumpMinor(canarySpec.version, 2)}-rc1`;
    this.notes.push(`canary ${canarySpec.name}/${procName} ${version} on ${nCanary} hosts, ${canaryPattern}`);
    for (const h of canaryHosts) {
      const c = h.comps.find((x) => x.spec === canarySpec)!;
      const p = c.procs.find((x) => x.spec.name === procName)!;
      const t = Math.round(tCanary + rng.next() * stagger);
      // The canary hosts stay on the canary version: later rollouts skip them.
      c.events = c.events.filter((e) => !(e.kind === "deploy" && e.t >= t));
      c.events.push({ t, kind: "deploy", version, factor: 1, canary: true });
      const leak = this.newLeak(rng, "canary", canaryPattern, h, c, p);
      leak.rateFrac = rateFrac;
      p.leak = leak;
      this.leaks.push(leak);
      taken.add(key(h, c, p));
    }
    const canarySet = new Set(canaryHosts);

    // Isolated process leaks on ~5% of hosts.
    const candidates = rng.shuffle(this.hosts.filter((h) => this.fullRun(h) && !canarySet.has(h)));
    const nIso = Math.max(1, Math.round(this.hosts.length * rng.uniform(0.04, 0.06)));
    for (const h of candidates.slice(0, nIso)) {
      const c = rng.pick(h.comps.filter((x) => !x.spec.kernel));
      const p = rng.pick(c.procs);
      if (taken.has(key(h, c, p))) continue;
      taken.add(key(h, c, p));
      const leak = this.newLeak(rng, "isolated", rng.pick(patterns), h, c, p);
      leak.startT = Math.round(this.at(rng.uniform(0.03, 0.8)));
      leak.growth = rng.chance(0.2) ? rng.uniform(0.03, 0.09) : rng.logUniform(0.1, 1.5);
      leak.continues = rng.chance(0.5);
      p.leak = leak;
      this.leaks.push(leak);
    }

    // Kernel pool leaks.
    const nKernel = rng.int(1, 3);
    const kHosts = rng.shuffle(this.hosts.filter((h) => this.fullRun(h)));
    for (const h of kHosts.slice(0, nKernel)) {
      const c = h.comps.find((x) => x.spec.kernel)!;
      const p = rng.pick(c.procs.filter((x) => x.spec.name !== "page-tables"));
      if (taken.has(key(h, c, p))) continue;
      taken.add(key(h, c, p));
      const leak = this.newLeak(rng, "kernel", rng.chance(0.5) ? "steady" : "stair", h, c, p);
      leak.startT = Math.round(this.at(rng.uniform(0.05, 0.75)));
      leak.growth = rng.logUniform(0.15, 1.2);
      leak.continues = rng.chance(0.5);
      p.leak = leak;
      this.leaks.push(leak);
    }
  }
}

function newPid(h: Host): number {
  h.nextPid += h.rng.int(1, 400);
  if (h.nextPid > 4_194_000) h.nextPid = h.rng.int(300, 2000);
  return h.nextPid;
}

function bumpMinor(version: string, by: number): string {
  const [maj, min] = version.split(".");
  return `${maj}.${Number(min) + by}.0`;
}

// ---------------------------------------------------------------------------------------------
// Simulation.

class Simulator {
  constructor(readonly fleet: Fleet) {}

  normalOf(p: Proc): number {
    const c = p.comp;
    const h = c.host;
    const nominal = p.spec.vm ? p.spec.vm.fixedMiB + p.spec.vm.perVmMiB * h.vms : p.spec.baseMiB;
    return nominal * MiB * p.scale * c.versionFactor * c.configFactor * (p.spec.tenant ? c.tenantFactor : 1);
  }

  restart(p: Proc, at: number): void {
    const h = p.comp.host;
    at = Math.round(at);
    p.pid = p.comp.spec.kernel ? 0 : newPid(h);
    p.startedAt = at;
    p.warmMs *= h.rng.uniform(0.85, 1.15);
    p.warmMs = Math.min(6 * HOUR, Math.max(HOUR, p.warmMs));
    if (p.saw) {
      p.saw.last = at;
      p.saw.next = at + p.saw.period * h.rng.uniform(0.85, 1.15);
    }
    const leak = p.leak;
    if (leak?.started && !leak.stopped) {
      leak.held = 0;
      leak.lastT = at;
      if (!leak.continues) leak.stopped = true;
    }
    if (leak && leak.cause === "canary" && leak.armed && !leak.started) this.startLeak(leak, at);
  }

  startLeak(leak: Leak, t0: number): void {
    const f = this.fleet;
    const rng = leak.rng;
    leak.started = true;
    leak.startT = t0;
    leak.lastT = t0 - 1;
    leak.normal = this.normalOf(leak.proc);
    const hoursLeft = Math.max(0.5, (f.end - t0) / HOUR);
    let total: number;
    if (leak.cause === "canary") {
      leak.rate = leak.rateFrac * leak.normal * rng.uniform(0.8, 1.2);
      total = leak.rate * hoursLeft;
    } else {
      total = leak.growth * leak.normal;
      leak.rate = total / hoursLeft;
    }
    if (leak.pattern === "stair") {
      let t = t0;
      let growMs = 0;
      while (t < f.end) {
        const g = rng.uniform(leak.stairGrow[0], leak.stairGrow[1]) * HOUR;
        const seg: [number, number] = [t, Math.min(f.end, t + g)];
        leak.segs.push(seg);
        growMs += seg[1] - seg[0];
        t += g + rng.uniform(leak.stairFlat[0], leak.stairFlat[1]) * HOUR;
      }
      leak.growRate = total / (growMs / HOUR);
    } else if (leak.pattern === "spike") {
      let t = t0;
      const sizes: number[] = [];
      while (t < f.end) {
        leak.jumps.push({ t, size: 0 });
        sizes.push(Math.exp(0.35 * rng.normal()));
        t += rng.uniform(leak.spikeGap[0], leak.spikeGap[1]) * HOUR;
      }
      const sum = sizes.reduce((s, x) => s + x, 0);
      leak.jumps.forEach((j, i) => {
        j.size = (total * sizes[i]!) / sum;
      });
    }
  }

  /** Leak bytes added over (leak.lastT, t]. */
  private leakStep(leak: Leak, t: number): void {
    const a = leak.lastT;
    if (t <= a) return;
    const rng = leak.rng;
    let inc = 0;
    if (leak.pattern === "steady") {
      inc = leak.rate * ((t - a) / HOUR) * Math.max(0, 1 + leak.jitter * rng.normal());
    } else if (leak.pattern === "stair") {
      let ms = 0;
      for (const [s, e] of leak.segs) {
        if (e <= a) continue;
        if (s >= t) break;
        ms += Math.min(e, t) - Math.max(s, a);
      }
      if (ms > 0) inc = leak.growRate * (ms / HOUR) * Math.max(0, 1 + 0.1 * rng.normal());
    } else {
      while (leak.jumpIdx < leak.jumps.length && leak.jumps[leak.jumpIdx]!.t <= t) {
        const j = leak.jumps[leak.jumpIdx]!;
        if (j.t > a) inc += j.size;
        leak.jumpIdx++;
      }
    }
    leak.held += inc;
    leak.lastT = t;
  }

  private boot(h: Host, bootT: number, t: number): void {
    h.bootT = Math.round(bootT);
    h.pendingBoot = null;
    h.booted = true;
    for (const c of h.comps) {
      for (const p of c.procs) {
        const at = c.spec.kernel ? h.bootT : Math.min(t, bootT + h.rng.int(3_000, 90_000));
        this.restart(p, at);
      }
    }
  }

  private applyHostEvent(h: Host, ev: HostEvent): void {
    const rng = h.rng;
    if (ev.kind === "reboot") {
      h.pendingBoot = ev.boot;
    } else if (ev.kind === "vm") {
      const delta = Math.max(1, Math.round(h.vms * rng.uniform(0.05, 0.3)));
      const canGrow = (h.vms + delta) * h.guestBytes <= 0.8 * h.totalBytes;
      const canShrink = h.vms - delta >= 1;
      if (canShrink && (!canGrow || rng.chance(0.5))) h.vms -= delta;
      else if (canGrow) h.vms += delta;
    } else {
      const x = rng.uniform(0.05, 0.3);
      const factor = rng.chance(0.5) ? 1 + x : 1 / (1 + x);
      for (const c of h.comps) if (c.spec.procs.some((p) => p.tenant)) c.tenantFactor *= factor;
    }
  }

  private applyCompEvent(c: Comp, ev: CompEvent, t: number): void {
    const h = c.host;
    if (ev.kind === "config") {
      c.configFactor *= ev.factor;
      return;
    }
    c.version = ev.version;
    c.versionFactor *= ev.factor;
    if (ev.canary) for (const p of c.procs) if (p.leak?.cause === "canary") p.leak.armed = true;
    if (h.booted && h.pendingBoot === null) {
      for (const p of c.procs) this.restart(p, Math.min(t, ev.t + h.rng.int(2_000, 60_000)));
    }
  }

  /** Advances one host to t; returns whether it reports at t. */
  stepHost(h: Host, t: number): boolean {
    if (t < h.joinT || t >= h.removeT) return false;
    while (h.evIdx < h.events.length && h.events[h.evIdx]!.t <= t)
      this.applyHostEvent(h, h.events[h.evIdx++]!);
    for (const c of h.comps) {
      while (c.evIdx < c.events.length && c.events[c.evIdx]!.t <= t)
        this.applyCompEvent(c, c.events[c.evIdx++]!, t);
    }
    if (h.pendingBoot !== null && t >= h.pendingBoot) this.boot(h, h.pendingBoot, t);
    const down = h.pendingBoot !== null;
    const rng = h.rng;
    let used = h.osBytes + h.vms * h.guestBytes;
    const hourAbs = t / HOUR + h.tz;
    const localH = ((hourAbs % 24) + 24) % 24;
    const dow = (((Math.floor(hourAbs / 24) + 4) % 7) + 7) % 7;
    const weekend = dow === 0 || dow === 6;
    for (const c of h.comps) {
      for (const p of c.procs) {
        while (p.crashIdx < p.crashes.length && p.crashes[p.crashIdx]! <= t) {
          const crashT = p.crashes[p.crashIdx++]!;
          if (!down) this.restart(p, Math.min(t, crashT + rng.int(1_000, 30_000)));
        }
        const leak = p.leak;
        if (leak && !leak.started && leak.cause !== "canary" && t >= leak.startT && !down) {
          this.startLeak(leak, leak.startT);
        }
        // Healthy dynamics.
        p.ar = p.arPhi * p.ar + p.arInnov * rng.normal();
        let saw = 1;
        if (p.saw) {
          const s = p.saw;
          while (t >= s.next) {
            s.last = s.next;
            s.next = s.last + s.period * rng.uniform(0.85, 1.15);
          }
          saw = 1 - s.depth / 2 + (s.depth * (t - s.last)) / (s.next - s.last);
        }
        const age = Math.max(0, t - p.startedAt);
        let warm = 1;
        if (age < 3 * p.warmMs) {
          let f: number;
          if (p.logistic) {
            const k = (2 * Math.log(19)) / p.warmMs;
            const l0 = 1 / (1 + Math.exp(k * (p.warmMs / 2)));
            f = (1 / (1 + Math.exp(-k * (age - p.warmMs / 2))) - l0) / (1 - l0);
          } else {
            f = 1 - Math.exp((-3 * age) / p.warmMs);
          }
          warm = p.w0 + (1 - p.w0) * Math.min(1, f);
        }
        const ang = (2 * Math.PI * (localH - p.peak)) / 24;
        const ang2 = (4 * Math.PI * (localH - p.peak2)) / 24;
        const diurnal = 1 + p.amp * ((1 - p.harm2) * Math.cos(ang) + p.harm2 * Math.cos(ang2));
        const weekly = weekend ? 1 - h.weekendDip : 1;
        let burst = 0;
        for (const b of p.bursts) {
          if (b.start > t) break;
          if (t >= b.end) continue;
          if (t < b.riseEnd) burst += (b.amp * (t - b.start)) / (b.riseEnd - b.start);
          else if (t < b.holdEnd) burst += b.amp;
          else burst += (b.amp * (b.end - t)) / (b.end - b.holdEnd);
        }
        const noise = 1 + p.noise * rng.normal();
        let bytes =
          this.normalOf(p) *
          warm *
          diurnal *
          weekly *
          saw *
          Math.exp(p.ar) *
          Math.max(0.5, noise) *
          (1 + burst);
        if (leak?.started && !leak.stopped) {
          this.leakStep(leak, t);
          bytes += leak.held;
        }
        p.bytes = Math.max(0, Math.round(bytes));
        used += p.bytes;
      }
    }
    h.pc = h.pcPhi * h.pc + h.pcInnov * rng.normal();
    used += h.totalBytes * Math.max(0, h.pcMean + h.pc);
    h.usedBytes = Math.min(h.totalBytes, Math.round(used));
    if (down) return false;
    for (const [s, e] of h.silences) if (t >= s && t < e) return false;
    return true;
  }

  message(h: Host, c: Comp, ts: number): string {
    return JSON.stringify({
      v: 1,
      ts,
      host: h.name,
      component: c.spec.name,
      attrs: { region: h.region.name, cluster: h.zone, version: c.version, hw: h.hw.name },
      hostMemory: { totalBytes: h.totalBytes, usedBytes: h.usedBytes },
      vms: h.vms,
      processes: c.procs.map((p) => ({
        pid: p.pid,
        name: p.spec.name,
        startedAt: p.startedAt,
        bytes: p.bytes,
      })),
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Output.

class LineWriter {
  private buf: string[] = [];
  private size = 0;
  lines = 0;

  constructor(private readonly stream: WriteStream) {}

  push(line: string): void {
    this.buf.push(line);
    this.size += line.length + 1;
    this.lines++;
  }

  async maybeFlush(): Promise<void> {
    if (this.size >= 1 << 22) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.buf.length === 0) return;
    const chunk = `${this.buf.join("\n")}\n`;
    this.buf = [];
    this.size = 0;
    if (!this.stream.write(chunk)) await once(this.stream, "drain");
  }

  async close(): Promise<void> {
    await this.flush();
    this.stream.end();
    await once(this.stream, "finish");
  }
}

interface Pending {
  release: number;
  line: string;
}

function corrupt(line: string, kind: number): string {
  const o = JSON.parse(line) as Record<string, unknown> & {
    ts: number;
    processes: Array<Record<string, number>>;
    hostMemory: { totalBytes: number; usedBytes: number };
  };
  switch (kind % 6) {
    case 0:
      o.processes[0]!.bytes = -Math.max(1, o.processes[0]!.bytes ?? 1);
      return JSON.stringify(o);
    case 1:
      delete o.host;
      return JSON.stringify(o);
    case 2:
      o.hostMemory.usedBytes = o.hostMemory.totalBytes + GiB;
      return JSON.stringify(o);
    case 3:
      o.host = `${String(o.host)}/bad host`;
      return JSON.stringify(o);
    case 4:
      return line.slice(0, Math.floor(line.length / 2));
    default:
      o.processes[0]!.startedAt = o.ts + HOUR;
      return JSON.stringify(o);
  }
}

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`bad duration: ${text}`);
  const v = Number(m[1]);
  const unit = m[2] ?? "s";
  const ms = unit === "ms" ? v : unit === "s" ? v * 1000 : unit === "m" ? v * MIN : v * HOUR;
  if (!(ms >= 1000)) throw new Error(`interval must be at least 1 s: ${text}`);
  return Math.round(ms);
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      seed: { type: "string", default: "1" },
      hosts: { type: "string", default: "200" },
      days: { type: "string", default: "5" },
      scenario: { type: "string", default: "mixed" },
      out: { type: "string" },
      truth: { type: "string" },
      interval: { type: "string", default: "300" },
      start: { type: "string", default: "2026-03-02T00:00:00Z" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      "usage: npm run altgen -- --seed N --hosts 200 --days 5 --scenario mixed|quiet --out T --truth G\n" +
        "         [--interval 300] [--start 2026-03-02T00:00:00Z]\n\n" +
        "An independent fleet generator (telemetry and truth, contract v1), written from the contracts\n" +
        "alone: measure the detector on fleets it was not developed against (see eval/README.md).\n",
    );
    process.exit(0);
  }
  const fail = (msg: string): never => {
    process.stderr.write(`altgen: ${msg}\n`);
    process.exit(2);
  };
  const seed = Number(values.seed);
  const hosts = Number(values.hosts);
  const days = Number(values.days);
  const start = Date.parse(values.start!);
  if (!Number.isInteger(seed) || seed < 0) fail(`--seed must be a non-negative integer: ${values.seed}`);
  if (!Number.isInteger(hosts) || hosts < 1) fail(`--hosts must be a positive integer: ${values.hosts}`);
  if (!(days > 0)) fail(`--days must be positive: ${values.days}`);
  if (!Number.isFinite(start)) fail(`--start is not a date: ${values.start}`);
  if (values.scenario !== "mixed" && values.scenario !== "quiet") fail("--scenario must be mixed or quiet");
  if (!values.out || !values.truth) fail("--out and --truth are required");
  let intervalMs = 0;
  try {
    intervalMs = parseDuration(values.interval!);
  } catch (err) {
    fail(String((err as Error).message));
  }
  return {
    seed,
    hosts,
    days,
    scenario: values.scenario as "mixed" | "quiet",
    out: values.out!,
    truth: values.truth!,
    intervalMs,
    start,
  };
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const opts = parseOptions(process.argv.slice(2));
  const fleet = new Fleet(opts);
  const sim = new Simulator(fleet);
  const out = new LineWriter(createWriteStream(opts.out));
  const delivery = new Rng(opts.seed, "delivery");
  const maxLag = Math.min(2 * fleet.dt, 580_000);

  // A handful of invalid lines at random steps.
  const invalidAt = new Map<number, number>();
  const nInvalid = delivery.int(5, 9);
  for (let k = 0; k < nInvalid; k++) {
    const s = delivery.int(0, fleet.steps - 1);
    invalidAt.set(s, (invalidAt.get(s) ?? 0) + 1);
  }

  let pending: Pending[] = [];
  let dropped = 0;
  let duplicated = 0;
  let late = 0;
  let invalid = 0;
  let samples = 0;
  const releaseBefore = (ts: number): void => {
    if (pending.length === 0 || pending[0]!.release >= ts) return;
    let i = 0;
    while (i < pending.length && pending[i]!.release < ts) out.push(pending[i++]!.line);
    pending = pending.slice(i);
  };
  const addPending = (p: Pending): void => {
    let i = pending.length;
    while (i > 0 && pending[i - 1]!.release > p.release) i--;
    pending.splice(i, 0, p);
  };

  const stepLines: Array<{ ts: number; line: string }> = [];
  for (let k = 0; k < fleet.steps; k++) {
    const t = fleet.start + k * fleet.dt;
    stepLines.length = 0;
    for (const h of fleet.hosts) {
      if (!sim.stepHost(h, t)) continue;
      for (const c of h.comps) {
        const ts = t + h.offsetMs + h.rng.int(0, 2500);
        stepLines.push({ ts, line: sim.message(h, c, ts) });
      }
    }
    stepLines.sort((a, b) => a.ts - b.ts);
    const bad = invalidAt.get(k) ?? 0;
    const badLines: string[] = [];
    for (let b = 0; b < bad && stepLines.length > 0; b++) {
      badLines.push(corrupt(delivery.pick(stepLines).line, invalid));
      invalid++;
    }
    for (const { ts, line } of stepLines) {
      releaseBefore(ts);
      samples++;
      const r = delivery.next();
      if (r < 0.01) {
        dropped++;
      } else if (r < 0.02) {
        duplicated++;
        out.push(line);
        addPending({ release: ts + delivery.uniform(0, fleet.dt), line });
      } else if (r < 0.04) {
        late++;
        addPending({ release: ts + delivery.uniform(0.3 * fleet.dt, maxLag), line });
      } else {
        out.push(line);
      }
    }
    // Invalid lines are extra copies (the valid sample was delivered as well).
    for (const line of badLines) out.push(line);
    await out.maybeFlush();
  }
  for (const p of pending) out.push(p.line);
  await out.close();

  // Ground truth.
  const truth = new LineWriter(createWriteStream(opts.truth));
  const byPattern = new Map<string, number>();
  const byCause = new Map<string, number>();
  let eligible = 0;
  for (const leak of fleet.leaks) {
    if (!leak.started) continue;
    const grown = Math.round(leak.stopped ? 0 : leak.held);
    truth.push(
      JSON.stringify({
        host: leak.host.name,
        component: leak.comp.spec.name,
        process: leak.proc.spec.name,
        kind: leak.cause === "kernel" ? "kernel" : "process",
        pattern: leak.pattern,
        startTs: Math.round(leak.startT),
        ratePerHour: Math.round(leak.rate),
        cause: leak.cause,
        normalBytes: Math.round(leak.normal),
        grownBytes: grown,
      }),
    );
    byPattern.set(leak.pattern, (byPattern.get(leak.pattern) ?? 0) + 1);
    byCause.set(leak.cause, (byCause.get(leak.cause) ?? 0) + 1);
    if (grown >= 0.1 * leak.normal) eligible++;
  }
  await truth.close();

  const fmt = (m: Map<string, number>) => [...m].map(([k, v]) => `${k} ${v}`).join(", ") || "none";
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  process.stderr.write(
    `altgen: seed ${opts.seed} ${opts.scenario} hosts ${opts.hosts} days ${opts.days} interval ${fleet.dt / 1000}s: ` +
      `${out.lines} lines (${samples} samples, dropped ${dropped}, duplicated ${duplicated}, late ${late}, invalid ${invalid}); ` +
      `leaks ${truth.lines} (${eligible} grew >= 10%) by pattern [${fmt(byPattern)}] by cause [${fmt(byCause)}]; ` +
      `${fleet.notes.join("; ")}; ${secs}s\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`altgen: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
