/**
 * The mitigation engine: a pure, synchronous core on event time (no I/O, no clock), so the live
 * sink, the closed-loop simulator and the tests run the same decisions from the same inputs.
 *
 *   const engine = new MitigationEngine({ allow: { "restart-process": { components: ["*"] } } });
 *   engine.observeHost({ host, at, vms: 3, usedBytes, totalBytes, processes: { api: 1 } });
 *   engine.onSuspect(event);
 *   for (const cmd of engine.decide(now)) send(cmd).then((reply) => engine.onResult(reply, later));
 *   audit(engine.drainAudit());
 *
 * A target is (host, component, process), not the suspect id: the id names the pid, which a
 * restart changes, and a leak that comes back after a restart must escalate, not start over.
 * Per target: a rule (the first whose match holds, fixed for the episode) gives a ladder of
 * steps, least intrusive first. A step that worked is verified: the detector has `verifyMs` to
 * resolve the suspect, else the next step is taken; so is the next step when a command fails, or
 * when the target is flagged again within `returnWindowMs` after a step. After the last step the
 * engine gives up (audited). A resolved suspect stops everything still pending for its target.
 *
 * Safety, in the order decide() applies it: one command per host at a time; no command while a
 * heap trace runs on the host (it would destroy the evidence); the allowlist (a step not allowed
 * is skipped, a preparation not allowed stops the ladder); commands per cluster in any hour;
 * reboots at once per region. Targets compete for the budgets in priority order: hosts closest to
 * running out of memory, then leak size, leak rate, time to failure.
 */
import { createHash } from "node:crypto";
import {
  MITIGATE_PROTOCOL_VERSION,
  type MitigateReply,
  type MitigateRequest,
  type MitigationAction,
  REBOOT_ACTIONS,
} from "../../lib/agent/mitigate-protocol.ts";
import type { ClosedWindow, SeriesInfo } from "../../operators/window/index.ts";
import type { LeakKind, SuspectEvent } from "../../schemas/suspect.ts";
import { CollectionLimiter, type LimiterState } from "../snapshot/limits.ts";
import type { AuditEvent, AuditRecord } from "./audit.ts";
import { allowedBy, MitigationConfig, type MitigationConfigInput, type Rule, type Rung } from "./config.ts";

const HOUR_MS = 3_600_000;

/** What the engine knows of a host (from telemetry windows, or the simulator). */
export interface HostFacts {
  host: string;
  /** Event time of the facts. */
  at: number;
  region?: string | undefined;
  cluster?: string | undefined;
  vms?: number | undefined;
  usedBytes?: number | undefined;
  totalBytes?: number | undefined;
  /** Processes per component on the host (those given replace what was known of them). */
  processes: Record<string, number>;
}

/**
 * The facts of each host in a closed window: region, cluster, VMs and memory from its streams
 * (each repeats the host-wide numbers), and the processes of each component from its series.
 */
export function hostFactsOf(
  w: ClosedWindow,
  seriesInfo: (slot: number) => SeriesInfo | undefined,
): HostFacts[] {
  const perStream = new Map<number, number>();
  for (const slot of w.slots) {
    const info = seriesInfo(slot);
    if (info !== undefined) perStream.set(info.stream, (perStream.get(info.stream) ?? 0) + 1);
  }
  const hosts = new Map<string, HostFacts>();
  for (const s of w.streams) {
    let f = hosts.get(s.host);
    if (f === undefined) {
      f = { host: s.host, at: w.end, processes: {} };
      hosts.set(s.host, f);
    }
    if (s.region !== "") f.region = s.region;
    if (s.cluster !== "") f.cluster = s.cluster;
    if (s.vms !== undefined) f.vms = s.vms;
    if (s.usedBytes !== undefined) f.usedBytes = s.usedBytes;
    if (s.totalBytes !== undefined) f.totalBytes = s.totalBytes;
    f.processes[s.component] = perStream.get(s.stream) ?? 0;
  }
  return [...hosts.values()];
}

export type TargetStatus = "pending" | "in-flight" | "verifying" | "resolved" | "gave-up";

