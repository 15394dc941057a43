/**
 * The snapshot sink's decisions, pure and synchronous, time injected (`advance`): which leaks to
 * diagnose, which hosts to trace, when to collect, when a trace is complete, when to take a
 * reference. It returns actions for the async shell (sink.ts) to carry out and is told their
 * outcomes; its whole state is plain JSON, split in parts that the shell keeps in a NATS KV
 * bucket, so a restarted resin resumes every trace where it was.
 *
 * A "case" is one leaking component being diagnosed: the component's open process suspects are
 * its candidates, ranked (ranking.ts); the top `tracesPerCase` are traced at once, a failed one
 * is replaced by the next; the first trace whose profiles satisfy its pattern's completion rule
 * (completion.ts) is diagnosed, the others are stopped.
 */
import type { SuspectEvent } from "../../schemas/suspect.ts";
import { traceCompletion } from "./completion.ts";
import type { SnapshotSinkConfig } from "./config.ts";
import { CollectionLimiter, type LimiterState } from "./limits.ts";
import { clarityOf, rankCandidates } from "./ranking.ts";
import {
  baselineVersion,
  type ChosenReferences,
  dateOf,
  HISTORY_POINTS,
  type KnownHost,
  type ProfileRef,
  pickReferenceHost,
  ReferenceCatalog,
  type ReferenceRecord,
  type ReferenceWant,
} from "./references.ts";
import type { DiagnosisReport } from "./report.ts";

/** An open process suspect: a host that may be traced. */
export interface Candidate {
  suspectId: string;
  component: string;
  host: string;
  process: string;
  pid: number;
  severity: number;
  pattern: SuspectEvent["pattern"];
  growthBytesPerHour: number;
  start: number;
  end: number;
  detectedAt: number;
  /** R² of its recorded memory since `start`, when known. */
  clarity?: number;
  vms?: number;
  cluster?: string;
  version?: string;
  /** Hourly memory points recorded while open (newest last, at most `seriesPoints`). */
  series: { ts: number[]; bytes: number[] };
}

export type TraceStatus = "starting" | "tracing" | "complete" | "failed" | "stopped";

export interface TraceState {
  trace: string;
  purpose: "suspect" | "reference";
  /** Case (component) of a suspect trace. */
  caseId?: string;
  suspectId?: string;
  /** What the detector last said of the suspect (kept here in case it resolves mid-diagnosis). */
  suspect?: Omit<Candidate, "series">;
  host: string;
  pid: number;
  process: string;
  component: string;
  /** "" when unknown. */
  cluster: string;
  version: string;
  os?: string;
  status: TraceStatus;
  /** The agent may still sample for this trace: a stop is owed. */
  needsStop: boolean;
  requestedAt: number;
  startedAt?: number;
  /** When the next start or collect is due. */
  nextAt: number;
  ring: ProfileRef[];
  /** Consecutive failed requests. */
  failures: number;
  lastError?: string;
  /** Completion rule that held, or why the trace ended. */
  outcome?: string;
  /** Held back by the collection budget right now (counted once per hold). */
  deferred?: boolean;
}

export interface CaseState {
  id: string;
  component: string;
  openedAt: number;
  status: "waiting" | "tracing" | "diagnosing" | "reporting";
  /** Suspects traced in this case (not traced again). */
  attempted: string[];
  traces: TraceState[];
  /** The trace being diagnosed. */
  completeTrace?: string;
  /** Clock when the trace completed (the diagnosis waits a little for a reference being taken). */
  completedAt?: number;
  report?: DiagnosisReport;
}

/** Everything that must survive a restart, in the parts the shell stores separately. */
/** The state of a sink that has done nothing yet. */
export function emptyCoreState(): CoreState {
  return {
    meta: {
      v: 1,
      now: 0,
      seq: 0,
      handled: {},
      lastCaseAt: {},
      limiter: {},
      referenceTraces: [],
      referenceFailures: {},
      deletions: [],
    },
    references: [],
    cases: {},
    suspects: {},
  };
}

export interface CoreState {
  meta: {
    v: 1;
    now: number;
    seq: number;
    handled: Record<string, number>;
    lastCaseAt: Record<string, number>;
    limiter: LimiterState;
    referenceTraces: TraceState[];
    referenceFailures: Record<string, number>;
    /** Profiles no longer needed, to delete from the Object Store. */
    deletions: string[];
  };
  references: ReferenceRecord[];
  cases: Record<string, CaseState>;
  suspects: Record<string, Record<string, Candidate>>;
}

