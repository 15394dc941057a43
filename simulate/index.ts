/**
 * The fleet simulator: a fleet of hosts whose agents publish telemetry v1, with ground truth v1
 * for the injected leaks (shared/CONTRACT.md §1, §3). Deterministic for a configuration: the same
 * config (seed included) gives the same messages, byte for byte.
 *
 * ```ts
 * const sim = createSimulation(resolveScenario("mixed", { hosts: 50, days: 2, seed: 7 }));
 * for (const line of sim.lines()) out.write(line);   // NDJSON in delivery order
 * const truth = sim.truth();                          // TruthRecord[]
 * ```
 */
import type { GrowthPattern, LeakKind } from "../schemas/suspect.ts";
import type { Telemetry } from "../schemas/telemetry.ts";
import type { TruthRecord } from "../schemas/truth.ts";
import type { SimConfig } from "./config.ts";
import { type DeliveryStats, emptyDeliveryStats, generate, lineBuilder, objectBuilder } from "./engine.ts";
import { buildPlan, type LeakCause, type Plan, type RestartCause, truthRecord } from "./plan.ts";
import { validateConfig } from "./scenario.ts";

export type { ComponentSpec, PresetName, ProcessSpec, SimConfig } from "./config.ts";
export {
  DEFAULT_START,
  defaultComponents,
  isPreset,
  PRESET_DESCRIPTIONS,
  PRESETS,
  presetConfig,
} from "./config.ts";
export { DAY, formatDuration, HOUR, MINUTE, parseBytes, parseDuration, SECOND } from "./duration.ts";
export type { DeliveryStats } from "./engine.ts";
export type { LeakCause, Plan, RestartCause } from "./plan.ts";
export {
  applyOverrides,
  parseScenarioText,
  resolveScenario,
  ScenarioFile,
  ScenarioNotFoundError,
  type SimOverrides,
  validateConfig,
} from "./scenario.ts";

/** Options of one pass over the messages. */
export interface RunOptions {
  /** Called after each simulated tick (e.g. for a progress bar). */
  onTick?: (tick: number, ticks: number) => void;
}

/** Public description of one simulated host. */
export interface HostInfo {
  id: string;
  region: string;
  cluster: string;
  hw: string;
  os: string;
  totalBytes: number;
  components: string[];
  /** When the host stopped sending (undefined: never), and when it came back (undefined: never). */
  downFrom?: number;
  downTo?: number;
}

export interface SimStats {
  scenario: string;
  seed: number;
  hosts: number;
  regions: number;
  clusters: number;
  /** (host, component) pairs, i.e. messages per tick. */
  hostComponents: number;
  /** Process series at the start. */
  processes: number;
  ticks: number;
  intervalMs: number;
  start: number;
  /** Time of the last tick. */
  end: number;
  /** Delivery counters of the last (or current) pass over the messages. */
  delivery: DeliveryStats;
  restarts: Record<Exclude<RestartCause, "initial">, number>;
  deploys: { component: string; version: string; start: number; hours: number }[];
  configChange: { component: string; at: number; step: number } | null;
  hostDeaths: number;
  hostComebacks: number;
  canary: { component: string; version: string; at: number; hosts: number; widerHosts: number } | null;
  leaks: {
    total: number;
    byPattern: Record<GrowthPattern, number>;
    byKind: Record<LeakKind, number>;
    byCause: Record<LeakCause, number>;
  };
}

export interface Simulation {
  readonly config: SimConfig;
  /** The full plan (hosts, timelines, leaks); read-only by convention. */
  readonly plan: Plan;
  readonly hosts: readonly HostInfo[];
  /** Number of sampling ticks, first tick time and last tick time (epoch ms). */
  readonly ticks: number;
  readonly start: number;
  readonly end: number;
  readonly intervalMs: number;
  /** Samples per pass before delivery faults: Σ over ticks of the (host, component) pairs that are up. Exact. */
  readonly expectedSamples: number;
  /**
   * Telemetry messages in delivery order, faults applied. Each call starts a fresh, identical
   * pass. A duplicate is the same object yielded twice: treat messages as immutable.
   */
  messages(options?: RunOptions): Generator<Telemetry>;
  /** The same stream as NDJSON lines (no newline), in the contract's key order: the fast path. */
  lines(options?: RunOptions): Generator<string>;
  /** Ground truth, one record per injected leak, ordered by startTs. */
  truth(): TruthRecord[];
  /** Ground truth as NDJSON lines (fixed key order). */
  truthLines(): string[];
  /** Summary of the plan and of the last pass's delivery. */
  stats(): SimStats;
}

