import { z } from "zod";
import { SUBJECT_TOKEN } from "../schemas/common.ts";
import { GrowthPattern } from "../schemas/suspect.ts";
import { DAY, MINUTE, parseBytes, parseDuration } from "./duration.ts";

/**
 * The simulator's configuration (SimConfig) and its zod schemas. Every schema is strict:
 * unknown keys are rejected, so a typo in a scenario file is an error, not a silent default.
 */

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** 2026-01-05T00:00:00Z, a Monday. */
export const DEFAULT_START = 1767571200000;

const finite = () => z.number().finite();

/** A [min, max] pair of numbers within [lo, hi]. */
function range(lo = Number.NEGATIVE_INFINITY, hi = Number.POSITIVE_INFINITY) {
  let n = finite();
  if (Number.isFinite(lo)) n = n.min(lo);
  if (Number.isFinite(hi)) n = n.max(hi);
  return z.tuple([n, n]).refine(([a, b]) => a <= b, { message: "range [min, max] needs min <= max" });
}

/** A byte count: a number, or a size string such as "200MiB" or "1.5GiB". */
const Size = z.unknown().transform((v, ctx): number => {
  if (typeof v === "number" && Number.isFinite(v) && v >= 0) return Math.round(v);
  if (typeof v === "string") {
    try {
      return parseBytes(v);
    } catch {
      // reported below
    }
  }
  ctx.addIssue({
    code: "custom",
    message:
      v === undefined
        ? "required: a byte size"
        : 'expected a byte size (a number >= 0 or text like "200MiB")',
  });
  return z.NEVER;
});
const SizeRange = z
  .tuple([Size, Size])
  .refine(([a, b]) => a <= b, { message: "range [min, max] needs min <= max" });

const Fraction = finite().min(0).max(1);
const Token = z.string().regex(SUBJECT_TOKEN, "must match [A-Za-z0-9_-]{1,128}");

/** Relative weights of the growth patterns (need not sum to 1). */
export const PatternWeights = z
  .strictObject({ steady: finite().min(0), stair: finite().min(0), spike: finite().min(0) })
  .refine((w) => w.steady + w.stair + w.spike > 0, { message: "at least one pattern weight must be > 0" });
export type PatternWeights = z.output<typeof PatternWeights>;

/**
 * One process of a component and its healthy behaviour. Sizes are drawn per host from the ranges;
 * the behaviours multiply: base × warm-up × diurnal × sawtooth × burst, plus perVm × vms.
 */
export const ProcessSpec = z.strictObject({
  /** Process name (for the kernel component: the pool tag). */
  name: z.string().min(1).max(256),
  /** Probability that a host running the component runs this process. */
  share: Fraction.default(1),
  /** Healthy size without any behaviour, drawn per host. */
  baseBytes: SizeRange,
  /** Relative standard deviation of the per-sample noise, drawn per host. */
  noise: range(0, 0.5).default([0.005, 0.02]),
  /** Bytes per customer VM on the host (memory that follows the tenant count). */
  perVmBytes: SizeRange.optional(),
  /** Cache warm-up after every (re)start: × (1 + gain·(1 − exp(−age/τ))). */
  warmup: z.strictObject({ gain: range(0, 10), tauHours: range(0.01, 1000) }).optional(),
  /** Diurnal load: × (1 + amplitude·cos(2π(localHour − peakHour)/24)), in the region's local time. */
  diurnal: z.strictObject({ amplitude: range(0, 0.95), peakHour: range(0, 24) }).optional(),
  /** GC sawtooth: rises linearly by `amplitude` over `periodHours`, then drops back. */
  sawtooth: z.strictObject({ amplitude: range(0, 10), periodHours: range(0.02, 1000) }).optional(),
  /** Transient bursts: `perDay` on average, each × (1 + amplitude) for `durationHours`. */
  bursts: z
    .strictObject({ perDay: range(0, 200), amplitude: range(0, 10), durationHours: range(0.01, 48) })
    .optional(),
});
export type ProcessSpec = z.output<typeof ProcessSpec>;