export type Action =
  /** `at`: the time the request is for (sent to agents on the event clock). */
  | { kind: "start"; trace: TraceState; at: number }
  | { kind: "collect"; trace: TraceState; at: number }
  | { kind: "stop"; trace: TraceState }
  | {
      kind: "diagnose";
      caseId: string;
      trace: TraceState;
      candidate: Candidate;
      references: ChosenReferences | undefined;
    }
  | { kind: "report"; caseId: string; report: DiagnosisReport }
  | { kind: "delete"; ids: string[] };

/** How a failed request affects its trace (decided by the shell from the error, in one place). */
export interface Failure {
  /** "retry": try again later; "restart": the agent lost the trace, start it afresh; "fatal": give the host up. */
  effect: "retry" | "restart" | "fatal";
  message: string;
}

export interface CoreStats {
  suspectsSeen: number;
  kernelSkipped: number;
  replaysIgnored: number;
  casesOpened: number;
  casesSuppressed: number;
  casesDiagnosed: number;
  casesFailed: number;
  tracesStarted: number;
  hostsGivenUp: number;
  tracesLost: number;
  collections: number;
  collectionsDeferred: number;
  requestFailures: number;
  referencesTaken: number;
  referencesRemoved: number;
  profilesDropped: number;
}

/** A point of a process series, as the shell extracts it from a closed window. */
export interface SeriesPoint {
  host: string;
  component: string;
  process: string;
  pid: number;
  ts: number;
  bytes: number;
}

/** A host's attributes from a closed window. */
export interface StreamInfo {
  host: string;
  component: string;
  cluster: string;
  version: string;
  vms: number | undefined;
}

const UNKNOWN_CLUSTER = "(unknown)";
/** A host not seen for this long is no reference candidate. */
const REFERENCE_HOST_SILENCE_MS = 3 * 3_600_000;
/**
 * A reference may not grow faster than this share of the suspect's rate: the evaluation's
 * reference policy, `resin eval --diagnose-sim`.
 */
const REFERENCE_MAX_GROWTH_RATIO = 0.25;

export class SnapshotCore {
  readonly stats: CoreStats = {
    suspectsSeen: 0,
    kernelSkipped: 0,
    replaysIgnored: 0,
    casesOpened: 0,
    casesSuppressed: 0,
    casesDiagnosed: 0,
    casesFailed: 0,
    tracesStarted: 0,
    hostsGivenUp: 0,
    tracesLost: 0,
    collections: 0,
    collectionsDeferred: 0,
    requestFailures: 0,
    referencesTaken: 0,
    referencesRemoved: 0,
    profilesDropped: 0,
  };
  /** Parts changed since `takeDirty()`: "meta", "references", "case.<component>", "suspects.<component>". */
  private readonly dirty = new Set<string>();
  /** Actions handed out and not yet answered (not state: after a restart everything is due again). */
  private readonly inFlight = new Set<string>();
  private readonly state: CoreState;
  private readonly limiter: CollectionLimiter;
  private readonly catalog: ReferenceCatalog;
  /** Hosts of the components of interest, from telemetry (rebuilt from the next window after a restart). */
  private readonly hosts = new Map<string, Map<string, KnownHost>>();

  constructor(
    private readonly config: SnapshotSinkConfig,
    restored?: CoreState,
  ) {
    this.state = restored ?? emptyCoreState();
    this.limiter = new CollectionLimiter(config.maxCollectionsPerClusterHour, this.state.meta.limiter);
    this.catalog = new ReferenceCatalog(
      { refreshMs: config.referenceRefreshMs, maxAgeMs: config.referenceMaxAgeMs },
      this.state.references,
    );
  }

  get now(): number {
    return this.state.meta.now;
  }

  /** Moves the clock forward (never back). */
  advance(now: number): void {
    // Not worth a save by itself: it is saved with the next change, and the clock that drives
    // it (windows, suspects, the wall) moves it again after a restart.
    if (now > this.state.meta.now) this.state.meta.now = now;
  }

  /** The state to save: every part, or only those named. */
  snapshot(): CoreState {
    this.state.references = this.catalog.records();
    return this.state;
  }

  /** Parts changed since the last call. */
  takeDirty(): string[] {
    const out = [...this.dirty];
    this.dirty.clear();
    return out;
  }

  /** The value of one part (see `takeDirty`); undefined when the part no longer exists. */
  part(name: string): unknown {
    if (name === "meta") return this.state.meta;
    if (name === "references") return this.catalog.records();
    const [kind, component] = splitPart(name);
    if (kind === "case") return this.state.cases[component];
    if (kind === "suspects") {
      const s = this.state.suspects[component];
      return s === undefined || Object.keys(s).length === 0 ? undefined : s;
    }
    return undefined;
  }

