/**
 * The closed loop: one simulated fleet run twice on the same plan (same scenario, same seed),
 * once left alone and once with resin in the loop — the detector (pipelines/detect.ts's windowing
 * and DetectionStage, the same code as replay) reads the telemetry the generator produces, faults
 * included, window by window in event time; its suspects feed the mitigation engine
 * (sinks/mitigation/engine.ts, live); the engine's commands go to the simulated agents, whose
 * actions change the telemetry that follows. Everything is synchronous and deterministic.
 *
 * The ground truth is used only to score: whether a rebooted host was leaking, whether a
 * restarted process was. It never reaches the detector or the engine.
 *
 *   const r = runClosedLoop({ sim: resolveScenario("mixed", { hosts: 100, days: 30, seed: 7 }) });
 *   r.without.lowMemoryVmRebootsPer100kHostDays / r.with.lowMemoryVmRebootsPer100kHostDays
 */
import type { MitigateReply, MitigateRequest, MitigationAction } from "../../lib/agent/mitigate-protocol.ts";
import { type ClosedWindow, WindowCore } from "../../operators/window/index.ts";
import { DetectionStage, type DetectOptions } from "../../pipelines/detect.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import type { Telemetry } from "../../schemas/telemetry.ts";
import type { AuditRecord } from "../../sinks/mitigation/audit.ts";
import { MitigationConfig, type MitigationConfigInput } from "../../sinks/mitigation/config.ts";
import { hostFactsOf, MitigationEngine, type MitigationStats } from "../../sinks/mitigation/engine.ts";
import type { SimConfig } from "../config.ts";
import { HOUR } from "../duration.ts";
import { type Builder, emptyDeliveryStats, generate, objectBuilder } from "../engine.ts";
import { buildPlan, type Plan } from "../plan.ts";
import { validateConfig } from "../scenario.ts";
import {
  type ClosedLoopConfig,
  type ClosedLoopConfigInput,
  LOOP_MITIGATION,
  parseClosedLoopConfig,
} from "./config.ts";
import {
  type ExecutedCommand,
  type ImpactEvent,
  type RebootInterval,
  World,
  type WorldCounters,
  type WorldTimeline,
} from "./world.ts";

export interface ClosedLoopOptions {
  sim: SimConfig;
  world?: ClosedLoopConfigInput;
  /** Over the loop's engine settings (LOOP_MITIGATION). */
  mitigation?: MitigationConfigInput;
  detect?: DetectOptions;
  /** Progress per run: ticks done of ticks. */
  onProgress?: (run: "without" | "with", tick: number, ticks: number) => void;
}

export interface DetectionSummary {
  suspectEvents: number;
  /** Distinct (host, component, process) targets the detector opened, and those in the truth. */
  targets: number;
  truePositiveTargets: number;
  falsePositiveTargets: number;
  leaks: number;
  leaksDetected: number;
  /** Hours from a leak's start to its first `open` (CONTRACT §3), median and max over detected leaks. */
  medianDelayHours: number | null;
  maxDelayHours: number | null;
}

export interface BudgetCheck {
  /** The engine's limits, and the worst the run reached, measured from the commands and the reboots. */
  maxActionsPerClusterHour: number;
  worstActionsInAClusterHour: number;
  worstCluster: string | null;
  maxConcurrentRebootsPerRegion: number;
  worstConcurrentRebootsInARegion: number;
  worstRegion: string | null;
  violations: number;
}

export interface TruthCheck {
  /** Migrations and (soft) reboots carried out on hosts where no injected leak had started. */
  disruptiveOnHealthyHosts: number;
  /** Of them, reboots and soft reboots. */
  rebootsOfHealthyHosts: number;
  /** Kernel-ladder steps on hosts without a kernel leak (leaking elsewhere). */
  kernelActionsWithoutKernelLeak: number;
  /** Process or service restarts of something that was not leaking. */
  restartsOfHealthyTargets: number;
  /** Commands carried out (done), by whether the host was leaking. */
  done: number;
  doneOnLeakingHosts: number;
}

/**
 * Where the customer impact left with resin happened (low-memory VM reboots + allocation errors):
 * on hosts with no active leak; on leaking hosts before the detector flagged the host; flagged but
 * not acted on yet; or after resin had acted on the host (the leak came back, or was not re-flagged).
 */
export interface ResidualImpact {
  healthyHost: number;
  beforeDetection: number;
  detectedNotActed: number;
  afterAction: number;
}