/** Where lines go: LineWriter from lib/ndjson.ts fits. `write` returns a Promise when the sink wants a pause. */
export interface LineSink {
  write(line: string): Promise<void> | undefined;
}

/**
 * Writes lines to a sink, keeping one chunk in flight while the next one is generated (so the
 * simulation overlaps the disk writes). Stops after `limit` lines or when `stop()` returns true.
 * Returns the number of lines written. Does not close the sink.
 */
export async function writeLines(
  lines: Iterable<string>,
  sink: LineSink,
  options: { limit?: number; stop?: () => boolean } = {},
): Promise<number> {
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  let inFlight: Promise<void> | undefined;
  let n = 0;
  if (limit <= 0) return 0;
  for (const line of lines) {
    const wait = sink.write(line);
    n++;
    if (wait !== undefined) {
      if (inFlight !== undefined) await inFlight;
      inFlight = wait;
      if (options.stop?.() === true) break;
    }
    if (n >= limit) break;
  }
  if (inFlight !== undefined) await inFlight;
  return n;
}

/** Plans a simulation from a configuration (validated; throws ValidationError when invalid). */
export function createSimulation(config: SimConfig): Simulation {
  const cfg = validateConfig(config);
  const plan = buildPlan(cfg);
  let delivery = emptyDeliveryStats();

  const hosts: HostInfo[] = plan.hosts.map((h) => {
    const info: HostInfo = {
      id: h.id,
      region: h.region,
      cluster: h.cluster,
      hw: h.hw,
      os: h.os,
      totalBytes: h.totalBytes,
      components: h.comps.map((c) => c.name),
    };
    if (h.downFrom <= plan.end) info.downFrom = h.downFrom;
    if (h.downTo <= plan.end) info.downTo = h.downTo;
    return info;
  });

  let expectedSamples = 0;
  for (const h of plan.hosts) {
    let up = plan.ticks;
    if (h.downFrom <= plan.end) {
      const from = Math.max(0, Math.ceil((h.downFrom - plan.start) / plan.intervalMs));
      const to = Math.min(plan.ticks, Math.ceil((h.downTo - plan.start) / plan.intervalMs));
      up -= Math.max(0, to - from);
    }
    expectedSamples += up * h.comps.length;
  }

  const truth = (): TruthRecord[] => plan.leaks.map((l) => truthRecord(plan, l));

  return {
    config: cfg,
    plan,
    hosts,
    ticks: plan.ticks,
    start: plan.start,
    end: plan.end,
    intervalMs: plan.intervalMs,
    expectedSamples,
    messages(options = {}) {
      delivery = emptyDeliveryStats();
      return generate(plan, objectBuilder, delivery, options.onTick);
    },
    lines(options = {}) {
      delivery = emptyDeliveryStats();
      return generate(plan, lineBuilder, delivery, options.onTick);
    },
    truth,
    truthLines: () => truth().map((r) => JSON.stringify(r)),
    stats(): SimStats {
      const restarts = { deploy: 0, crash: 0, reboot: 0, canary: 0 };
      let processes = 0;
      let hostComponents = 0;
      for (const h of plan.hosts) {
        for (const c of h.comps) {
          hostComponents++;
          for (const p of c.procs) {
            processes++;
            for (const life of p.lives) if (life.cause !== "initial") restarts[life.cause]++;
          }
        }
      }
      const byPattern = { steady: 0, stair: 0, spike: 0 };
      const byKind = { process: 0, kernel: 0 };
      const byCause = { isolated: 0, canary: 0, kernel: 0 };
      for (const { leak } of plan.leaks) {
        byPattern[leak.pattern]++;
        byKind[leak.kind]++;
        byCause[leak.cause]++;
      }
      return {
        scenario: cfg.name,
        seed: cfg.seed,
        hosts: plan.hosts.length,
        regions: plan.regions.length,
        clusters: plan.clusters.length,
        hostComponents,
        processes,
        ticks: plan.ticks,
        intervalMs: plan.intervalMs,
        start: plan.start,
        end: plan.end,
        delivery: { ...delivery },
        restarts,
        deploys: plan.deploys.map((d) => ({ ...d })),
        configChange: plan.configChange === null ? null : { ...plan.configChange },
        hostDeaths: plan.hosts.filter((h) => h.downFrom <= plan.end).length,
        hostComebacks: plan.hosts.filter((h) => h.downTo <= plan.end).length,
        canary: plan.canary === null ? null : { ...plan.canary },
        leaks: { total: plan.leaks.length, byPattern, byKind, byCause },
      };
    },
  };
}