  get activeTraces(): number {
    let n = this.state.meta.referenceTraces.filter((t) => isActive(t)).length;
    for (const c of Object.values(this.state.cases)) n += c.traces.filter((t) => isActive(t)).length;
    return n;
  }

  get activeCases(): number {
    return Object.keys(this.state.cases).length;
  }

  cases(): CaseState[] {
    return Object.values(this.state.cases);
  }

  references(): ReferenceRecord[] {
    return this.catalog.records();
  }

  // --- Inputs --------------------------------------------------------------------------------

  observeSuspect(e: SuspectEvent): void {
    this.stats.suspectsSeen++;
    if (e.kind !== "process") {
      this.stats.kernelSkipped++;
      return;
    }
    const perComponent = this.state.suspects[e.component];
    if (e.state === "resolved") {
      if (perComponent?.[e.id] !== undefined) {
        delete perComponent[e.id];
        this.dirty.add(`suspects.${e.component}`);
      }
      const c = this.state.cases[e.component];
      for (const t of c?.traces ?? [])
        if (t.suspectId === e.id && isActive(t)) {
          this.endTrace(t, "stopped", "stopped: the detector resolved the suspect");
          this.dirty.add(`case.${e.component}`);
        }
      return;
    }
    if (this.state.meta.handled[e.id] !== undefined) {
      this.stats.replaysIgnored++;
      return;
    }
    const suspects = perComponent ?? {};
    this.state.suspects[e.component] = suspects;
    const known = suspects[e.id];
    const host = this.hosts.get(e.component)?.get(e.host);
    const candidate: Candidate = {
      suspectId: e.id,
      component: e.component,
      host: e.host,
      process: e.process,
      pid: e.pid,
      severity: e.severity,
      pattern: e.pattern,
      growthBytesPerHour: e.growthBytesPerHour,
      start: e.start,
      end: e.end,
      detectedAt: e.detectedAt,
      series: known?.series ?? { ts: [], bytes: [] },
      ...(known?.clarity !== undefined ? { clarity: known.clarity } : {}),
      ...(host !== undefined
        ? {
            cluster: host.cluster,
            version: host.version,
            ...(host.vms !== undefined ? { vms: host.vms } : {}),
          }
        : pick(known, ["cluster", "version", "vms"])),
    };
    suspects[e.id] = candidate;
    for (const t of this.state.cases[e.component]?.traces ?? [])
      if (t.suspectId === e.id) {
        t.suspect = withoutSeries(candidate);
        this.dirty.add(`case.${e.component}`);
      }
    this.capCandidates(e.component);
    this.dirty.add(`suspects.${e.component}`);
    if (known !== undefined || this.state.cases[e.component] !== undefined) return;
    const last = this.state.meta.lastCaseAt[e.component];
    if (last !== undefined && this.now - last < this.config.caseCooldownMs) {
      this.stats.casesSuppressed++;
      return;
    }
    this.state.cases[e.component] = {
      id: `${e.component}@${this.now}`,
      component: e.component,
      openedAt: this.now,
      status: "waiting",
      attempted: [],
      traces: [],
    };
    this.stats.casesOpened++;
    this.dirty.add(`case.${e.component}`);
  }

  /** Hosts' attributes and process points of a closed window (only components with suspects are kept). */
  observeWindow(streams: readonly StreamInfo[], points: readonly SeriesPoint[]): void {
    for (const s of streams) {
      if (!this.isInteresting(s.component)) continue;
      let hosts = this.hosts.get(s.component);
      if (hosts === undefined) {
        hosts = new Map();
        this.hosts.set(s.component, hosts);
      }
      const known = hosts.get(s.host);
      hosts.set(s.host, {
        host: s.host,
        cluster: s.cluster,
        version: s.version,
        vms: s.vms,
        lastSeen: this.now,
        processes: known?.processes ?? {},
        history: known?.history ?? {},
      });
      const suspects = this.state.suspects[s.component];
      for (const c of Object.values(suspects ?? {}))
        if (c.host === s.host) {
          c.cluster = s.cluster;
          c.version = s.version;
          if (s.vms !== undefined) c.vms = s.vms;
          else delete c.vms;
          this.dirty.add(`suspects.${s.component}`);
        }
      // A trace started before its host was seen in a window learns its cluster (for the budget
      // and the references) and version now.
      for (const t of this.state.cases[s.component]?.traces ?? [])
        if (t.host === s.host && (t.cluster === "" || t.version === "")) {
          if (t.cluster === "") t.cluster = s.cluster;
          if (t.version === "") t.version = s.version;
          this.dirty.add(`case.${s.component}`);
        }
    }
    const byTarget = new Map<string, Candidate>();
    for (const [component, suspects] of Object.entries(this.state.suspects))
      for (const c of Object.values(suspects))
        byTarget.set(targetKey(component, c.host, c.process, c.pid), c);
    for (const p of points) {
      if (!this.isInteresting(p.component)) continue;
      const h = this.hosts.get(p.component)?.get(p.host);
      if (h !== undefined) {
        h.processes[p.process] = p.pid;
        h.history ??= {};
        const history = h.history;
        let hist = history[p.process];
        if (hist === undefined || hist.pid !== p.pid) {
          hist = { pid: p.pid, ts: [], bytes: [] };
          history[p.process] = hist;
        }
        if (hist.ts.length === 0 || p.ts > hist.ts.at(-1)!) {
          hist.ts.push(p.ts);
          hist.bytes.push(p.bytes);
          if (hist.ts.length > HISTORY_POINTS) {
            hist.ts.shift();
            hist.bytes.shift();
          }
        }
      }
      const c = byTarget.get(targetKey(p.component, p.host, p.process, p.pid));
      if (c === undefined || this.config.seriesPoints === 0) continue;
      if (c.series.ts.length > 0 && p.ts <= c.series.ts.at(-1)!) continue;
      c.series.ts.push(p.ts);
      c.series.bytes.push(p.bytes);
      if (c.series.ts.length > this.config.seriesPoints) {
        c.series.ts.shift();
        c.series.bytes.shift();
      }
      const clarity = clarityOf(c.series.ts, c.series.bytes, c.start);
      if (clarity !== undefined) c.clarity = clarity;
      this.dirty.add(`suspects.${p.component}`);
    }
  }