/** A component (service / process family) of the catalog. The name `kernel` is the reserved kernel component. */
export const ComponentSpec = z
  .strictObject({
    name: Token,
    /** Fraction of hosts that run it (the kernel runs everywhere regardless). */
    share: Fraction.default(1),
    /** Initial software version (the kernel's version comes from the host OS). */
    version: z.string().min(1).max(64).default("1.0.0"),
    processes: z.array(ProcessSpec).min(1).max(64),
  })
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.processes.forEach((p, i) => {
      if (seen.has(p.name))
        ctx.addIssue({ code: "custom", message: "duplicate process name", path: ["processes", i, "name"] });
      seen.add(p.name);
    });
  });
export type ComponentSpec = z.output<typeof ComponentSpec>;

export const RegionSpec = z.strictObject({ name: Token, utcOffsetHours: finite().min(-12).max(14) });
export type RegionSpec = z.output<typeof RegionSpec>;

export const HardwareSpec = z.strictObject({
  name: z.string().min(1).max(64),
  totalBytes: Size,
  weight: finite().positive(),
});
export type HardwareSpec = z.output<typeof HardwareSpec>;

export const OsSpec = z.strictObject({
  name: z.string().min(1).max(64),
  kernelVersion: z.string().min(1).max(64),
  weight: finite().positive(),
});
export type OsSpec = z.output<typeof OsSpec>;

/** Customer VMs per host: a birth–death process with steps up and down. */
export const VmSpec = z.strictObject({
  /** Fraction of hosts that stay empty (no VMs). */
  emptyShare: Fraction,
  /** VM arrivals + departures per host per day. */
  changesPerDay: range(0, 1000),
  /** Average memory of one VM on the host, drawn per host. */
  vmBytes: SizeRange,
  /** Initial fill of the host's VM capacity. */
  fill: range(0, 1),
});
export type VmSpec = z.output<typeof VmSpec>;

/** Delivery faults, each a probability per message. */
export const FaultSpec = z
  .strictObject({
    lost: Fraction,
    duplicated: Fraction,
    /** Delivered 1..lateness intervals late. */
    late: Fraction,
    /** Agent clock jitter: ts is late by 0..jitterMs (a per-host offset plus a per-sample part, each ≤ jitterMs/2). */
    jitterMs: z.number().int().min(0).max(60_000),
  })
  .refine((f) => f.lost + f.duplicated + f.late <= 1, {
    message: "lost + duplicated + late must be <= 1",
    path: ["late"],
  });
export type FaultSpec = z.output<typeof FaultSpec>;

export const ConfigChangeSpec = z.strictObject({
  /** Component whose memory steps up; random (among components on ≥ 50% of hosts) when absent. */
  component: Token.optional(),
  /** Relative step, e.g. [0.1, 0.3] for +10–30%. */
  step: range(-0.9, 10),
  /** When, as a fraction of the run. */
  at: range(0, 1),
  /** Hosts apply it within this many hours. */
  withinHours: finite().min(0).max(240),
});
export type ConfigChangeSpec = z.output<typeof ConfigChangeSpec>;

/** Healthy fleet events: the hard negatives. */
export const EventSpec = z.strictObject({
  /** Rolling deploys (new version, all processes of the component restart), on average per day. */
  deploysPerDay: finite().min(0).max(100),
  /** A deploy rolls over the clusters within this many hours. */
  deployHours: range(0.1, 240),
  /** Random crash + restart of single processes, per process per day. */
  crashesPerProcessPerDay: finite().min(0).max(100),
  /** A fleet-wide config change stepping one component's memory up once, or null. */
  configChange: ConfigChangeSpec.nullable(),
  /** Hosts that stop sending; `comebackShare` of them come back after `downHours` with everything restarted. */
  hostDeaths: z.strictObject({ share: Fraction, comebackShare: Fraction, downHours: range(0.01, 240) }),
});
export type EventSpec = z.output<typeof EventSpec>;