export interface TargetState {
  key: string;
  host: string;
  component: string;
  process: string;
  kind: LeakKind;
  /** The detector's latest word on the target. */
  suspect: {
    id: string;
    pid: number;
    severity: number;
    growthBytesPerHour: number;
    start: number;
    end: number;
    detectedAt: number;
  };
  /** The detector flags it now. */
  open: boolean;
  status: TargetStatus;
  /** When this episode (a leak from first step to resolution or give-up) began. */
  episodeAt: number;
  rule?: string;
  rung: number;
  /** The previous step's command failed (for `onlyAfterFailure`). */
  afterFailure: boolean;
  /** Commands sent for the current step (a busy agent is asked again). */
  tries: number;
  command?: {
    id: string;
    action: MitigationAction;
    rung: number;
    issuedAt: number;
    expiresAt: number;
    /** As issued: sent again after a restart, the agent answers with its result (same id). */
    request: MitigateRequest;
  };
  verifyUntil?: number;
  /** When a step last worked (the leak returning within `returnWindowMs` escalates). */
  workedAt?: number;
  /** Last deferral reason audited (each is audited once until it changes). */
  deferred?: string;
  updatedAt: number;
}

export interface MitigationStats {
  suspectEvents: number;
  ignored: number;
  targets: number;
  issued: number;
  succeeded: number;
  failed: number;
  escalated: number;
  returned: number;
  resolved: number;
  gaveUp: number;
  skipped: number;
  deferredTracing: number;
  deferredHostBusy: number;
  deferredClusterBudget: number;
  deferredRebootBudget: number;
  /** Results for commands the engine does not know (late, or from before a state loss). */
  unknownResults: number;
  /** Audit records dropped because nobody drained them (maxPendingAudit). */
  auditDropped: number;
}

export interface EngineState {
  v: 1;
  now: number;
  seq: number;
  targets: TargetState[];
  hosts: HostFacts[];
  tracing: string[];
  limiter: LimiterState;
  /** Per region: reboots holding a slot, until when (null: until their result). */
  reboots: Record<string, { id: string; until: number | null }[]>;
  audit: AuditRecord[];
  stats: MitigationStats;
}

const emptyStats = (): MitigationStats => ({
  suspectEvents: 0,
  ignored: 0,
  targets: 0,
  issued: 0,
  succeeded: 0,
  failed: 0,
  escalated: 0,
  returned: 0,
  resolved: 0,
  gaveUp: 0,
  skipped: 0,
  deferredTracing: 0,
  deferredHostBusy: 0,
  deferredClusterBudget: 0,
  deferredRebootBudget: 0,
  unknownResults: 0,
  auditDropped: 0,
});

export function targetKey(host: string, component: string, process: string): string {
  return `${host}/${component}/${process}`;
}

/** Short stable digest of a process name for command ids (names may hold any character). */
function digest(text: string): string {
  return createHash("sha1").update(text).digest("hex").slice(0, 10);
}

interface Priority {
  band: number;
  freeShare: number | undefined;
  leakBytes: number;
  growthBytesPerHour: number;
  hoursToFailure: number | undefined;
}

export class MitigationEngine {
  readonly config: MitigationConfig;
  readonly stats: MitigationStats;
  private readonly targets = new Map<string, TargetState>();
  private readonly byCommand = new Map<string, string>();
  private readonly hosts = new Map<string, HostFacts>();
  private readonly tracing = new Set<string>();
  private readonly limiter: CollectionLimiter;
  private readonly reboots: Record<string, { id: string; until: number | null }[]>;
  private audit: AuditRecord[] = [];
  private seq = 0;
  /** Newest event time seen. */
  private clock = 0;

