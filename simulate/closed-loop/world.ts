/**
 * The closed-loop world: what the fleet's memory does to customers, and what the simulated agents
 * do with resin's commands. It edits the plan's future while the generator walks it (the
 * generator reads lives, the VM timeline and outages lazily through cursors), so the telemetry the
 * detector sees shows every kill, restart, migration and reboot.
 *
 * Model (simulate/README.md, "Closed loop"):
 * - Capacity. Every host sells VM memory up to total − (the components' healthy peak at full VM
 *   load) − headroom × total, in VMs of the host's VM size; it starts packed to that.
 * - Placements. The scenario's VM departures stay; demand exceeds supply, so each slot the
 *   allocator's books show free (sold < capacity, host up, not draining) is requested again after
 *   an exponential wait (`refillHours`). A request fails, an allocation error, when the host's
 *   actual free memory would drop below the low-memory line. Hosts the scenario leaves empty stay
 *   empty (capacity 0).
 * - Low memory. A host sample whose free memory is below `lowMemoryFreeBytes` wakes the OOM
 *   killer, which kills the largest process, a VM counting as one process of the VM's size, until
 *   the host is above the line. A killed VM is a low-memory VM reboot; the platform restarts it on
 *   the cluster's host with the most room that can hold it (or outside the simulated fleet). A
 *   killed host process restarts `restartMs` later (a crash: its leak starts over).
 * - Agents. restart-process / restart-service: a new life after `restartMs`; migrate-vms: the VMs
 *   leave, `migrateParallel` every `migrateMsPerVm`, landing like healed VMs, and the host takes no
 *   placements until its reboot is over (or `drainHoldMs`); soft-reboot / reboot: the host is down
 *   `softRebootMs` / `rebootMs`, VMs still on it reboot with it, every process (kernel included)
 *   starts anew. One command per host at a time (else `busy`); a host that is down answers nothing.
 */
import {
  MITIGATE_PROTOCOL_VERSION,
  type MitigateReply,
  type MitigateRequest,
  type MitigationAction,
} from "../../lib/agent/mitigate-protocol.ts";
import type { LeakKind } from "../../schemas/suspect.ts";
import { HOUR } from "../duration.ts";
import {
  type CompPlan,
  type HostPlan,
  healthyBytesAt,
  isDown,
  leakedBytesAt,
  lifeAt,
  type Plan,
  type ProcPlan,
  type RestartCause,
} from "../plan.ts";
import { Rand } from "../rng.ts";
import type { ClosedLoopConfig } from "./config.ts";

/** Live migration moves this many VMs at once. */
const MIGRATE_PARALLEL = 4;
const PID_MAX = 4_194_304;

export interface WorldCounters {
  /** Host samples the world saw, and those below the low-memory line. */
  hostSamples: number;
  lowMemorySamples: number;
  /** VMs the OOM killer took down: RESIN's "VM reboots due to low memory". */
  lowMemoryVmReboots: number;
  /** Host processes the OOM killer took down, and those of them that were leaking. */
  oomProcessKills: number;
  oomKillsOfLeakers: number;
  placementRequests: number;
  /** Allocation errors: requests the host accepted by the books but could not back with memory. */
  placementFailures: number;
  departures: number;
  /** Healed or migrated VMs that landed on another host of the cluster, or left the simulated fleet. */
  relocatedLanded: number;
  relocatedLeftFleet: number;
  /** What the agents carried out for resin. */
  commandsReceived: number;
  commandsRefused: number;
  commandsUnanswered: number;
  processRestarts: number;
  vmsMigrated: number;
  hostReboots: number;
  /** VMs still on a host when resin rebooted it (rebooted with it). */
  vmRebootsByMitigation: number;
}

/** A command the agents received, with the truth about its target at that time (for scoring only). */
export interface ExecutedCommand {
  id: string;
  at: number;
  host: string;
  cluster: string;
  region: string;
  action: MitigationAction;
  component: string;
  process: string | undefined;
  result: "done" | "refused" | "unanswered";
  code?: string;
  /** Kinds of the leaks active on the host at `at` (empty: the host was not leaking). */
  leakKindsOnHost: LeakKind[];
  /** For restarts: whether the restarted process (any process of the service) was leaking. */
  targetLeaking: boolean;
}

