/**
 * The snapshot sink's async shell around `SnapshotCore`: it feeds the core suspects and closed
 * windows (synchronously, as the live pipeline produces them), carries out the actions the core
 * hands out — snapshot requests to agents (lib/agent/client.ts), diagnoses from the profiles in
 * the Object Store, reports to whoever takes diagnoses (the ticket sink) — and keeps the core's
 * state in the NATS KV bucket `resin_snapshots`, so that a restarted resin resumes every trace.
 *
 *   const sink = await SnapshotSink.open(nc, config, { log, onDiagnosis: (r) => tickets.deliver(r) });
 *   sink.suspect(event); sink.window(result, seriesInfo);
 *   …
 *   await sink.close(); // traces keep running on the agents until resumed or their TTL ends
 */
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  AgentRefusedError,
  AgentReplyInvalidError,
  AgentUnreachableError,
  SnapshotClient,
} from "../../lib/agent/client.ts";
import { ProfileStore } from "../../lib/agent/profiles.ts";
import type { HeapProfile } from "../../lib/heap/profile.ts";
import { backoffMs, sleep } from "../../lib/nats.ts";
import { Waker } from "../../lib/waker.ts";
import type { SeriesInfo } from "../../operators/window/index.ts";
import type { WindowResult } from "../../pipelines/detect.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import {
  SnapshotSinkConfig as Schema,
  type SnapshotSinkConfig,
  type SnapshotSinkConfigInput,
} from "./config.ts";
import {
  type Action,
  type CoreState,
  emptyCoreState,
  type Failure,
  type SeriesPoint,
  SnapshotCore,
  type StreamInfo,
} from "./core.ts";
import { diagnose } from "./diagnose.ts";
import type { ProfileRef } from "./references.ts";
import { buildReport, type DiagnosisReport } from "./report.ts";

export const SNAPSHOT_STATE_BUCKET = "resin_snapshots";

export interface SnapshotSinkDeps {
  log: Logger;
  /**
   * Takes each diagnosis; resolves once it is handed over for good (the ticket is written). A
   * rejection is logged and the same report offered again later, so this must be idempotent
   * (reports carry a stable id).
   */
  onDiagnosis: (report: DiagnosisReport) => Promise<void>;
  /** Name of this sink's state in the KV bucket; one per partition of `resin run`. */
  stateKey?: string;
  /** Wall clock (for `clock: "wall"`). */
  now?: () => number;
}

/** What the shell itself counts, beyond the core's decisions. */
export interface ShellStats {
  requests: number;
  requestTimeouts: number;
  noResponders: number;
  refusals: number;
  invalidReplies: number;
  diagnoses: number;
  diagnoseErrors: number;
  reportErrors: number;
  profilesDeleted: number;
  deleteErrors: number;
  stateWrites: number;
  stateWriteErrors: number;
}

/** Decides, in one place, what a failed request means for its trace. */
export function classifyFailure(err: unknown): Failure {
  const message = (err as Error).message ?? String(err);
  if (err instanceof AgentRefusedError) return failureOfCode(err.code, message);
  if (err instanceof AgentReplyInvalidError) return { effect: "fatal", message };
  return { effect: "retry", message };
}

/** What an agent's error code means for the trace (see `classifyFailure`). */
export function failureOfCode(code: string, message: string): Failure {
  switch (code) {
    case "unknown-trace":
      return { effect: "restart", message };
    case "no-such-process":
    case "trace-conflict":
    case "bad-request":
    case "unsupported-version":
      return { effect: "fatal", message };
    default:
      // busy, unreachable, source-failed, store-failed, or a code from a newer agent.
      return { effect: "retry", message };
  }
}

export class SnapshotSink {
  readonly config: SnapshotSinkConfig;
  readonly shellStats: ShellStats = {
    requests: 0,
    requestTimeouts: 0,
    noResponders: 0,
    refusals: 0,
    invalidReplies: 0,
    diagnoses: 0,
    diagnoseErrors: 0,
    reportErrors: 0,
    profilesDeleted: 0,
    deleteErrors: 0,
    stateWrites: 0,
    stateWriteErrors: 0,
  };
  private readonly client: SnapshotClient;
  private readonly running = new Set<Promise<void>>();
  private readonly unsaved = new Set<string>();
  private requestsInFlight = 0;
  private readonly waitingRequests: (() => void)[] = [];
  private readonly waker = new Waker();
  /** Nothing due and nothing in hand since the last input (see `whenIdle`). */
  private quiet = false;
  private readonly idleWaiters: (() => void)[] = [];
  private closing = false;
  private loopDone: Promise<void> = Promise.resolve();
  private persisting: Promise<void> = Promise.resolve();