  constructor(config: MitigationConfigInput = {}, state?: EngineState) {
    this.config = MitigationConfig.parse(config);
    this.stats = emptyStats();
    this.reboots = {};
    if (state !== undefined) {
      if (state.v !== 1)
        throw new Error(`mitigation state has version ${String(state.v)}; this resin reads 1`);
      this.clock = state.now;
      this.seq = state.seq;
      for (const t of state.targets) {
        this.targets.set(t.key, { ...t });
        if (t.command !== undefined) this.byCommand.set(t.command.id, t.key);
      }
      for (const h of state.hosts) this.hosts.set(h.host, { ...h, processes: { ...h.processes } });
      for (const h of state.tracing) this.tracing.add(h);
      for (const [region, list] of Object.entries(state.reboots))
        this.reboots[region] = list.map((r) => ({ ...r }));
      this.audit = [...state.audit];
      Object.assign(this.stats, state.stats);
    }
    this.limiter = new CollectionLimiter(
      this.config.maxActionsPerClusterHour,
      structuredClone(state?.limiter ?? {}),
    );
  }

  static restore(config: MitigationConfigInput, state: unknown): MitigationEngine {
    return new MitigationEngine(config, state as EngineState);
  }

  /** Newest event time the engine has seen. */
  get now(): number {
    return this.clock;
  }

  /** Everything needed to continue after a restart (plain JSON). */
  snapshot(): EngineState {
    const withTarget = new Set([...this.targets.values()].map((t) => t.host));
    return structuredClone({
      v: 1,
      now: this.clock,
      seq: this.seq,
      targets: [...this.targets.values()],
      // Facts of other hosts come back with the next windows.
      hosts: [...this.hosts.values()].filter((h) => withTarget.has(h.host)),
      tracing: [...this.tracing],
      limiter: this.limiter.state,
      reboots: this.reboots,
      audit: this.audit,
      stats: this.stats,
    });
  }

  /** The targets the engine follows (for tests, metrics and the simulator). */
  targetList(): readonly TargetState[] {
    return [...this.targets.values()];
  }

  target(host: string, component: string, process: string): TargetState | undefined {
    return this.targets.get(targetKey(host, component, process));
  }

  observeHost(facts: HostFacts): void {
    this.advance(facts.at);
    const known = this.hosts.get(facts.host);
    if (known === undefined) {
      this.hosts.set(facts.host, { ...facts, processes: { ...facts.processes } });
      return;
    }
    if (facts.at < known.at) {
      // Older facts only fill in components the host has not reported since.
      for (const [c, n] of Object.entries(facts.processes))
        if (!(c in known.processes)) known.processes[c] = n;
      return;
    }
    known.at = facts.at;
    if (facts.region !== undefined) known.region = facts.region;
    if (facts.cluster !== undefined) known.cluster = facts.cluster;
    if (facts.vms !== undefined) known.vms = facts.vms;
    if (facts.usedBytes !== undefined) known.usedBytes = facts.usedBytes;
    if (facts.totalBytes !== undefined) known.totalBytes = facts.totalBytes;
    Object.assign(known.processes, facts.processes);
  }

  /**
   * A heap trace runs (or stopped) on `what`: a target key `host/component/process`
   * (`targetKey`), or a bare host when the whole host is being profiled. A command that would
   * destroy a trace's evidence waits: any step on the traced target itself; restarting the
   * service of a traced process's component; any host-wide step (migration, reboots) on a host
   * with a trace.
   */
  setTracing(what: string, tracing: boolean): void {
    if (tracing) this.tracing.add(what);
    else this.tracing.delete(what);
  }

  private traceInTheWay(t: TargetState, action: MitigationAction): boolean {
    if (this.tracing.has(t.host) || this.tracing.has(t.key)) return true;
    const hostWide = REBOOT_ACTIONS.has(action) || action === "migrate-vms";
    const prefix = hostWide
      ? `${t.host}/`
      : action === "restart-service"
        ? `${t.host}/${t.component}/`
        : undefined;
    if (prefix === undefined) return false;
    for (const key of this.tracing) if (key.startsWith(prefix)) return true;
    return false;
  }