export interface RunResult {
  label: "without resin" | "with resin";
  hosts: number;
  days: number;
  counters: WorldCounters;
  hostsWithLowMemory: number;
  lowMemoryVmRebootsPer100kHostDays: number;
  allocationErrorRate: number;
  timeline: WorldTimeline;
  /** Every low-memory VM reboot, OOM kill and allocation error, with whether the host was leaking. */
  impact: ImpactEvent[];
  /** With resin only. */
  detection?: DetectionSummary;
  commandsByAction?: Record<MitigationAction, number>;
  doneByAction?: Record<MitigationAction, number>;
  engine?: MitigationStats;
  budgets?: BudgetCheck;
  truth?: TruthCheck;
  residual?: ResidualImpact;
  executed?: ExecutedCommand[];
  reboots?: RebootInterval[];
  audit?: AuditRecord[];
  suspects?: SuspectEvent[];
}

export interface ClosedLoopResult {
  scenario: string;
  seed: number;
  hosts: number;
  days: number;
  world: ClosedLoopConfig;
  mitigation: MitigationConfig;
  leaks: { total: number; process: number; kernel: number };
  without: RunResult;
  with: RunResult;
  /** without ÷ with (Infinity when resin brought it to 0 from more; null when both are 0). */
  lowMemoryRebootRatio: number | null;
  allocationErrorRatio: number | null;
}

const ACTIONS: MitigationAction[] = [
  "restart-process",
  "restart-service",
  "migrate-vms",
  "soft-reboot",
  "reboot",
  "custom",
];

/** Builds nothing: the run without resin needs the samples (for the world), not the messages. */
const nothing: Builder<0> = { build: () => 0 };

export function ratio(without: number, withResin: number): number | null {
  if (withResin === 0) return without === 0 ? null : Number.POSITIVE_INFINITY;
  return without / withResin;
}

/** Runs the fleet without and with resin and scores both. */
export function runClosedLoop(options: ClosedLoopOptions): ClosedLoopResult {
  const sim = validateConfig(options.sim);
  const world = parseClosedLoopConfig(options.world ?? {});
  const mitigation = MitigationConfig.parse({ ...LOOP_MITIGATION, ...options.mitigation });
  const without = runOnce(sim, world, undefined, options);
  const withResin = runOnce(sim, world, mitigation, options);
  const plan = buildPlan(sim);
  return {
    scenario: sim.name,
    seed: sim.seed,
    hosts: sim.hosts,
    days: sim.days,
    world,
    mitigation,
    leaks: {
      total: plan.leaks.length,
      process: plan.leaks.filter((l) => l.leak.kind === "process").length,
      kernel: plan.leaks.filter((l) => l.leak.kind === "kernel").length,
    },
    without,
    with: withResin,
    lowMemoryRebootRatio: ratio(without.counters.lowMemoryVmReboots, withResin.counters.lowMemoryVmReboots),
    allocationErrorRatio:
      withResin.counters.placementRequests === 0 || without.counters.placementRequests === 0
        ? null
        : ratio(without.allocationErrorRate, withResin.allocationErrorRate),
  };
}

/** One run on a fresh plan; with `mitigation`, resin is in the loop. */
export function runOnce(
  sim: SimConfig,
  worldConfig: ClosedLoopConfig,
  mitigation: MitigationConfig | undefined,
  options: Pick<ClosedLoopOptions, "detect" | "onProgress"> = {},
): RunResult {
  const plan = buildPlan(sim);
  const world = new World(plan, worldConfig);
  const runName = mitigation === undefined ? "without" : "with";
  const I = plan.intervalMs;
  const stats = emptyDeliveryStats();

  const resin =
    mitigation === undefined ? undefined : new ResinInTheLoop(plan, world, mitigation, options.detect);
  const step = (t: number) => {
    const replies = world.advance(t);
    resin?.step(t, replies);
  };
  step(plan.start);
  const onTick = (tick: number, ticks: number) => {
    if (tick < ticks) step(plan.start + tick * I);
    options.onProgress?.(runName, tick, ticks);
  };
  if (resin === undefined) {
    for (const _ of generate(plan, nothing, stats, onTick, world.observe)) {
      // the world sees every sample through `observe`
    }
  } else {
    for (const msg of generate(plan, objectBuilder, stats, onTick, world.observe)) resin.push(msg);
  }
  // The last tick's replies and the snapshot at the end.
  const last = world.finish(plan.end + I);
  resin?.step(plan.end + I, last);

  const c = world.counters;
  const hostDays = plan.hosts.length * sim.days;
  const result: RunResult = {
    label: mitigation === undefined ? "without resin" : "with resin",
    hosts: plan.hosts.length,
    days: sim.days,
    counters: { ...c },
    hostsWithLowMemory: world.hostsWithLowMemory.size,
    lowMemoryVmRebootsPer100kHostDays: (c.lowMemoryVmReboots * 100_000) / hostDays,
    allocationErrorRate: c.placementRequests === 0 ? 0 : c.placementFailures / c.placementRequests,
    timeline: world.timeline,
    impact: world.impact,
  };
  if (resin !== undefined && mitigation !== undefined) resin.score(result, mitigation);
  return result;
}