  private constructor(
    readonly core: SnapshotCore,
    nc: NatsConnection,
    private readonly kv: KV,
    readonly profiles: ProfileStore,
    config: SnapshotSinkConfig,
    private readonly deps: Required<SnapshotSinkDeps>,
  ) {
    this.config = config;
    this.client = new SnapshotClient(nc, config.requestTimeoutMs);
  }

  /** Opens the state bucket and the profile store, restores the saved state, and starts working. */
  static async open(
    nc: NatsConnection,
    config: SnapshotSinkConfigInput,
    deps: SnapshotSinkDeps,
  ): Promise<SnapshotSink> {
    const cfg = Schema.parse(config);
    const full: Required<SnapshotSinkDeps> = { stateKey: "snapshots", now: Date.now, ...deps };
    const kv = await new Kvm(nc).create(SNAPSHOT_STATE_BUCKET, { history: 1 });
    const profiles = await ProfileStore.open(nc);
    const restored = await loadState(kv, full.stateKey);
    const core = new SnapshotCore(cfg, restored);
    const sink = new SnapshotSink(core, nc, kv, profiles, cfg, full);
    if (restored !== undefined) {
      const cases = core.cases();
      full.log.info(
        {
          cases: cases.length,
          traces: cases.reduce((a, c) => a + c.traces.length, 0),
          references: core.references().length,
        },
        "snapshot state restored",
      );
    }
    sink.loopDone = sink.loop();
    return sink;
  }

  get stats() {
    return {
      ...this.core.stats,
      ...this.shellStats,
      activeCases: this.core.activeCases,
      activeTraces: this.core.activeTraces,
    };
  }

  /** A suspect event from the detector (synchronous: the pipeline calls it in its graph). */
  suspect(e: SuspectEvent): void {
    if (this.config.clock === "event") this.core.advance(e.detectedAt);
    this.core.observeSuspect(e);
    this.poke();
  }