  onSuspect(ev: SuspectEvent): void {
    this.advance(ev.detectedAt);
    this.stats.suspectEvents++;
    const key = targetKey(ev.host, ev.component, ev.process);
    const at = ev.detectedAt;
    let t = this.targets.get(key);
    const summary = {
      id: ev.id,
      pid: ev.pid,
      severity: ev.severity,
      growthBytesPerHour: ev.growthBytesPerHour,
      start: ev.start,
      end: ev.end,
      detectedAt: ev.detectedAt,
    };

    if (ev.state === "resolved") {
      if (t === undefined) return;
      // A resolution of an older suspect (the pid before a restart) says nothing of the new one.
      if (t.suspect.id !== ev.id && t.open && t.status !== "verifying") return;
      t.open = false;
      t.updatedAt = at;
      if (t.status === "resolved" || t.status === "gave-up") return;
      const hadActed = t.workedAt !== undefined || t.command !== undefined || t.rung > 0;
      t.status = "resolved";
      t.verifyUntil = undefined;
      t.deferred = undefined;
      this.stats.resolved++;
      this.record("resolved", t, {
        reason: hadActed
          ? `the detector resolved ${ev.id}: the leak stopped; nothing more is done`
          : `the detector resolved ${ev.id} before any step was taken`,
      });
      return;
    }

    if (t === undefined) {
      if (ev.severity < this.config.minSeverity) {
        this.stats.ignored++;
        this.recordFor(
          "ignored",
          ev,
          `severity ${ev.severity} is below minSeverity ${this.config.minSeverity}`,
        );
        return;
      }
      t = this.fresh(key, ev, summary);
      this.targets.set(key, t);
      this.stats.targets++;
      return;
    }

    const newSuspect = t.suspect.id !== ev.id;
    t.suspect = summary;
    t.updatedAt = at;
    t.open = true;
    switch (t.status) {
      case "pending":
      case "in-flight":
        return;
      case "verifying":
        // A new suspect for the target while a step is being verified: the leak survived the step
        // (a restart gives the process a new pid, hence a new suspect id).
        if (newSuspect) {
          this.stats.returned++;
          this.record("returned", t, {
            reason: `flagged again as ${ev.id} after ${this.stepName(t)} worked: the step did not stop the leak`,
          });
          this.escalate(t, at, false, "the leak returned");
        }
        return;
      case "resolved": {
        const returned = t.workedAt !== undefined && at - t.workedAt <= this.config.returnWindowMs;
        if (returned) {
          this.stats.returned++;
          this.record("returned", t, {
            reason: `flagged again as ${ev.id} ${Math.round((at - t.workedAt!) / 60_000)} min after ${this.stepName(t)} worked`,
          });
          this.escalate(t, at, false, "the leak returned");
        } else {
          this.targets.set(key, this.fresh(key, ev, summary));
        }
        return;
      }
      case "gave-up":
        return;
    }
  }

  /**
   * Commands to issue now, most urgent first. Also the engine's timer: verification periods that
   * ran out escalate, commands without a result long past their expiry count as failed.
   */
  decide(now: number): MitigateRequest[] {
    this.advance(now);
    now = this.clock;
    this.prune(now);

    for (const t of [...this.targets.values()]) {
      // Any status: a resolved target's command must still free its reboot slot.
      if (t.command !== undefined && now > t.command.expiresAt + this.config.resultGraceMs)
        this.fail(t, now, "no-result", `no result ${now - t.command.expiresAt} ms after the command expired`);
      else if (t.status === "verifying" && t.verifyUntil !== undefined && now >= t.verifyUntil)
        this.escalate(
          t,
          now,
          false,
          `still flagged ${Math.round(this.config.verifyMs / 60_000)} min after ${this.stepName(t)} worked`,
        );
    }

    const busyHosts = new Set<string>();
    for (const t of this.targets.values()) if (t.status === "in-flight") busyHosts.add(t.host);
    const candidates = [...this.targets.values()]
      .filter((t) => t.status === "pending" && t.open)
      .map((t) => ({ t, p: this.priority(t) }))
      .sort((a, b) => comparePriority(a.p, b.p) || (a.t.key < b.t.key ? -1 : a.t.key > b.t.key ? 1 : 0));

    const out: MitigateRequest[] = [];
    for (const { t, p } of candidates) {
      const rung = this.currentRung(t);
      if (rung === undefined) continue;
      const facts = this.hosts.get(t.host);
      const cluster = facts?.cluster ?? "";
      const region = facts?.region ?? "";
      if (busyHosts.has(t.host)) {
        this.defer(t, "another command runs on the host", "deferredHostBusy");
        continue;
      }
      if (this.traceInTheWay(t, rung.action)) {
        this.defer(
          t,
          "a heap trace the step would end runs on the host: waiting for the snapshot sink",
          "deferredTracing",
        );
        continue;
      }
      if (!this.limiter.allows(cluster, now)) {
        this.defer(
          t,
          `cluster ${cluster || "(unknown)"} had ${this.config.maxActionsPerClusterHour} commands in the last hour`,
          "deferredClusterBudget",
        );
        continue;
      }
      const isReboot = REBOOT_ACTIONS.has(rung.action);
      if (isReboot && this.rebootsIn(region, now) >= this.config.maxConcurrentRebootsPerRegion) {
        this.defer(
          t,
          `region ${region || "(unknown)"} has ${this.config.maxConcurrentRebootsPerRegion} hosts rebooting`,
          "deferredRebootBudget",
        );
        continue;
      }
      const cmd = this.issue(t, rung, now, p);
      this.limiter.take(cluster, now);
      if (isReboot) this.reboots[region] = [...(this.reboots[region] ?? []), { id: cmd.id, until: null }];
      busyHosts.add(t.host);
      out.push(cmd);
    }
    return out;
  }