/** The detector and the mitigation engine, fed synchronously from the generator. */
class ResinInTheLoop {
  private readonly window: WindowCore;
  private readonly stage: DetectionStage;
  private readonly engine: MitigationEngine;
  private readonly closed: ClosedWindow[] = [];
  private readonly events: SuspectEvent[] = [];
  readonly audit: AuditRecord[] = [];

  constructor(
    private readonly plan: Plan,
    private readonly world: World,
    mitigation: MitigationConfig,
    detect: DetectOptions = {},
  ) {
    this.window = new WindowCore(detect.window);
    this.stage = new DetectionStage((slot) => this.window.seriesInfo(slot), detect);
    this.engine = new MitigationEngine(mitigation);
  }

  push(msg: Telemetry): void {
    this.window.push(msg, this.closed);
    if (this.closed.length === 0) return;
    for (const w of this.closed) this.onWindow(w);
    this.closed.length = 0;
    this.window.releaseEnded();
  }

  /** At each tick: the agents' replies, then the engine's decisions, carried out at once. */
  step(t: number, replies: readonly { at: number; reply: MitigateReply }[]): void {
    for (const r of replies) this.engine.onResult(r.reply, r.at);
    const cmds: MitigateRequest[] = this.engine.decide(t);
    for (const cmd of cmds) this.world.execute({ ...cmd, at: t }, t);
    for (const a of this.engine.drainAudit()) this.audit.push(a);
  }

  private onWindow(w: ClosedWindow): void {
    // Host facts for the engine's rules and priority: VMs, memory, processes per component.
    for (const f of hostFactsOf(w, (slot) => this.window.seriesInfo(slot))) this.engine.observeHost(f);
    const result = this.stage.step(w);
    for (const e of result.events) {
      this.events.push(e);
      this.engine.onSuspect(e);
    }
  }

  score(result: RunResult, mitigation: MitigationConfig): void {
    const executed = this.world.executed;
    const byAction = () => Object.fromEntries(ACTIONS.map((a) => [a, 0])) as Record<MitigationAction, number>;
    const commands = byAction();
    const done = byAction();
    for (const e of executed) {
      commands[e.action]++;
      if (e.result === "done") done[e.action]++;
    }
    result.commandsByAction = commands;
    result.doneByAction = done;
    result.engine = { ...this.engine.stats };
    result.detection = this.detection();
    result.budgets = this.budgets(mitigation);
    result.truth = truthCheck(executed);
    result.residual = this.residual();
    result.executed = executed;
    result.reboots = this.world.reboots;
    result.audit = this.audit;
    result.suspects = this.events;
  }

  private residual(): ResidualImpact {
    const firstFlag = new Map<string, number>();
    for (const e of this.events)
      if (e.state === "open" && !firstFlag.has(e.host)) firstFlag.set(e.host, e.detectedAt);
    const firstAction = new Map<string, number>();
    for (const e of this.world.executed) if (!firstAction.has(e.host)) firstAction.set(e.host, e.at);
    const r: ResidualImpact = { healthyHost: 0, beforeDetection: 0, detectedNotActed: 0, afterAction: 0 };
    for (const e of this.world.impact) {
      if (e.what === "oom-kill") continue;
      if (!e.leaking) r.healthyHost++;
      else if ((firstAction.get(e.host) ?? Number.POSITIVE_INFINITY) <= e.t) r.afterAction++;
      else if ((firstFlag.get(e.host) ?? Number.POSITIVE_INFINITY) <= e.t) r.detectedNotActed++;
      else r.beforeDetection++;
    }
    return r;
  }