  /**
   * Resolves once everything the inputs so far made due is done (requests answered, diagnoses
   * made, reports handed over): with the event clock, the sink has caught up with the telemetry.
   */
  whenIdle(): Promise<void> {
    if (this.quiet) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private poke(): void {
    this.quiet = false;
    this.waker.wake();
  }

  /** A closed window: hosts' attributes and the memory of the processes the sink follows. */
  window(result: WindowResult, seriesInfo: (slot: number) => SeriesInfo | undefined): void {
    if (this.config.clock === "event") this.core.advance(result.window.end);
    const { streams, points } = windowInputs(result, seriesInfo, (c) => this.core.isInteresting(c));
    this.core.observeWindow(streams, points);
    this.poke();
  }

  /** Moves the event clock (tests, and callers with a clock of their own). */
  advance(now: number): void {
    this.core.advance(now);
    this.poke();
  }

  /** Whether the state bucket answers. */
  async healthcheck(): Promise<void> {
    await this.kv.status();
  }

  /**
   * Stops working: waits for the requests in hand, saves the state. Traces stay with the agents
   * (a restarted sink resumes them; otherwise their TTL ends them). Returns the diagnoses not
   * yet handed over (they are offered again after a restart).
   */
  async close(): Promise<{ undelivered: number }> {
    if (this.closing) return { undelivered: this.undelivered() };
    this.closing = true;
    this.waker.wake();
    await this.loopDone;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
    await Promise.allSettled([...this.running]);
    await this.persist();
    return { undelivered: this.undelivered() };
  }

  private undelivered(): number {
    return this.core.cases().filter((c) => c.report !== undefined).length;
  }

  private async loop(): Promise<void> {
    while (!this.closing) {
      try {
        if (this.config.clock === "wall") this.core.advance(this.deps.now());
        const actions = this.core.due();
        for (const action of actions) this.launch(action);
        await this.persist();
        if (actions.length === 0 && this.running.size === 0) {
          this.quiet = true;
          for (const resolve of this.idleWaiters.splice(0)) resolve();
        }
      } catch (err) {
        this.deps.log.error({ err: (err as Error).message }, "snapshot sink step failed");
      }
      if (this.closing) break;
      await this.waker.sleep(this.config.pollMs);
    }
  }

  private launch(action: Action): void {
    const work = this.perform(action)
      .catch((err: Error) =>
        this.deps.log.error({ err: err.message, action: action.kind }, "snapshot action failed unexpectedly"),
      )
      .finally(() => {
        this.running.delete(work);
        this.poke();
      });
    this.running.add(work);
  }

  private async perform(action: Action): Promise<void> {
    switch (action.kind) {
      case "start":
      case "collect":
      case "stop":
        return await this.withRequestSlot(() => this.request(action));
      case "diagnose":
        return await this.diagnose(action);
      case "report":
        return await this.report(action.caseId, action.report);
      case "delete":
        return await this.deleteProfiles(action.ids);
    }
  }

  private async request(action: Extract<Action, { kind: "start" | "collect" | "stop" }>): Promise<void> {
    const t = action.trace;
    // A stop needs no time; sent with the clock's, it could expire the agent's other traces that
    // are behind in their schedule.
    const at = this.config.clock === "event" && action.kind !== "stop" ? { at: action.at } : {};
    this.shellStats.requests++;
    try {
      if (action.kind === "start") {
        const reply = await this.client.start(t.host, {
          trace: t.trace,
          pid: t.pid,
          process: t.process,
          component: t.component,
          samplingIntervalBytes: this.config.samplingIntervalBytes,
          ttlMs: this.config.traceTtlMs,
          ...at,
        });
        this.core.started(t.trace, { os: reply.os });
        this.deps.log.info(
          { trace: t.trace, host: t.host, targetPid: t.pid, purpose: t.purpose },
          "trace started",
        );
      } else if (action.kind === "collect") {
        const reply = await this.client.collect(t.host, { trace: t.trace, ...at });
        this.core.collected(t.trace, {
          id: reply.id,
          takenAt: reply.takenAt,
          bytes: reply.bytes,
          os: reply.os,
          version: reply.version,
        });
        this.deps.log.debug({ trace: t.trace, id: reply.id, bytes: reply.bytes }, "profile collected");
      } else {
        await this.client.stop(t.host, { trace: t.trace }).catch((err: Error) => {
          this.count(err);
          this.deps.log.warn(
            { trace: t.trace, host: t.host, err: err.message },
            "stop failed; the agent ends the trace at its TTL",
          );
        });
        this.core.stopped(t.trace);
      }
    } catch (err) {
      this.count(err as Error);
      const failure = classifyFailure(err);
      this.deps.log.warn(
        { trace: t.trace, host: t.host, op: action.kind, effect: failure.effect, err: failure.message },
        "snapshot request failed",
      );
      this.core.failed(t.trace, failure);
    }
  }

  private count(err: Error): void {
    if (err instanceof AgentUnreachableError) {
      if (err.why === "timeout") this.shellStats.requestTimeouts++;
      else if (err.why === "no-responders") this.shellStats.noResponders++;
    } else if (err instanceof AgentRefusedError) this.shellStats.refusals++;
    else if (err instanceof AgentReplyInvalidError) this.shellStats.invalidReplies++;
  }

  private async withRequestSlot(work: () => Promise<void>): Promise<void> {
    while (this.requestsInFlight >= this.config.maxConcurrentRequests)
      await new Promise<void>((r) => this.waitingRequests.push(r));
    this.requestsInFlight++;
    try {
      await work();
    } finally {
      this.requestsInFlight--;
      this.waitingRequests.shift()?.();
    }
  }

  private async diagnose(action: Extract<Action, { kind: "diagnose" }>): Promise<void> {
    const t = action.trace;
    try {
      const loaded = await this.load(t.ring);
      if (loaded.length < 2)
        throw new Error(
          `${loaded.length} of the trace's ${t.ring.length} profiles are still in the Object Store`,
        );
      const references: HeapProfile[][] = [];
      for (const r of action.references?.records ?? []) {
        const series = (await this.load(r.profiles)).map((p) => p.profile);
        if (series.length >= 2) references.push(series);
      }
      const report = diagnosisReport(this.core, action, loaded, references, this.config.topN);
      this.shellStats.diagnoses++;
      const top = report.culprits[0]?.frames[0];
      this.deps.log.info(
        {
          id: report.id,
          component: report.component,
          host: report.host,
          top: top === undefined ? undefined : `${top.fn} ${top.file}:${top.line}`,
          profiles: report.profiles.length,
          references: report.references.length,
        },
        "leak diagnosed",
      );
      this.core.diagnosed(action.caseId, report);
    } catch (err) {
      this.shellStats.diagnoseErrors++;
      this.deps.log.warn({ case: action.caseId, err: (err as Error).message }, "diagnosis failed");
      this.core.diagnosisFailed(action.caseId, (err as Error).message);
    }
  }

  /** The profiles still stored, in order; those gone are skipped. */
  private async load(refs: readonly ProfileRef[]): Promise<{ ref: ProfileRef; profile: HeapProfile }[]> {
    const out: { ref: ProfileRef; profile: HeapProfile }[] = [];
    for (const ref of refs) {
      const profile = await this.profiles.get(ref.id);
      if (profile !== undefined) out.push({ ref, profile });
    }
    return out;
  }

  private async report(caseId: string, report: DiagnosisReport): Promise<void> {
    try {
      await this.deps.onDiagnosis(report);
      this.core.reported(caseId);
    } catch (err) {
      this.shellStats.reportErrors++;
      this.deps.log.warn({ id: report.id, err: (err as Error).message }, "diagnosis not delivered; retrying");
      await sleep(backoffMs(Math.min(this.shellStats.reportErrors, 8), 1000, 60_000));
      this.core.reportFailed(caseId);
    }
  }

  private async deleteProfiles(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      try {
        await this.profiles.delete(id);
        this.shellStats.profilesDeleted++;
      } catch (err) {
        // Left behind: the bucket's max age removes it.
        this.shellStats.deleteErrors++;
        this.deps.log.warn({ id, err: (err as Error).message }, "profile not deleted");
      }
    }
    this.core.deleted(ids);
  }