  onResult(reply: MitigateReply, now: number): void {
    this.advance(now);
    const key = reply.id === undefined ? undefined : this.byCommand.get(reply.id);
    const t = key === undefined ? undefined : this.targets.get(key);
    if (t === undefined || t.command === undefined || t.command.id !== reply.id) {
      this.stats.unknownResults++;
      return;
    }
    this.byCommand.delete(t.command.id);
    this.releaseReboot(t.command.id, now);
    if (reply.ok) {
      this.stats.succeeded++;
      const rung = this.ladderOf(t)[t.command.rung];
      const result = {
        outcome: reply.outcome,
        ...(reply.detail !== undefined ? { detail: reply.detail } : {}),
      };
      t.command = undefined;
      t.tries = 0;
      t.afterFailure = false;
      if (t.status === "resolved") {
        this.record("succeeded", t, { reason: "result after the detector resolved the target", result });
        return;
      }
      if (rung?.prepares === true) {
        this.record("succeeded", t, {
          reason: `${rung.action} prepares the next step, which follows at once`,
          result,
        });
        t.rung++;
        t.status = "pending";
        if (t.rung >= this.ladderOf(t).length) this.giveUp(t, "the ladder ends with a preparation");
        return;
      }
      t.status = "verifying";
      t.workedAt = now;
      t.verifyUntil = now + this.config.verifyMs;
      this.record("succeeded", t, {
        reason: `waiting up to ${Math.round(this.config.verifyMs / 60_000)} min for the detector to resolve the suspect`,
        result,
      });
      return;
    }
    const code = String(reply.error.code);
    this.fail(t, now, code, reply.error.message, reply.error.field, reply.error.value);
  }

  /**
   * Commands issued and still without a result: after a restart the shell sends them again, and
   * an agent that ran one answers with its result instead of running it twice.
   */
  outstanding(): MitigateRequest[] {
    const out: MitigateRequest[] = [];
    for (const t of this.targets.values()) if (t.command !== undefined) out.push({ ...t.command.request });
    return out;
  }

  /** Audit records since the last call, oldest first. */
  drainAudit(): AuditRecord[] {
    const out = this.audit;
    this.audit = [];
    return out;
  }

  // ---------------------------------------------------------------------------------------------

  private advance(at: number): void {
    if (at > this.clock) this.clock = at;
  }

  private fresh(key: string, ev: SuspectEvent, summary: TargetState["suspect"]): TargetState {
    return {
      key,
      host: ev.host,
      component: ev.component,
      process: ev.process,
      kind: ev.kind,
      suspect: summary,
      open: true,
      status: "pending",
      episodeAt: ev.detectedAt,
      rung: 0,
      afterFailure: false,
      tries: 0,
      updatedAt: ev.detectedAt,
    };
  }