  // --- Decisions -----------------------------------------------------------------------------

  /** What is due now. Each returned action is in flight until its outcome is reported. */
  due(): Action[] {
    const actions: Action[] = [];
    this.housekeeping(actions);

    const cases = Object.values(this.state.cases).sort((a, b) => a.openedAt - b.openedAt);
    let active = cases.filter((c) => c.status !== "waiting").length;
    for (const c of cases) {
      if (c.status === "waiting") {
        if (active >= this.config.maxActiveCases) continue;
        c.status = "tracing";
        active++;
        this.dirty.add(`case.${c.component}`);
      }
      this.caseActions(c, actions);
    }

    for (const t of this.state.meta.referenceTraces) this.traceActions(t, actions);
    const before = this.state.meta.referenceTraces.length;
    this.state.meta.referenceTraces = this.state.meta.referenceTraces.filter(
      (t) => isActive(t) || t.needsStop || this.inFlight.has(`stop:${t.trace}`),
    );
    if (this.state.meta.referenceTraces.length !== before) this.dirty.add("meta");
    return actions;
  }

  private housekeeping(actions: Action[]): void {
    const now = this.now;
    const meta = this.state.meta;
    const keep = Math.max(this.config.caseCooldownMs, 3_600_000);
    for (const [id, at] of Object.entries(meta.handled))
      if (now - at > keep) {
        delete meta.handled[id];
        this.dirty.add("meta");
      }
    for (const [host, at] of Object.entries(meta.referenceFailures))
      if (now - at > this.config.referenceRefreshMs) {
        delete meta.referenceFailures[host];
        this.dirty.add("meta");
      }
    this.limiter.prune(now);
    for (const component of [...this.hosts.keys()])
      if (!this.isInteresting(component)) this.hosts.delete(component);
    const stale = this.catalog.removeStale(now);
    if (stale.length > 0) {
      this.stats.referencesRemoved += stale.length;
      for (const r of stale) meta.deletions.push(...r.profiles.map((p) => p.id));
      this.dirty.add("references");
    }
    if (meta.deletions.length > 0 && !this.inFlight.has("delete")) {
      this.inFlight.add("delete");
      actions.push({ kind: "delete", ids: [...meta.deletions] });
    }
  }