  /** Saves the parts of the state that changed; one save at a time, failed parts retried next time. */
  private persist(): Promise<void> {
    this.persisting = this.persisting.then(async () => {
      for (const p of this.core.takeDirty()) this.unsaved.add(p);
      for (const part of [...this.unsaved]) {
        const key = `${this.deps.stateKey}.${part}`;
        const value = this.core.part(part);
        try {
          if (value === undefined) await this.kv.delete(key);
          else await this.kv.put(key, JSON.stringify(value));
          this.unsaved.delete(part);
          this.shellStats.stateWrites++;
        } catch (err) {
          this.shellStats.stateWriteErrors++;
          this.deps.log.warn({ key, err: (err as Error).message }, "snapshot state not saved; retrying");
        }
      }
    });
    return this.persisting;
  }
}

/** The saved state of one sink, or undefined when there is none. */
async function loadState(kv: KV, stateKey: string): Promise<CoreState | undefined> {
  const keys: string[] = [];
  for await (const k of await kv.keys(`${stateKey}.>`)) keys.push(k);
  if (keys.length === 0) return undefined;
  const state: CoreState = emptyCoreState();
  for (const key of keys) {
    const entry = await kv.get(key);
    if (entry === null || entry.operation !== "PUT" || entry.length === 0) continue;
    const value = entry.json<unknown>();
    const part = key.slice(stateKey.length + 1);
    if (part === "meta") {
      const meta = value as CoreState["meta"];
      if (meta.v !== 1)
        throw new Error(`snapshot state ${key} has version ${String(meta.v)}; this resin reads 1`);
      state.meta = meta;
    } else if (part === "references") state.references = value as CoreState["references"];
    else if (part.startsWith("case.")) state.cases[part.slice(5)] = value as CoreState["cases"][string];
    else if (part.startsWith("suspects."))
      state.suspects[part.slice(9)] = value as CoreState["suspects"][string];
  }
  return state;
}

/**
 * A closed window as the core takes it: the hosts' attributes, and the window's level of every
 * process series of the components `interesting` accepts.
 */
export function windowInputs(
  result: WindowResult,
  seriesInfo: (slot: number) => SeriesInfo | undefined,
  interesting: (component: string) => boolean = () => true,
): { streams: StreamInfo[]; points: SeriesPoint[] } {
  const w = result.window;
  const streams: StreamInfo[] = [];
  for (const s of w.streams)
    if (interesting(s.component))
      streams.push({
        host: s.host,
        component: s.component,
        cluster: s.cluster,
        version: s.version,
        vms: s.vms,
      });
  const points: SeriesPoint[] = [];
  for (let i = 0; i < w.slots.length; i++) {
    const info = seriesInfo(w.slots[i]!);
    if (info === undefined || !interesting(info.component)) continue;
    points.push({
      host: info.host,
      component: info.component,
      process: info.name,
      pid: info.pid,
      ts: w.start,
      bytes: w.values[i]!,
    });
  }
  return { streams, points };
}

/** The diagnosis of a `diagnose` action from the profiles loaded for it, as a report (pure). */
export function diagnosisReport(
  core: SnapshotCore,
  action: Extract<Action, { kind: "diagnose" }>,
  loaded: { ref: ProfileRef; profile: HeapProfile }[],
  references: HeapProfile[][],
  topN: number,
): DiagnosisReport {
  const { trace: t, candidate } = action;
  const diagnosis = diagnose(
    {
      profiles: loaded.map((p) => p.profile),
      references,
      estimate: { pattern: candidate.pattern, growthBytesPerHour: candidate.growthBytesPerHour },
    },
    { topN },
  );
  const c = core.cases().find((x) => x.id === action.caseId);
  return buildReport({
    caseId: action.caseId,
    trace: t,
    candidate,
    candidates: c === undefined ? [] : core.candidatesOf(c),
    traces: c?.traces ?? [],
    diagnosis,
    profiles: loaded,
    references: action.references,
    diagnosedAt: core.now,
  });
}