export const IsolatedLeakSpec = z.strictObject({
  /** Fraction of hosts with an isolated leak, drawn from the range. */
  share: range(0, 1),
  /** Exact number of isolated leaks; overrides `share` when set. */
  count: z.number().int().min(0).max(1_000_000).optional(),
  patterns: PatternWeights,
  /** Leak rate as a fraction of the process's normal size per day, log-uniform. */
  ratePerDay: range(0.0001, 100),
  /** Leak start, uniformly within this fraction of the run. */
  window: range(0, 1),
  /** At least this many isolated leaks see a restart (crash) after they start. */
  minRestarted: z.number().int().min(0).max(1000),
});
export type IsolatedLeakSpec = z.output<typeof IsolatedLeakSpec>;

export const KernelLeakSpec = z.strictObject({
  /** Number of hosts with a kernel pool leak, an integer drawn from the range. */
  count: range(0, 1_000_000),
  patterns: PatternWeights,
  ratePerDay: range(0.0001, 100),
  window: range(0, 1),
});
export type KernelLeakSpec = z.output<typeof KernelLeakSpec>;

export const CanarySpec = z.strictObject({
  /** Component that gets the leaking version; random (non-kernel, on ≥ 50% of hosts) when absent. */
  component: Token.optional(),
  /** The leaking process of that component; its first process when absent. */
  process: z.string().min(1).max(256).optional(),
  /** Share of the component's hosts in the canary ring. */
  share: range(0, 1),
  /** Canary rollout time as a fraction of the run (all canary hosts within ~45 min). */
  at: range(0, 1),
  patterns: PatternWeights,
  ratePerDay: range(0.0001, 100),
  /** A later, wider rollout of the same leaking version, or null. */
  wider: z
    .strictObject({
      at: range(0, 1),
      /** Share of the remaining hosts of the component (whole clusters). */
      share: Fraction,
      hours: range(0.1, 240),
    })
    .nullable(),
});
export type CanarySpec = z.output<typeof CanarySpec>;

/** A leak placed by hand. */
export const ExplicitLeakSpec = z
  .strictObject({
    /** Host id (e.g. "r00-h00042") or host index. */
    host: z.union([Token, z.number().int().min(0)]),
    component: Token,
    /** Process name (pool tag for the kernel); the component's first process when absent. */
    process: z.string().min(1).max(256).optional(),
    pattern: GrowthPattern,
    /** Start as an offset from the simulation start, e.g. "36h". */
    at: z.string().refine(isDuration, { message: 'expected a duration such as "36h" or "1d12h"' }),
    /** Rate as a fraction of the process's normal size per day ... */
    ratePerDay: finite().positive().max(100).optional(),
    /** ... or in bytes per hour. */
    bytesPerHour: Size.optional(),
  })
  .refine((l) => (l.ratePerDay === undefined) !== (l.bytesPerHour === undefined), {
    message: "give exactly one of ratePerDay and bytesPerHour",
    path: ["ratePerDay"],
  });
export type ExplicitLeakSpec = z.output<typeof ExplicitLeakSpec>;

export const LeakSpec = z.strictObject({
  isolated: IsolatedLeakSpec,
  kernel: KernelLeakSpec,
  canary: CanarySpec.nullable(),
  explicit: z.array(ExplicitLeakSpec).max(100_000),
});
export type LeakSpec = z.output<typeof LeakSpec>;

function isDuration(text: string): boolean {
  try {
    parseDuration(text);
    return true;
  } catch {
    return false;
  }
}

/** The full, resolved configuration of one simulation. */
export const SimConfigSchema = z.strictObject({
  /** Scenario name, for summaries. */
  name: z.string().min(1).max(256),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  hosts: z.number().int().min(1).max(1_000_000),
  /** Simulation start, epoch ms. */
  start: z.number().int().min(0),
  days: finite().positive().max(3660),
  intervalMs: z.number().int().min(1000).max(DAY),
  /** Allowed lateness, in sampling intervals: late messages are at most this many intervals late. */
  lateness: z.number().int().min(0).max(100),
  regions: z.array(RegionSpec).min(1).max(100),
  /** Hosts per cluster. */
  clusterSize: range(1, 100_000),
  hardware: z.array(HardwareSpec).min(1).max(100),
  os: z.array(OsSpec).min(1).max(100),
  vms: VmSpec,
  components: z.array(ComponentSpec).min(1).max(1000),
  faults: FaultSpec,
  events: EventSpec,
  leaks: LeakSpec,
});
export type SimConfig = z.output<typeof SimConfigSchema>;