  private caseActions(c: CaseState, actions: Action[]): void {
    const key = `case.${c.component}`;
    if (c.status === "tracing") {
      const done = c.traces.find((t) => t.status === "complete");
      if (done !== undefined) {
        c.status = "diagnosing";
        c.completeTrace = done.trace;
        c.completedAt = this.now;
        for (const t of c.traces)
          if (isActive(t)) this.endTrace(t, "stopped", `stopped: ${done.host} completed first`);
        this.dirty.add(key);
      } else {
        this.fillTraces(c);
        if (!c.traces.some(isActive)) {
          this.failCase(c);
          return;
        }
      }
    }
    for (const t of c.traces) {
      this.traceActions(t, actions);
      if (t.purpose === "suspect" && t.os !== undefined && c.status === "tracing") this.wantReference(t);
    }
    if (c.status === "diagnosing" && !this.inFlight.has(`diagnose:${c.id}`)) {
      const t = c.traces.find((x) => x.trace === c.completeTrace)!;
      // A reference of the same lineage being taken now is worth waiting for, briefly: without
      // one the diagnosis cannot tell the leak from growth every host has.
      const pending = this.state.meta.referenceTraces.filter(
        (r) => isActive(r) && r.component === t.component && (r.caseId === c.id || r.cluster === t.cluster),
      );
      const deadline =
        (c.completedAt ?? this.now) + (this.config.referenceProfiles + 1) * this.config.collectIntervalMs;
      // Until the deadline, and past it while a reference still has work that was due before it:
      // on event time the telemetry can run ahead of the agents' answers.
      if (pending.length > 0 && (this.now < deadline || pending.some((r) => r.nextAt <= deadline))) return;
      const candidate = this.candidateOf(c, t);
      this.inFlight.add(`diagnose:${c.id}`);
      actions.push({
        kind: "diagnose",
        caseId: c.id,
        trace: t,
        candidate,
        references: this.catalog.choose(this.referenceWant(t), this.now),
      });
    }
    if (c.status === "reporting" && c.report !== undefined && !this.inFlight.has(`report:${c.id}`)) {
      this.inFlight.add(`report:${c.id}`);
      actions.push({ kind: "report", caseId: c.id, report: c.report });
    }
  }

  /** Starts traces on the best untried candidates until `tracesPerCase` run. */
  private fillTraces(c: CaseState): void {
    let running = c.traces.filter(isActive).length;
    if (running >= this.config.tracesPerCase) return;
    const open = Object.values(this.state.suspects[c.component] ?? {}).filter(
      (s) => !c.attempted.includes(s.suspectId),
    );
    // On event time the first traces start when the case opened, whenever the shell gets to
    // them, so that the schedule follows from the telemetry alone.
    const startAt = this.config.clock === "event" && c.traces.length === 0 ? c.openedAt : this.now;
    for (const s of rankCandidates(open, this.config)) {
      if (running >= this.config.tracesPerCase) break;
      c.attempted.push(s.suspectId);
      const t = this.newTrace(
        "suspect",
        s.host,
        s.pid,
        s.process,
        c.component,
        s.cluster,
        s.version,
        c.id,
        s,
      );
      t.nextAt = startAt;
      c.traces.push(t);
      this.stats.tracesStarted++;
      running++;
      this.dirty.add(`case.${c.component}`);
    }
  }

  private failCase(c: CaseState): void {
    this.stats.casesFailed++;
    for (const id of c.attempted) this.state.meta.handled[id] = this.now;
    this.dirty.add("meta");
    if (c.traces.some((t) => t.needsStop)) {
      // Keep it until the owed stops are sent; nothing else happens to it.
      c.status = "reporting";
      return;
    }
    delete this.state.cases[c.component];
    this.dirty.add(`case.${c.component}`);
  }

  private traceActions(t: TraceState, actions: Action[]): void {
    const now = this.now;
    if (t.needsStop && !isActive(t)) {
      if (!this.inFlight.has(`stop:${t.trace}`)) {
        this.inFlight.add(`stop:${t.trace}`);
        actions.push({ kind: "stop", trace: t });
      }
      return;
    }
    if (!isActive(t) || t.nextAt > now || this.inFlight.has(`req:${t.trace}`)) return;
    if (t.status === "starting") {
      this.inFlight.add(`req:${t.trace}`);
      actions.push({ kind: "start", trace: t, at: this.config.clock === "event" ? t.nextAt : now });
      return;
    }
    // On event time a trace collects at its schedule, however far the clock jumped (a backlog
    // of telemetry, a slow turn of the shell): the agents answer for any time, so the profiles
    // stay evenly spaced. On the wall clock it collects now.
    for (;;) {
      const at = this.config.clock === "event" ? t.nextAt : now;
      if (t.startedAt !== undefined && at - t.startedAt >= this.config.maxTraceMs) {
        if (t.purpose === "suspect" && t.ring.length >= 2)
          this.endTrace(t, "complete", `time limit: ${t.ring.length} profiles in ${hours(at - t.startedAt)}`);
        else this.endTrace(t, "failed", `failed: time limit with ${t.ring.length} profiles`);
        this.touch(t);
        return;
      }
      const cluster = t.cluster || UNKNOWN_CLUSTER;
      if (this.limiter.allows(cluster, at)) {
        t.deferred = false;
        this.limiter.take(cluster, at);
        this.dirty.add("meta");
        this.stats.collections++;
        this.inFlight.add(`req:${t.trace}`);
        actions.push({ kind: "collect", trace: t, at });
        return;
      }
      if (!t.deferred) {
        t.deferred = true;
        this.stats.collectionsDeferred++;
      }
      t.nextAt = this.limiter.nextAllowedAt(cluster, at);
      this.touch(t);
      if (t.nextAt > now) return;
    }
  }