/** One customer-visible event, with whether the host had an active leak (for the analysis only). */
export interface ImpactEvent {
  t: number;
  host: string;
  what: "vm-reboot" | "oom-kill" | "allocation-error";
  leaking: boolean;
}

/** A reboot resin caused: the host is down over [from, to). */
export interface RebootInterval {
  host: string;
  region: string;
  cluster: string;
  action: "soft-reboot" | "reboot";
  from: number;
  to: number;
}

/** Hourly cumulative counts, for the plots. */
export interface WorldTimeline {
  t: number[];
  lowMemoryVmReboots: number[];
  placementFailures: number[];
  placementRequests: number[];
  /** Bytes held by the injected leaks across the fleet (restarts reset them). */
  leakedBytes: number[];
}

interface Job {
  kind: "restart" | "migrate" | "reboot";
  cmd: MitigateRequest;
  startedAt: number;
  /** restart/reboot: when it finishes; migrate: when the next VMs leave. */
  at: number;
}

interface HostState {
  readonly h: HostPlan;
  readonly cluster: HostState[];
  /** VMs the allocator's books let the host hold. */
  readonly capVms: number;
  /** Component bytes per VM (vm-agent, kernel pools). */
  readonly perVmBytes: number;
  vms: number;
  /** Memory demand and VM count at the last sample. */
  demand: number;
  demandVms: number;
  /** The allocator places nothing here before this time. */
  closedUntil: number;
  job: Job | undefined;
  /** The scenario's VM departures (count per time), and the next one to apply. */
  readonly evAt: number[];
  readonly evDelta: number[];
  ev: number;
  readonly refillRng: Rand;
  pid: number;
  readonly pidRng: Rand;
}

export function emptyCounters(): WorldCounters {
  return {
    hostSamples: 0,
    lowMemorySamples: 0,
    lowMemoryVmReboots: 0,
    oomProcessKills: 0,
    oomKillsOfLeakers: 0,
    placementRequests: 0,
    placementFailures: 0,
    departures: 0,
    relocatedLanded: 0,
    relocatedLeftFleet: 0,
    commandsReceived: 0,
    commandsRefused: 0,
    commandsUnanswered: 0,
    processRestarts: 0,
    vmsMigrated: 0,
    hostReboots: 0,
    vmRebootsByMitigation: 0,
  };
}

/** VMs the allocator sells on a host: what is left after the components' healthy peak and the headroom. */
export function vmCapacity(h: HostPlan, headroom: number): number {
  let peak = 0;
  let perVm = 0;
  // A fleet-wide config step is not foreseen: it eats into the headroom like a leak would.
  for (const c of h.comps) {
    for (const p of c.procs) {
      peak += p.base * (1 + p.warmGain) * (1 + p.diurnalAmp) * (1 + p.sawAmp);
      perVm += p.perVm;
    }
  }
  const sellable = h.totalBytes * (1 - headroom) - peak;
  return Math.max(0, Math.floor(sellable / (h.vmBytes + perVm)));
}

export class World {
  readonly counters = emptyCounters();
  readonly executed: ExecutedCommand[] = [];
  readonly reboots: RebootInterval[] = [];
  readonly impact: ImpactEvent[] = [];
  readonly timeline: WorldTimeline = {
    t: [],
    lowMemoryVmReboots: [],
    placementFailures: [],
    placementRequests: [],
    leakedBytes: [],
  };
  /** Hosts that were below the low-memory line at least once. */
  readonly hostsWithLowMemory = new Set<string>();
  private readonly hosts: HostState[];
  private readonly byId = new Map<string, HostState>();
  private readonly replies: { at: number; reply: MitigateReply }[] = [];
  private now: number;
  private nextSnapshot: number;
  /** Chance that a vacant slot is requested within one tick. */
  private readonly refillChance: number;