  private ruleOf(t: TargetState): Rule | undefined {
    return this.config.rules.find((r) => r.name === t.rule);
  }

  private ladderOf(t: TargetState): Rung[] {
    return this.ruleOf(t)?.ladder ?? [];
  }

  private stepName(t: TargetState): string {
    const rung = this.ladderOf(t)[t.rung];
    return rung === undefined ? "the last step" : `${rung.action} (step ${t.rung + 1})`;
  }

  /** The first rule whose match holds (unknown VM count counts as VMs: migrate before any reboot). */
  private matchRule(t: TargetState): Rule | undefined {
    const facts = this.hosts.get(t.host);
    const hasVms = facts?.vms === undefined ? true : facts.vms > 0;
    return this.config.rules.find(
      (r) =>
        (r.match.kind === undefined || r.match.kind === t.kind) &&
        (r.match.components === undefined || r.match.components.includes(t.component)) &&
        (r.match.hasVms === undefined || r.match.hasVms === hasVms),
    );
  }

  /** The step to take now, skipping those that do not apply (audited); undefined when none is left. */
  private currentRung(t: TargetState): Rung | undefined {
    if (t.rule === undefined) {
      const rule = this.matchRule(t);
      if (rule === undefined) {
        t.status = "gave-up";
        this.stats.ignored++;
        this.record("ignored", t, {
          reason: `no rule matches a ${t.kind} leak of ${t.component} on this host`,
        });
        return undefined;
      }
      t.rule = rule.name;
    }
    const ladder = this.ladderOf(t);
    const facts = this.hosts.get(t.host);
    while (t.rung < ladder.length) {
      const rung = ladder[t.rung]!;
      let skip: string | undefined;
      if (rung.onlyAfterFailure === true && !t.afterFailure)
        skip = "only after the previous step failed, and it did not";
      else if (rung.minProcesses !== undefined && (facts?.processes[t.component] ?? 1) < rung.minProcesses)
        skip = `${t.component} runs ${facts?.processes[t.component] ?? "an unknown number of (taken as 1)"} process(es) on the host, fewer than ${rung.minProcesses}`;
      else if (rung.action === "custom" && this.scriptOf(t, rung) === undefined)
        skip = `no action registered for ${t.component}`;
      else if (
        !allowedBy(this.config.allow[rung.action], { ...t, cluster: facts?.cluster, region: facts?.region })
      ) {
        if (rung.prepares === true) {
          this.giveUp(
            t,
            `${rung.action} is not allowlisted here and prepares what follows: stopping rather than skip it`,
            rung,
          );
          return undefined;
        }
        skip = `${rung.action} is not allowlisted for ${t.component} here`;
      }
      if (skip === undefined) return rung;
      this.stats.skipped++;
      this.record("skipped", t, { reason: skip, action: rung.action });
      t.rung++;
    }
    this.giveUp(t, "no step of the ladder is left");
    return undefined;
  }

  private scriptOf(t: TargetState, rung: Rung): string | undefined {
    return rung.script ?? this.config.customActions[t.component]?.script;
  }

  private issue(t: TargetState, rung: Rung, now: number, p: Priority): MitigateRequest {
    const id = `m:${t.host}:${t.component}:${digest(t.process)}:${t.episodeAt}:${t.rung}:${t.tries}`;
    const script = rung.action === "custom" ? this.scriptOf(t, rung) : undefined;
    const why =
      `${t.kind} leak of ${(t.suspect.growthBytesPerHour / 1048576).toFixed(1)} MiB/h, severity ` +
      `${t.suspect.severity.toFixed(1)}: step ${t.rung + 1} of rule ${t.rule}` +
      (t.afterFailure ? ", the previous step failed" : "");
    const cmd: MitigateRequest = {
      v: MITIGATE_PROTOCOL_VERSION,
      id,
      host: t.host,
      action: rung.action,
      component: t.component,
      process: t.process,
      ...(t.kind === "process" ? { pid: t.suspect.pid } : {}),
      ...(script !== undefined ? { script } : {}),
      suspect: t.suspect.id,
      reason: why,
      issuedAt: now,
      expiresAt: now + this.config.commandTtlMs,
      dryRun: this.config.dryRun,
    };
    t.command = {
      id,
      action: rung.action,
      rung: t.rung,
      issuedAt: now,
      expiresAt: cmd.expiresAt,
      request: cmd,
    };
    t.status = "in-flight";
    t.tries++;
    t.deferred = undefined;
    t.updatedAt = now;
    this.byCommand.set(id, t.key);
    this.stats.issued++;
    this.record("issued", t, {
      reason: why,
      action: rung.action,
      command: id,
      priority: {
        ...(p.freeShare !== undefined ? { freeShare: p.freeShare } : {}),
        leakBytes: p.leakBytes,
        growthBytesPerHour: p.growthBytesPerHour,
        ...(p.hoursToFailure !== undefined ? { hoursToFailure: p.hoursToFailure } : {}),
      },
    });
    return cmd;
  }