// ---------------------------------------------------------------------------------------------
// Default catalog and presets

/** The default component catalog. */
export function defaultComponents(): ComponentSpec[] {
  const noise: [number, number] = [0.005, 0.02];
  return [
    {
      name: "kernel",
      share: 1,
      version: "kernel",
      processes: [
        {
          name: "dentry",
          share: 1,
          baseBytes: [300 * MiB, 900 * MiB],
          noise: [0.005, 0.015],
          perVmBytes: [2 * MiB, 6 * MiB],
        },
        {
          name: "kmalloc-256",
          share: 1,
          baseBytes: [120 * MiB, 400 * MiB],
          noise: [0.005, 0.015],
          perVmBytes: [1 * MiB, 3 * MiB],
        },
        {
          name: "vmalloc",
          share: 1,
          baseBytes: [200 * MiB, 600 * MiB],
          noise: [0.005, 0.015],
          perVmBytes: [4 * MiB, 12 * MiB],
        },
        {
          name: "netbuf",
          share: 1,
          baseBytes: [60 * MiB, 200 * MiB],
          noise: [0.01, 0.03],
          perVmBytes: [3 * MiB, 10 * MiB],
        },
        { name: "nvme-cmd", share: 0.6, baseBytes: [40 * MiB, 120 * MiB], noise: [0.005, 0.015] },
      ],
    },
    {
      name: "storage-cache",
      share: 0.85,
      version: "24.3.1",
      processes: [
        {
          name: "storage-cache",
          share: 1,
          baseBytes: [1.5 * GiB, 3 * GiB],
          noise: [0.005, 0.015],
          warmup: { gain: [0.3, 0.8], tauHours: [1, 4] },
        },
      ],
    },
    {
      name: "vm-agent",
      share: 0.97,
      version: "3.12.4",
      processes: [
        {
          name: "vm-agent",
          share: 1,
          baseBytes: [170 * MiB, 230 * MiB],
          noise: [0.005, 0.012],
          perVmBytes: [40 * MiB, 80 * MiB],
        },
      ],
    },
    {
      name: "net-proxy",
      share: 0.9,
      version: "1.28.0",
      processes: [
        {
          name: "net-proxy",
          share: 1,
          baseBytes: [700 * MiB, 1300 * MiB],
          noise,
          diurnal: { amplitude: [0.1, 0.25], peakHour: [13, 16] },
        },
        {
          name: "net-proxy-worker",
          share: 1,
          baseBytes: [250 * MiB, 500 * MiB],
          noise,
          diurnal: { amplitude: [0.1, 0.25], peakHour: [13, 16] },
        },
      ],
    },
    {
      name: "host-api",
      share: 0.8,
      version: "5.2.0",
      processes: [
        {
          name: "host-api",
          share: 1,
          baseBytes: [400 * MiB, 900 * MiB],
          noise: [0.005, 0.015],
          sawtooth: { amplitude: [0.1, 0.4], periodHours: [0.5, 6] },
        },
      ],
    },
    {
      name: "monitor-agent",
      share: 0.95,
      version: "2.7.3",
      processes: [
        {
          name: "monitor-agent",
          share: 1,
          baseBytes: [50 * MiB, 110 * MiB],
          noise: [0.01, 0.03],
          bursts: { perDay: [1, 3], amplitude: [0.2, 1], durationHours: [1 / 6, 2] },
        },
      ],
    },
    {
      name: "log-shipper",
      share: 0.7,
      version: "9.1.2",
      processes: [
        {
          name: "log-shipper",
          share: 1,
          baseBytes: [150 * MiB, 300 * MiB],
          noise,
          diurnal: { amplitude: [0.03, 0.08], peakHour: [10, 14] },
        },
        {
          name: "log-shipper-tail",
          share: 0.5,
          baseBytes: [40 * MiB, 90 * MiB],
          noise,
          diurnal: { amplitude: [0.03, 0.08], peakHour: [10, 14] },
        },
      ],
    },
  ];
}