  constructor(
    readonly plan: Plan,
    readonly config: ClosedLoopConfig,
  ) {
    this.now = plan.start;
    this.nextSnapshot = plan.start;
    this.refillChance = 1 - Math.exp(-plan.intervalMs / (config.refillHours * HOUR));
    const clusters = new Map<string, HostState[]>();
    this.hosts = plan.hosts.map((h) => {
      const evAt: number[] = [];
      const evDelta: number[] = [];
      for (let i = 1; i < h.vmAt.length; i++) {
        if (h.vmAt[i]! > plan.end) break;
        const d = h.vmCount[i]! - h.vmCount[i - 1]!;
        if (d >= 0) continue;
        evAt.push(h.vmAt[i]!);
        evDelta.push(-d);
      }
      const empty = h.vmCount[0] === 0 && h.vmAt.length === 1;
      const capVms = empty ? 0 : vmCapacity(h, config.headroom);
      const vms = capVms;
      // From here on the VM timeline is the world's: it appends as VMs come and go.
      h.vmAt.length = 1;
      h.vmCount.length = 1;
      h.vmCount[0] = vms;
      let pid = 300;
      let perVmBytes = 0;
      for (const c of h.comps)
        for (const p of c.procs) {
          perVmBytes += p.perVm;
          for (const l of p.lives) pid = Math.max(pid, l.pid);
        }
      const cluster = clusters.get(h.cluster) ?? [];
      clusters.set(h.cluster, cluster);
      const hs: HostState = {
        h,
        cluster,
        capVms,
        perVmBytes,
        vms,
        demand: 0,
        demandVms: vms,
        closedUntil: Number.NEGATIVE_INFINITY,
        job: undefined,
        evAt,
        evDelta,
        ev: 0,
        refillRng: new Rand(plan.config.seed, `closed-loop/refill/${h.id}`),
        pid,
        pidRng: new Rand(plan.config.seed, `closed-loop/pids/${h.id}`),
      };
      let demand = vms * h.vmBytes;
      for (const c of h.comps) for (const p of c.procs) demand += healthyBytesAt(h, c, p, plan.start);
      hs.demand = demand;
      cluster.push(hs);
      this.byId.set(h.id, hs);
      return hs;
    });
  }

  /** VMs on a host now (for tests and reports). */
  vmsOn(host: string): number {
    return this.byId.get(host)?.vms ?? 0;
  }

  /**
   * Moves the world to tick time `t` (before the tick is sampled): VMs arrive and leave, jobs
   * progress. Returns the agents' replies that are due by `t`, oldest first.
   */
  advance(t: number): { at: number; reply: MitigateReply }[] {
    this.now = t;
    for (const hs of this.hosts) {
      if (hs.job !== undefined) this.progress(hs, t);
      while (hs.ev < hs.evAt.length && hs.evAt[hs.ev]! <= t) {
        const leaving = Math.min(hs.vms, hs.evDelta[hs.ev++]!);
        if (leaving > 0) {
          this.counters.departures += leaving;
          this.setVms(hs, hs.vms - leaving);
        }
      }
      const vacant = hs.capVms - hs.vms;
      if (vacant > 0 && hs.closedUntil <= t && !this.isDown(hs.h, t)) {
        for (let i = 0; i < vacant; i++) if (hs.refillRng.chance(this.refillChance)) this.place(hs, t);
      }
    }
    if (t >= this.nextSnapshot) {
      this.snapshot(t);
      while (this.nextSnapshot <= t) this.nextSnapshot += HOUR;
    }
    const due = this.replies.filter((r) => r.at <= t).sort((a, b) => a.at - b.at);
    if (due.length > 0) {
      const left = this.replies.filter((r) => r.at > t);
      this.replies.length = 0;
      this.replies.push(...left);
    }
    return due;
  }

  /** The end of the run: the last replies and a final snapshot, without new placements. */
  finish(t: number): { at: number; reply: MitigateReply }[] {
    this.now = t;
    for (const hs of this.hosts) if (hs.job !== undefined) this.progress(hs, t);
    if (this.timeline.t[this.timeline.t.length - 1] !== t) this.snapshot(t);
    const due = this.replies.filter((r) => r.at <= t).sort((a, b) => a.at - b.at);
    return due;
  }