  private fail(
    t: TargetState,
    now: number,
    code: string,
    message: string,
    field?: string,
    value?: unknown,
  ): void {
    const command = t.command;
    if (command !== undefined) {
      this.byCommand.delete(command.id);
      this.releaseReboot(command.id, now);
    }
    this.stats.failed++;
    const where = field !== undefined ? ` (${field}: ${JSON.stringify(value)})` : "";
    const result = { code, message: `${message}${where}` };
    t.command = undefined;
    if (t.status === "resolved") {
      this.record("failed", t, {
        reason: "result after the detector resolved the target",
        result,
        action: command?.action,
      });
      return;
    }
    if (code === "no-such-process") {
      // The leaking process is gone already: whether the leak went with it is the detector's call.
      t.status = "verifying";
      t.workedAt = now;
      t.verifyUntil = now + this.config.verifyMs;
      t.tries = 0;
      this.record("failed", t, {
        reason: "the process is gone; waiting for the detector",
        result,
        action: command?.action,
      });
      return;
    }
    if (code === "busy" && t.tries < 3) {
      // Another command runs on the host (not ours): the same step again, later.
      t.status = "pending";
      this.record("failed", t, {
        reason: "the agent is busy; the step is asked again",
        result,
        action: command?.action,
      });
      return;
    }
    this.record("failed", t, {
      reason: `${command?.action ?? "the command"} failed`,
      result,
      action: command?.action,
    });
    if (code === "not-allowed" && this.ladderOf(t)[t.rung]?.prepares === true) {
      this.giveUp(t, "the agent does not allow a step that prepares what follows");
      return;
    }
    // The agent's allowlist refusing is not a failure of the step (a reboot needs a failed soft reboot).
    this.escalate(t, now, code !== "not-allowed", `${this.stepName(t)} failed (${code})`);
  }

  /** Moves to the next step; gives up past the last one. */
  private escalate(t: TargetState, now: number, failed: boolean, why: string): void {
    t.rung++;
    t.afterFailure = failed;
    t.tries = 0;
    t.verifyUntil = undefined;
    t.deferred = undefined;
    t.updatedAt = now;
    if (t.rung >= this.ladderOf(t).length) {
      this.giveUp(t, `${why} and no step is left`);
      return;
    }
    t.status = "pending";
    this.stats.escalated++;
    this.record("escalated", t, { reason: `${why}: next step ${this.stepName(t)}` });
  }

  private giveUp(t: TargetState, why: string, rung?: Rung): void {
    t.status = "gave-up";
    t.verifyUntil = undefined;
    this.stats.gaveUp++;
    this.record("gave-up", t, {
      reason: `${why}: a human must look`,
      ...(rung ? { action: rung.action } : {}),
    });
  }

  private defer(t: TargetState, why: string, counter: keyof MitigationStats): void {
    if (t.deferred === why) return;
    t.deferred = why;
    this.stats[counter]++;
    const rung = this.ladderOf(t)[t.rung];
    this.record("deferred", t, { reason: why, ...(rung ? { action: rung.action } : {}) });
  }