  /** What references a suspect's trace wants: its component, in its cluster, on the baseline version. */
  private referenceWant(t: TraceState): ReferenceWant {
    const version = baselineVersion([...(this.hosts.get(t.component)?.values() ?? [])]) ?? t.version;
    return { component: t.component, cluster: t.cluster, version };
  }

  /** Starts a reference trace for a suspect's trace when no fresh reference or running trace covers it. */
  private wantReference(t: TraceState): void {
    const want = this.referenceWant(t);
    if (!this.catalog.needsRefresh(want, this.now)) return;
    const running = this.state.meta.referenceTraces.some(
      (r) => isActive(r) && r.component === t.component && (r.caseId === t.caseId || r.cluster === t.cluster),
    );
    if (running) return;
    const exclude = new Set<string>([
      ...Object.values(this.state.suspects[t.component] ?? {}).map((s) => s.host),
      ...Object.keys(this.state.meta.referenceFailures),
    ]);
    const suspect = this.candidateOf(this.state.cases[t.component], t);
    const host = pickReferenceHost(
      [...(this.hosts.get(t.component)?.values() ?? [])],
      { ...want, process: t.process, vms: suspect.vms },
      exclude,
      this.now,
      REFERENCE_HOST_SILENCE_MS,
      REFERENCE_MAX_GROWTH_RATIO * suspect.growthBytesPerHour,
    );
    if (host === undefined) return;
    const ref = this.newTrace(
      "reference",
      host.host,
      host.pid,
      t.process,
      t.component,
      host.cluster,
      host.version,
      t.caseId,
    );
    // On event time the reference follows the suspect's schedule, so it is ready when the
    // suspect's trace is, even if the clock jumped meanwhile or stops (the telemetry ended).
    if (this.config.clock === "event" && t.startedAt !== undefined) ref.nextAt = t.startedAt;
    this.state.meta.referenceTraces.push(ref);
    this.dirty.add("meta");
  }

  private newTrace(
    purpose: TraceState["purpose"],
    host: string,
    pid: number,
    process: string,
    component: string,
    cluster: string | undefined,
    version: string | undefined,
    caseId?: string,
    suspect?: Candidate,
  ): TraceState {
    this.state.meta.seq++;
    this.dirty.add("meta");
    return {
      trace: `${purpose === "suspect" ? "s" : "r"}-${host}-${pid}-${this.state.meta.seq.toString(36)}`,
      purpose,
      ...(caseId !== undefined ? { caseId } : {}),
      ...(suspect !== undefined ? { suspectId: suspect.suspectId, suspect: withoutSeries(suspect) } : {}),
      host,
      pid,
      process,
      component,
      cluster: cluster ?? "",
      version: version ?? "",
      status: "starting",
      needsStop: false,
      requestedAt: this.now,
      nextAt: this.now,
      ring: [],
      failures: 0,
    };
  }

  // --- Outcomes ------------------------------------------------------------------------------

  started(trace: string, reply: { os?: string | undefined }): void {
    this.inFlight.delete(`req:${trace}`);
    const t = this.findTrace(trace);
    if (t === undefined) return;
    if (t.status !== "starting") {
      // Ended while the start was in flight (resolved, another host completed): owe a stop.
      t.needsStop = true;
      this.touch(t);
      return;
    }
    t.status = "tracing";
    t.needsStop = true;
    // The first profile is the baseline, taken at once (on event time: when the start was for).
    if (this.config.clock !== "event") t.nextAt = this.now;
    t.startedAt ??= t.nextAt;
    t.failures = 0;
    if (reply.os !== undefined) t.os = reply.os;
    this.touch(t);
  }

  collected(
    trace: string,
    profile: ProfileRef & { os?: string | undefined; version?: string | undefined },
  ): void {
    this.inFlight.delete(`req:${trace}`);
    const t = this.findTrace(trace);
    if (t === undefined) return;
    if (t.status !== "tracing") {
      this.state.meta.deletions.push(profile.id);
      this.dirty.add("meta");
      return;
    }
    t.ring.push({ id: profile.id, takenAt: profile.takenAt, bytes: profile.bytes });
    t.ring.sort((a, b) => a.takenAt - b.takenAt);
    if (t.ring.length > this.config.ringSize) {
      const dropped = t.ring.splice(0, t.ring.length - this.config.ringSize);
      this.state.meta.deletions.push(...dropped.map((p) => p.id));
      this.stats.profilesDropped += dropped.length;
      this.dirty.add("meta");
    }
    if (profile.os !== undefined) t.os = profile.os;
    else t.os ??= "";
    if (profile.version !== undefined && t.version === "") t.version = profile.version;
    t.failures = 0;
    delete t.lastError;
    t.nextAt = (this.config.clock === "event" ? t.nextAt : this.now) + this.config.collectIntervalMs;
    if (t.purpose === "reference") {
      if (t.ring.length >= this.config.referenceProfiles) this.completeReference(t);
    } else {
      const candidate = this.candidateOf(this.state.cases[t.component], t);
      const verdict = traceCompletion(t.ring, candidate, this.config);
      if (verdict.complete) this.endTrace(t, "complete", verdict.reason);
      else t.outcome = verdict.reason;
    }
    this.touch(t);
  }