  /** The generator's sample observer: a host below the low-memory line meets the OOM killer. */
  readonly observe = (h: HostPlan, ts: number, demand: number, vms: number): void => {
    const hs = this.byId.get(h.id)!;
    hs.demand = demand;
    hs.demandVms = vms;
    this.counters.hostSamples++;
    let free = h.totalBytes - demand;
    if (free >= this.config.lowMemoryFreeBytes) return;
    this.counters.lowMemorySamples++;
    this.hostsWithLowMemory.add(h.id);
    const procs: { c: CompPlan; p: ProcPlan; bytes: number }[] = [];
    for (const c of h.comps) {
      if (c.kernel) continue;
      for (const p of c.procs)
        procs.push({ c, p, bytes: healthyBytesAt(h, c, p, ts) + leakedBytesAt(p, ts) });
    }
    while (free < this.config.lowMemoryFreeBytes) {
      let largest: (typeof procs)[number] | undefined;
      for (const x of procs) if (largest === undefined || x.bytes > largest.bytes) largest = x;
      if (hs.vms > 0 && (largest === undefined || h.vmBytes >= largest.bytes)) {
        this.counters.lowMemoryVmReboots++;
        this.logImpact(h, "vm-reboot");
        this.setVms(hs, hs.vms - 1);
        free += h.vmBytes + hs.perVmBytes;
        this.relocate(hs, 1);
        continue;
      }
      if (largest === undefined) break;
      const leaking = largest.p.leak !== null && largest.p.leak.startTs <= ts;
      const restartAt = Math.max(ts + 1, this.now + this.config.restartMs);
      if (!this.restart(hs, largest.c, largest.p, restartAt, "crash")) break;
      const after = healthyBytesAt(h, largest.c, largest.p, restartAt);
      this.counters.oomProcessKills++;
      this.logImpact(h, "oom-kill");
      if (leaking) this.counters.oomKillsOfLeakers++;
      if (largest.bytes - after <= 0) {
        procs.splice(procs.indexOf(largest), 1);
        continue;
      }
      free += largest.bytes - after;
      largest.bytes = after;
    }
  };