  private priority(t: TargetState): Priority {
    const facts = this.hosts.get(t.host);
    const total = facts?.totalBytes;
    const used = facts?.usedBytes;
    const free =
      total !== undefined && used !== undefined && total > 0 ? Math.max(0, total - used) : undefined;
    const freeShare = free === undefined ? undefined : free / total!;
    const rate = t.suspect.growthBytesPerHour;
    const leakBytes = (Math.max(0, rate) * Math.max(0, t.suspect.end - t.suspect.start)) / HOUR_MS;
    return {
      band:
        freeShare === undefined
          ? Number.POSITIVE_INFINITY
          : Math.floor(freeShare / this.config.freeMemoryBand),
      freeShare,
      leakBytes,
      growthBytesPerHour: rate,
      hoursToFailure: free === undefined || rate <= 0 ? undefined : free / rate,
    };
  }

  private rebootsIn(region: string, now: number): number {
    return (this.reboots[region] ?? []).filter((r) => r.until === null || r.until > now).length;
  }

  private releaseReboot(id: string, now: number): void {
    for (const list of Object.values(this.reboots))
      for (const r of list) if (r.id === id && r.until === null) r.until = now + this.config.rebootSettleMs;
  }

  private prune(now: number): void {
    this.limiter.prune(now);
    for (const [region, list] of Object.entries(this.reboots)) {
      const kept = list.filter((r) => r.until === null || r.until > now);
      if (kept.length === 0) delete this.reboots[region];
      else this.reboots[region] = kept;
    }
    for (const [key, t] of this.targets) {
      const done = t.status === "resolved" || t.status === "gave-up";
      const since = Math.max(t.updatedAt, t.workedAt ?? 0);
      if (done && t.command === undefined && now - since > this.config.returnWindowMs)
        this.targets.delete(key);
    }
    const withTarget = new Set([...this.targets.values()].map((t) => t.host));
    for (const [host, f] of this.hosts)
      if (!withTarget.has(host) && now - f.at > this.config.hostFactsMaxAgeMs) this.hosts.delete(host);
  }

  private record(
    event: AuditEvent,
    t: TargetState,
    extra: Partial<Pick<AuditRecord, "action" | "command" | "result" | "priority">> & { reason: string },
  ): void {
    const rung = this.ladderOf(t)[t.rung];
    this.push({
      v: 1,
      seq: this.seq++,
      at: this.clock,
      event,
      host: t.host,
      component: t.component,
      process: t.process,
      kind: t.kind,
      suspect: t.suspect.id,
      ...(t.rule !== undefined ? { rule: t.rule, rung: t.rung } : {}),
      ...(extra.action === undefined && rung !== undefined && event !== "resolved"
        ? { action: rung.action }
        : {}),
      ...(t.command !== undefined && extra.command === undefined ? { command: t.command.id } : {}),
      dryRun: this.config.dryRun,
      ...stripUndefined(extra),
    });
  }

  private recordFor(event: AuditEvent, ev: SuspectEvent, reason: string): void {
    this.push({
      v: 1,
      seq: this.seq++,
      at: this.clock,
      event,
      host: ev.host,
      component: ev.component,
      process: ev.process,
      kind: ev.kind,
      suspect: ev.id,
      dryRun: this.config.dryRun,
      reason,
    });
  }

  private push(r: AuditRecord): void {
    this.audit.push(r);
    if (this.audit.length > this.config.maxPendingAudit) {
      this.audit.shift();
      this.stats.auditDropped++;
    }
  }
}

function stripUndefined<T extends object>(o: T): T {
  const out = {} as T;
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** Closest to running out of memory first, then the larger leak, the faster leak, the sooner failure. */
function comparePriority(a: Priority, b: Priority): number {
  if (a.band !== b.band) return a.band < b.band ? -1 : 1;
  if (a.leakBytes !== b.leakBytes) return b.leakBytes - a.leakBytes;
  if (a.growthBytesPerHour !== b.growthBytesPerHour) return b.growthBytesPerHour - a.growthBytesPerHour;
  const ha = a.hoursToFailure ?? Number.POSITIVE_INFINITY;
  const hb = b.hoursToFailure ?? Number.POSITIVE_INFINITY;
  return ha === hb ? 0 : ha < hb ? -1 : 1;
}