  /** A start or collect failed. */
  failed(trace: string, failure: Failure): void {
    this.inFlight.delete(`req:${trace}`);
    this.stats.requestFailures++;
    const t = this.findTrace(trace);
    if (t === undefined || !isActive(t)) return;
    t.failures++;
    t.lastError = failure.message;
    if (failure.effect === "fatal" || t.failures >= this.config.maxFailuresPerHost) {
      this.stats.hostsGivenUp++;
      if (t.purpose === "reference") this.state.meta.referenceFailures[t.host] = this.now;
      this.endTrace(t, "failed", `failed: ${failure.message}`);
      this.dirty.add("meta");
    } else if (failure.effect === "restart") {
      // The agent no longer has the trace (it restarted, or the TTL ran out): sample afresh; the
      // old profiles counted from another start and cannot be compared with the new ones.
      this.stats.tracesLost++;
      this.state.meta.deletions.push(...t.ring.map((p) => p.id));
      t.ring = [];
      t.status = "starting";
      t.needsStop = false;
      delete t.startedAt;
      t.nextAt = this.now;
      this.dirty.add("meta");
    } else {
      t.nextAt = this.now + this.config.retryDelayMs;
    }
    this.touch(t);
  }

  /** A stop was answered, or given up on (the agent's TTL ends the trace anyway). */
  stopped(trace: string): void {
    this.inFlight.delete(`stop:${trace}`);
    const t = this.findTrace(trace);
    if (t === undefined) return;
    t.needsStop = false;
    this.touch(t);
    this.finishCaseIfDone(t);
  }

  diagnosed(caseId: string, report: DiagnosisReport): void {
    this.inFlight.delete(`diagnose:${caseId}`);
    const c = this.caseById(caseId);
    if (c === undefined || c.status !== "diagnosing") return;
    c.report = report;
    c.status = "reporting";
    this.dirty.add(`case.${c.component}`);
  }

  /** The diagnosis could not be made from the complete trace (profiles gone…): trace the next host. */
  diagnosisFailed(caseId: string, message: string): void {
    this.inFlight.delete(`diagnose:${caseId}`);
    const c = this.caseById(caseId);
    if (c === undefined || c.status !== "diagnosing") return;
    const t = c.traces.find((x) => x.trace === c.completeTrace);
    if (t !== undefined) {
      t.status = "failed";
      t.outcome = `failed: diagnosis: ${message}`;
    }
    delete c.completeTrace;
    c.status = "tracing";
    this.dirty.add(`case.${c.component}`);
  }

  /** The report was handed over for good (the ticket is written). */
  reported(caseId: string): void {
    this.inFlight.delete(`report:${caseId}`);
    const c = this.caseById(caseId);
    if (c === undefined || c.report === undefined) return;
    this.stats.casesDiagnosed++;
    for (const id of c.attempted) this.state.meta.handled[id] = this.now;
    for (const id of Object.keys(this.state.suspects[c.component] ?? {}))
      this.state.meta.handled[id] = this.now;
    this.state.meta.lastCaseAt[c.component] = this.now;
    delete c.report; // handed over: not to be sent again
    this.dirty.add("meta");
    this.dirty.add(`case.${c.component}`);
    if (!c.traces.some((t) => t.needsStop)) delete this.state.cases[c.component];
  }

  /** The report could not be handed over; it is offered again on a later `due()`. */
  reportFailed(caseId: string): void {
    this.inFlight.delete(`report:${caseId}`);
  }

  /** Profiles deleted (or given up on) from the Object Store. */
  deleted(ids: readonly string[]): void {
    this.inFlight.delete("delete");
    const gone = new Set(ids);
    this.state.meta.deletions = this.state.meta.deletions.filter((id) => !gone.has(id));
    this.dirty.add("meta");
  }

  // --- Helpers -------------------------------------------------------------------------------