function baseConfig(name: string): SimConfig {
  return {
    name,
    seed: 1,
    hosts: 200,
    start: DEFAULT_START,
    days: 5,
    intervalMs: 5 * MINUTE,
    lateness: 2,
    regions: [
      { name: "westeurope", utcOffsetHours: 1 },
      { name: "eastus", utcOffsetHours: -5 },
      { name: "southeastasia", utcOffsetHours: 8 },
      { name: "brazilsouth", utcOffsetHours: -3 },
    ],
    clusterSize: [20, 40],
    hardware: [
      { name: "gen5", totalBytes: 128 * GiB, weight: 0.15 },
      { name: "gen6", totalBytes: 256 * GiB, weight: 0.3 },
      { name: "gen7", totalBytes: 384 * GiB, weight: 0.35 },
      { name: "gen8", totalBytes: 512 * GiB, weight: 0.2 },
    ],
    os: [
      { name: "azurelinux-3.0", kernelVersion: "6.6.64", weight: 0.7 },
      { name: "ubuntu-22.04", kernelVersion: "5.15.0-131", weight: 0.3 },
    ],
    vms: { emptyShare: 0.05, changesPerDay: [2, 6], vmBytes: [4 * GiB, 16 * GiB], fill: [0.3, 1] },
    components: defaultComponents(),
    faults: { lost: 0.005, duplicated: 0.005, late: 0.01, jitterMs: 3000 },
    events: {
      deploysPerDay: 0.6,
      deployHours: [6, 24],
      crashesPerProcessPerDay: 0.01,
      configChange: { step: [0.1, 0.3], at: [0.2, 0.8], withinHours: 1 },
      hostDeaths: { share: 0.01, comebackShare: 0.6, downHours: [1, 4] },
    },
    leaks: {
      isolated: {
        share: [0, 0],
        patterns: { steady: 0.55, stair: 0.25, spike: 0.2 },
        ratePerDay: [0.03, 1.5],
        window: [0.1, 0.85],
        minRestarted: 0,
      },
      kernel: {
        count: [0, 0],
        patterns: { steady: 0.6, stair: 0.4, spike: 0 },
        ratePerDay: [0.05, 1],
        window: [0.1, 0.85],
      },
      canary: null,
      explicit: [],
    },
  };
}

/** The default canary regression (used by `mixed`, and as the base when a scenario file sets a partial canary). */
export function defaultCanary(): CanarySpec {
  return {
    share: [0.05, 0.1],
    at: [0.3, 0.5],
    patterns: { steady: 0.7, stair: 0.3, spike: 0 },
    ratePerDay: [0.2, 1],
    wider: null,
  };
}

/** Names of the built-in scenarios. */
export const PRESETS = ["mixed", "regression", "quiet"] as const;
export type PresetName = (typeof PRESETS)[number];

export const PRESET_DESCRIPTIONS: Record<PresetName, string> = {
  mixed:
    "healthy behaviours and hard negatives, faults, ~4-6% of hosts with an isolated leak (steady/stair/spike), a canary regression and 1-3 kernel pool leaks",
  regression:
    "healthy fleet with hard negatives; a leaking version goes to a 5-10% canary ring, later to about half of the remaining hosts",
  quiet:
    "all healthy behaviours, deploys, a config step, bursts, host deaths and delivery faults; no leaks (empty truth)",
};

export function isPreset(name: string): name is PresetName {
  return (PRESETS as readonly string[]).includes(name);
}

/** A fresh copy of a built-in scenario's configuration. */
export function presetConfig(name: PresetName): SimConfig {
  const c = baseConfig(name);
  switch (name) {
    case "mixed":
      c.leaks.isolated.share = [0.04, 0.06];
      c.leaks.isolated.minRestarted = 1;
      c.leaks.kernel.count = [1, 3];
      c.leaks.canary = defaultCanary();
      break;
    case "regression":
      c.leaks.canary = {
        ...defaultCanary(),
        at: [0.25, 0.35],
        wider: { at: [0.55, 0.65], share: 0.5, hours: [6, 12] },
      };
      break;
    case "quiet":
      break;
  }
  return c;
}