  /** A simulated agent receives a command at `t` (its reply comes through `advance`). */
  execute(cmd: MitigateRequest, t: number): ExecutedCommand["result"] {
    this.counters.commandsReceived++;
    const hs = this.byId.get(cmd.host);
    const record = (result: ExecutedCommand["result"], code?: string) => {
      const h = hs?.h;
      const kinds = h === undefined ? [] : this.leakKindsOn(h, t);
      this.executed.push({
        id: cmd.id,
        at: t,
        host: cmd.host,
        cluster: h?.cluster ?? "",
        region: h?.region ?? "",
        action: cmd.action,
        component: cmd.component,
        process: cmd.process,
        result,
        ...(code !== undefined ? { code } : {}),
        leakKindsOnHost: kinds,
        targetLeaking: h === undefined ? false : this.targetLeaking(h, cmd, t),
      });
    };
    if (hs === undefined || this.isDown(hs.h, t)) {
      // Nobody answers for a host that is down: the engine's own timer calls it failed.
      this.counters.commandsUnanswered++;
      record("unanswered");
      return "unanswered";
    }
    const refuse = (code: string, message: string, field?: string, value?: unknown): "refused" => {
      this.counters.commandsRefused++;
      record("refused", code);
      this.replies.push({
        at: t,
        reply: {
          v: MITIGATE_PROTOCOL_VERSION,
          ok: false,
          id: cmd.id,
          host: cmd.host,
          action: cmd.action,
          error: {
            code,
            message,
            ...(field !== undefined ? { field, value } : {}),
          },
        },
      });
      return "refused";
    };
    if (t > cmd.expiresAt) return refuse("expired", "command expired", "expiresAt", cmd.expiresAt);
    if (hs.job !== undefined) return refuse("busy", `the agent runs ${hs.job.cmd.id}`);
    if (cmd.dryRun) {
      record("done");
      this.reply(cmd, t, t, "dry-run");
      return "done";
    }
    const h = hs.h;
    const comp = h.comps.find((c) => c.name === cmd.component);
    switch (cmd.action) {
      case "restart-process": {
        const p = comp?.procs.find((x) => x.name === cmd.process);
        if (p === undefined) return refuse("no-such-process", "no such process", "process", cmd.process);
        const pid = lifeAt(p, t).pid;
        if (pid !== cmd.pid)
          return refuse("no-such-process", `${cmd.process} runs as pid ${pid}`, "pid", cmd.pid);
        const at = t + this.config.restartMs;
        this.restart(hs, comp!, p, at, "crash");
        this.counters.processRestarts++;
        hs.job = { kind: "restart", cmd, startedAt: t, at };
        break;
      }
      case "restart-service": {
        if (comp === undefined || comp.kernel)
          return refuse("no-such-process", "no such service", "component", cmd.component);
        const at = t + this.config.restartMs;
        for (const p of comp.procs)
          if (this.restart(hs, comp, p, at, "crash")) this.counters.processRestarts++;
        hs.job = { kind: "restart", cmd, startedAt: t, at };
        break;
      }
      case "migrate-vms": {
        hs.closedUntil = Number.POSITIVE_INFINITY;
        hs.job = { kind: "migrate", cmd, startedAt: t, at: t + this.config.migrateMsPerVm };
        break;
      }
      case "soft-reboot":
      case "reboot": {
        const down = cmd.action === "reboot" ? this.config.rebootMs : this.config.softRebootMs;
        const until = t + down;
        const outages = h.outages ?? [];
        outages.push(t, until);
        h.outages = outages;
        this.counters.hostReboots++;
        this.counters.vmRebootsByMitigation += hs.vms;
        for (const c of h.comps) for (const p of c.procs) this.restart(hs, c, p, until, "reboot");
        // The reboot ends a drain hold; the allocator may place on the host once it is back.
        hs.closedUntil = until;
        this.reboots.push({
          host: h.id,
          region: h.region,
          cluster: h.cluster,
          action: cmd.action,
          from: t,
          to: until,
        });
        hs.job = { kind: "reboot", cmd, startedAt: t, at: until };
        break;
      }
      case "custom":
        return refuse("not-allowed", "no team scripts in the simulated fleet", "script", cmd.script);
    }
    record("done");
    if (hs.job?.kind === "migrate") this.progress(hs, t);
    return "done";
  }

  /** Kinds of the leaks active (started) on a host at `t`. */
  leakKindsOn(h: HostPlan, t: number): LeakKind[] {
    const kinds = new Set<LeakKind>();
    for (const c of h.comps)
      for (const p of c.procs) if (p.leak !== null && p.leak.startTs <= t) kinds.add(p.leak.kind);
    return [...kinds].sort();
  }

  /** Bytes held by all injected leaks at `t`. */
  leakedBytes(t: number): number {
    let sum = 0;
    for (const l of this.plan.leaks) sum += leakedBytesAt(l.proc, t);
    return sum;
  }

  /** Whether the host is down at `t` (its planned death or a reboot the loop gave it). */
  isDown(h: HostPlan, t: number): boolean {
    return isDown(h, t);
  }

  // ---------------------------------------------------------------------------------------------

  private targetLeaking(h: HostPlan, cmd: MitigateRequest, t: number): boolean {
    const comp = h.comps.find((c) => c.name === cmd.component);
    if (comp === undefined) return false;
    const leaking = (p: ProcPlan) => p.leak !== null && p.leak.startTs <= t;
    if (cmd.action === "restart-process") return comp.procs.some((p) => p.name === cmd.process && leaking(p));
    return comp.procs.some(leaking);
  }

  private reply(
    cmd: MitigateRequest,
    startedAt: number,
    finishedAt: number,
    outcome: "done" | "dry-run",
    detail?: string,
  ): void {
    this.replies.push({
      at: finishedAt,
      reply: {
        v: MITIGATE_PROTOCOL_VERSION,
        ok: true,
        id: cmd.id,
        host: cmd.host,
        action: cmd.action,
        outcome,
        startedAt,
        finishedAt,
        ...(detail !== undefined ? { detail } : {}),
      },
    });
  }