  private detection(): DetectionSummary {
    const key = (x: { host: string; component: string; process: string }) =>
      `${x.host}/${x.component}/${x.process}`;
    const truth = new Map<string, number>();
    for (const l of this.plan.leaks)
      truth.set(key({ host: l.host.id, component: l.comp.name, process: l.proc.name }), l.leak.startTs);
    const targets = new Set<string>();
    const firstOpen = new Map<string, number>();
    for (const e of this.events) {
      if (e.state !== "open") continue;
      const k = key(e);
      targets.add(k);
      if (!firstOpen.has(k)) firstOpen.set(k, e.detectedAt);
    }
    let tp = 0;
    for (const k of targets) if (truth.has(k)) tp++;
    const delays: number[] = [];
    for (const [k, startTs] of truth) {
      const at = firstOpen.get(k);
      if (at !== undefined) delays.push((at - startTs) / HOUR);
    }
    delays.sort((a, b) => a - b);
    return {
      suspectEvents: this.events.length,
      targets: targets.size,
      truePositiveTargets: tp,
      falsePositiveTargets: targets.size - tp,
      leaks: truth.size,
      leaksDetected: delays.length,
      medianDelayHours: delays.length === 0 ? null : delays[Math.floor((delays.length - 1) / 2)]!,
      maxDelayHours: delays.length === 0 ? null : delays[delays.length - 1]!,
    };
  }

  /** The budgets, checked from what was issued and what the hosts did, not from the engine's word. */
  private budgets(m: MitigationConfig): BudgetCheck {
    let worstActions = 0;
    let worstCluster: string | null = null;
    const byCluster = new Map<string, number[]>();
    // Every command issued went to the agents, which record each one with its host's cluster.
    for (const c of this.world.executed) {
      const list = byCluster.get(c.cluster) ?? [];
      list.push(c.at);
      byCluster.set(c.cluster, list);
    }
    for (const [cluster, times] of byCluster) {
      times.sort((a, b) => a - b);
      // Any hour-long window [w, w + 1 h): the fullest starts at a command.
      let j = 0;
      for (let i = 0; i < times.length; i++) {
        while (j < times.length && times[j]! < times[i]! + HOUR) j++;
        if (j - i > worstActions) {
          worstActions = j - i;
          worstCluster = cluster;
        }
      }
    }
    let worstReboots = 0;
    let worstRegion: string | null = null;
    const byRegion = new Map<string, RebootInterval[]>();
    for (const r of this.world.reboots) {
      const list = byRegion.get(r.region) ?? [];
      list.push(r);
      byRegion.set(r.region, list);
    }
    for (const [region, list] of byRegion) {
      const edges = list.flatMap((r) => [
        { t: r.from, d: 1 },
        { t: r.to, d: -1 },
      ]);
      // An interval ending when another starts does not overlap it.
      edges.sort((a, b) => a.t - b.t || a.d - b.d);
      let n = 0;
      for (const e of edges) {
        n += e.d;
        if (n > worstReboots) {
          worstReboots = n;
          worstRegion = region;
        }
      }
    }
    return {
      maxActionsPerClusterHour: m.maxActionsPerClusterHour,
      worstActionsInAClusterHour: worstActions,
      worstCluster,
      maxConcurrentRebootsPerRegion: m.maxConcurrentRebootsPerRegion,
      worstConcurrentRebootsInARegion: worstReboots,
      worstRegion,
      violations:
        (worstActions > m.maxActionsPerClusterHour ? 1 : 0) +
        (worstReboots > m.maxConcurrentRebootsPerRegion ? 1 : 0),
    };
  }
}

export function truthCheck(executed: readonly ExecutedCommand[]): TruthCheck {
  const t: TruthCheck = {
    disruptiveOnHealthyHosts: 0,
    rebootsOfHealthyHosts: 0,
    kernelActionsWithoutKernelLeak: 0,
    restartsOfHealthyTargets: 0,
    done: 0,
    doneOnLeakingHosts: 0,
  };
  for (const e of executed) {
    if (e.result !== "done") continue;
    t.done++;
    const leaking = e.leakKindsOnHost.length > 0;
    if (leaking) t.doneOnLeakingHosts++;
    const hostWide = e.action === "migrate-vms" || e.action === "soft-reboot" || e.action === "reboot";
    if (hostWide) {
      if (!leaking) t.disruptiveOnHealthyHosts++;
      if (!leaking && e.action !== "migrate-vms") t.rebootsOfHealthyHosts++;
      if (!e.leakKindsOnHost.includes("kernel")) t.kernelActionsWithoutKernelLeak++;
    } else if (e.action === "restart-process" || e.action === "restart-service") {
      if (!e.targetLeaking) t.restartsOfHealthyTargets++;
    }
  }
  return t;
}