  /** The suspect a trace follows, as last known (kept in the case if the suspect resolved since). */
  candidateOf(c: CaseState | undefined, t: TraceState): Candidate {
    const known = t.suspectId === undefined ? undefined : this.state.suspects[t.component]?.[t.suspectId];
    if (known !== undefined) return known;
    if (t.suspect !== undefined) return { ...t.suspect, series: { ts: [], bytes: [] } };
    return {
      suspectId: t.suspectId ?? t.trace,
      component: t.component,
      host: t.host,
      process: t.process,
      pid: t.pid,
      severity: 0,
      pattern: "steady",
      growthBytesPerHour: 0,
      start: c?.openedAt ?? 0,
      end: c?.openedAt ?? 0,
      detectedAt: c?.openedAt ?? 0,
      series: { ts: [], bytes: [] },
    };
  }

  /** Every candidate of a case's component, traced or not (for the report). */
  candidatesOf(c: CaseState): Candidate[] {
    return Object.values(this.state.suspects[c.component] ?? {});
  }

  private completeReference(t: TraceState): void {
    const record: ReferenceRecord = {
      fingerprint: { ...lineageOf(t), date: dateOf(this.now) },
      host: t.host,
      pid: t.pid,
      process: t.process,
      profiles: [...t.ring],
      createdAt: this.now,
    };
    const replaced = this.catalog.add(record);
    if (replaced !== undefined) this.state.meta.deletions.push(...replaced.profiles.map((p) => p.id));
    this.stats.referencesTaken++;
    t.ring = []; // the record owns the profiles now
    this.endTrace(t, "complete", "reference taken");
    this.dirty.add("references");
    this.dirty.add("meta");
  }

  private endTrace(t: TraceState, status: "complete" | "failed" | "stopped", outcome: string): void {
    t.status = status;
    t.outcome = outcome;
    t.deferred = false;
    if (status === "failed" && t.purpose === "suspect") this.dirty.add(`case.${t.component}`);
  }

  private finishCaseIfDone(t: TraceState): void {
    if (t.purpose !== "suspect") return;
    const c = this.state.cases[t.component];
    if (c === undefined || c.traces.some((x) => x.needsStop)) return;
    const finished = c.status === "reporting" && c.report === undefined;
    if (finished) {
      delete this.state.cases[t.component];
      this.dirty.add(`case.${t.component}`);
    }
  }

  private touch(t: TraceState): void {
    this.dirty.add(t.purpose === "suspect" ? `case.${t.component}` : "meta");
  }

  private findTrace(trace: string): TraceState | undefined {
    for (const c of Object.values(this.state.cases)) {
      const t = c.traces.find((x) => x.trace === trace);
      if (t !== undefined) return t;
    }
    return this.state.meta.referenceTraces.find((x) => x.trace === trace);
  }

  private caseById(caseId: string): CaseState | undefined {
    return Object.values(this.state.cases).find((c) => c.id === caseId);
  }

  /** Whether the sink follows this component (it has open suspects or a case). */
  isInteresting(component: string): boolean {
    const s = this.state.suspects[component];
    return (s !== undefined && Object.keys(s).length > 0) || this.state.cases[component] !== undefined;
  }

  /** Keeps the most severe candidates, never dropping one being traced. */
  private capCandidates(component: string): void {
    const suspects = this.state.suspects[component];
    if (suspects === undefined) return;
    const all = Object.values(suspects);
    if (all.length <= this.config.maxCandidatesPerComponent) return;
    const traced = new Set(
      (this.state.cases[component]?.traces ?? []).map((t) => t.suspectId).filter((x) => x !== undefined),
    );
    const drop = all
      .filter((c) => !traced.has(c.suspectId))
      .sort((a, b) => a.severity - b.severity)
      .slice(0, all.length - this.config.maxCandidatesPerComponent);
    for (const c of drop) delete suspects[c.suspectId];
  }
}

export function isActive(t: TraceState): boolean {
  return t.status === "starting" || t.status === "tracing";
}

function withoutSeries(c: Candidate): Omit<Candidate, "series"> {
  const { series: _series, ...rest } = c;
  return rest;
}

function lineageOf(t: TraceState): Omit<ReferenceRecord["fingerprint"], "date"> {
  return { component: t.component, cluster: t.cluster, os: t.os ?? "", version: t.version };
}

function targetKey(component: string, host: string, process: string, pid: number): string {
  return `${component}\n${host}\n${process}\n${pid}`;
}

function splitPart(name: string): [string, string] {
  const dot = name.indexOf(".");
  return dot < 0 ? [name, ""] : [name.slice(0, dot), name.slice(dot + 1)];
}

function pick<T extends object, K extends keyof T>(o: T | undefined, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  if (o === undefined) return out;
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

function hours(ms: number): string {
  return `${(ms / 3_600_000).toFixed(1)} h`;
}