  private progress(hs: HostState, t: number): void {
    const job = hs.job!;
    if (job.kind !== "migrate") {
      if (job.at <= t) {
        this.reply(job.cmd, job.startedAt, job.at, "done");
        hs.job = undefined;
      }
      return;
    }
    while (job.at <= t && hs.vms > 0) {
      const n = Math.min(MIGRATE_PARALLEL, hs.vms);
      this.setVms(hs, hs.vms - n);
      this.counters.vmsMigrated += n;
      this.relocate(hs, n);
      job.at += this.config.migrateMsPerVm;
    }
    if (hs.vms === 0) {
      const finished = Math.max(job.startedAt, Math.min(t, job.at - this.config.migrateMsPerVm));
      this.reply(job.cmd, job.startedAt, finished, "done", "no VMs left on the host");
      hs.closedUntil = finished + this.config.drainHoldMs;
      hs.job = undefined;
    }
  }

  private place(hs: HostState, t: number): void {
    const h = hs.h;
    if (hs.vms >= hs.capVms || hs.closedUntil > t || this.isDown(h, t)) return;
    this.counters.placementRequests++;
    if (this.freeAfterOne(hs) < this.config.lowMemoryFreeBytes) {
      this.counters.placementFailures++;
      this.logImpact(h, "allocation-error");
      return;
    }
    this.setVms(hs, hs.vms + 1);
  }

  /** Free memory if one more VM came, from the last sample and the VMs placed or gone since. */
  private freeAfterOne(hs: HostState): number {
    const per = hs.h.vmBytes + hs.perVmBytes;
    return hs.h.totalBytes - hs.demand - (hs.vms - hs.demandVms + 1) * per;
  }

  /** VMs healed or migrated away from `from`: each lands on the cluster peer with the most room that can back it. */
  private relocate(from: HostState, count: number): void {
    const t = this.now;
    for (let i = 0; i < count; i++) {
      let best: HostState | undefined;
      for (const peer of from.cluster) {
        if (peer === from || peer.vms >= peer.capVms || peer.closedUntil > t || this.isDown(peer.h, t))
          continue;
        if (this.freeAfterOne(peer) < this.config.lowMemoryFreeBytes) continue;
        if (best === undefined || peer.capVms - peer.vms > best.capVms - best.vms) best = peer;
      }
      if (best === undefined) {
        this.counters.relocatedLeftFleet++;
        continue;
      }
      this.counters.relocatedLanded++;
      this.setVms(best, best.vms + 1);
    }
  }

  /** A new life of `p` from `at` (new pid; kernel pools keep pid 0). False when one starts then already. */
  private restart(hs: HostState, c: CompPlan, p: ProcPlan, at: number, cause: RestartCause): boolean {
    const lives = p.lives;
    let pos = lives.length;
    while (pos > 0 && lives[pos - 1]!.startedAt > at) pos--;
    if (pos > 0 && lives[pos - 1]!.startedAt === at) return false;
    let pid = 0;
    if (!c.kernel) {
      hs.pid += hs.pidRng.int(1, 2500);
      if (hs.pid >= PID_MAX) hs.pid = 300 + (hs.pid % 1000);
      pid = hs.pid;
    }
    lives.splice(pos, 0, { startedAt: at, pid, cause });
    return true;
  }

  /** VM count from the current tick on (one timeline entry per tick at most). */
  private setVms(hs: HostState, n: number): void {
    hs.vms = n;
    const h = hs.h;
    const last = h.vmAt.length - 1;
    if (h.vmAt[last] === this.now) h.vmCount[last] = n;
    else {
      h.vmAt.push(this.now);
      h.vmCount.push(n);
    }
  }

  private logImpact(h: HostPlan, what: ImpactEvent["what"]): void {
    const t = this.now;
    this.impact.push({ t, host: h.id, what, leaking: this.leakKindsOn(h, t).length > 0 });
  }

  private snapshot(t: number): void {
    const tl = this.timeline;
    tl.t.push(t);
    tl.lowMemoryVmReboots.push(this.counters.lowMemoryVmReboots);
    tl.placementFailures.push(this.counters.placementFailures);
    tl.placementRequests.push(this.counters.placementRequests);
    tl.leakedBytes.push(this.leakedBytes(t));
  }
}
