/**
 * Root-cause accuracy through the snapshot sink's own decisions (`resin eval --diagnose-sim …
 * --diagnose-references sink`): the detector runs over the telemetry file, and every closed
 * window and suspect event goes, in event time, into the sink's core (sinks/snapshot/core.ts), as
 * `resin run --snapshots` does. The core chooses which hosts of each leaking component to trace,
 * when to collect, which healthy hosts serve as references, when a trace is complete and what
 * to diagnose, under its collection budget; simulated agents answer in-process (the simulator's
 * heap model, as `resin agent-sim` answers over NATS), instantly. Each report is scored against
 * the truth record of its target.
 *
 * Unlike eval/diagnosis.ts, which diagnoses every true positive with a fixed policy, this
 * measures what an operator gets: one diagnosis per case (a leaking component's best-ranked
 * suspects), with the sink's reference choice and completion rules.
 */
import { from } from "rxjs";
import { AgentSourceError } from "../lib/agent/protocol.ts";
import type { TraceSpec } from "../lib/agent/responder.ts";
import type { HeapProfile } from "../lib/heap/profile.ts";
import { openInput, readLineBatches } from "../lib/ndjson.ts";
import { detectGraph } from "../pipelines/detect.ts";
import type { SuspectEvent } from "../schemas/suspect.ts";
import { simulatedProfileSource } from "../simulate/agents.ts";
import { leakStackOf } from "../simulate/heap.ts";
import type { Plan } from "../simulate/plan.ts";
import { parseSnapshotSinkConfig } from "../sinks/snapshot/config.ts";
import { type Action, type SeriesPoint, SnapshotCore, type StreamInfo } from "../sinks/snapshot/core.ts";
import type { DiagnosisReport } from "../sinks/snapshot/report.ts";
import { diagnosisReport, failureOfCode, windowInputs } from "../sinks/snapshot/sink.ts";
import {
  DEFAULT_DIAGNOSIS_OPTIONS,
  type DiagnosisCase,
  type DiagnosisMetrics,
  type DiagnosisResult,
  rankOf,
  scoreCases,
} from "./diagnosis.ts";
import type { TruthEval } from "./types.ts";

export const SINK_DIAGNOSIS_RULE =
  "Root-cause accuracy through the snapshot sink (sinks/snapshot, default settings, event clock): the " +
  "detector's windows and suspects feed the sink's core, which picks the traced hosts, the references and " +
  "when to diagnose; simulated agents answer with the simulator's heap profiles. Each diagnosis report is " +
  "scored against the truth record of its target: right at rank k when one of its first k culprits has the " +
  "leaking stack's leaf function and file. Reports on targets without a truth record (false positives) are " +
  "counted apart.";

interface StoredWindow {
  end: number;
  streams: StreamInfo[];
  points: SeriesPoint[];
  events: SuspectEvent[];
}

export interface SinkDiagnosisExtra {
  /** Diagnosis reports the sink made. */
  reports: number;
  /** ... on targets that have no truth record (resin's false positives). */
  onFalsePositives: number;
  /** Cases (leaking components) the sink opened. */
  cases: number;
  /** Traces given up on (the host failed, the process went away). */
  failedTraces: number;
}

/** Runs the detector over the telemetry and the snapshot sink's core over its output. */
export async function evaluateSinkDiagnosis(
  plan: Plan,
  telemetryPath: string,
  truth: readonly TruthEval[],
  lateness = { allowedLatenessMs: 600_000 },
): Promise<DiagnosisResult & { sink: SinkDiagnosisExtra }> {
  // Detection first, keeping what the sink would be given window by window: the core's choices
  // depend only on these inputs and the event time, so feeding them afterwards is the same.
  const windows: StoredWindow[] = [];
  const graph = detectGraph(from(readLineBatches(openInput(telemetryPath))), { window: lateness });
  let current: StoredWindow | undefined;
  graph.windows.subscribe((r) => {
    current = { end: r.window.end, ...windowInputs(r, graph.seriesInfo), events: [] };
    windows.push(current);
  });
  await new Promise<void>((resolve, reject) =>
    graph.suspects.subscribe({ next: (e) => current?.events.push(e), error: reject, complete: resolve }),
  );

  const config = parseSnapshotSinkConfig({ clock: "event" });
  const core = new SnapshotCore(config);
  const sources = new Map<string, ReturnType<typeof simulatedProfileSource>>();
  const sourceOf = (host: string) => {
    let s = sources.get(host);
    if (s === undefined) {
      s = simulatedProfileSource(plan, host);
      sources.set(host, s);
    }
    return s;
  };
  const osOf = new Map(plan.hosts.map((h) => [h.id, h.os]));
  const stored = new Map<string, HeapProfile>();
  const reports: DiagnosisReport[] = [];
  let failedTraces = 0;
  let seq = 0;

  const perform = async (action: Action): Promise<void> => {
    switch (action.kind) {
      case "start":
      case "collect": {
        const t = action.trace;
        const spec: TraceSpec = { ...t, samplingIntervalBytes: config.samplingIntervalBytes };
        try {
          if (action.kind === "start") {
            await sourceOf(t.host).start?.(spec, action.at);
            core.started(t.trace, { os: osOf.get(t.host) });
          } else {
            const profile = await sourceOf(t.host).collect(spec, action.at);
            const id = `${t.trace}/${seq++}`;
            stored.set(id, profile);
            const bytes = profile.stacks.reduce((a, x) => a + x.bytes, 0);
            core.collected(t.trace, { id, takenAt: action.at, bytes, os: osOf.get(t.host) });
          }
        } catch (err) {
          if (!(err instanceof AgentSourceError)) throw err;
          if (failureOfCode(err.code, err.message).effect === "fatal") failedTraces++;
          core.failed(t.trace, failureOfCode(err.code, err.message));
        }
        return;
      }
      case "stop":
        core.stopped(action.trace.trace);
        return;
      case "diagnose": {
        const load = <R extends { id: string }>(refs: readonly R[]) =>
          refs.flatMap((ref) => {
            const profile = stored.get(ref.id);
            return profile === undefined ? [] : [{ ref, profile }];
          });
        const loaded = load(action.trace.ring);
        const references = (action.references?.records ?? [])
          .map((r) => load(r.profiles).map((p) => p.profile))
          .filter((series) => series.length >= 2);
        if (loaded.length < 2) core.diagnosisFailed(action.caseId, "fewer than 2 profiles");
        else core.diagnosed(action.caseId, diagnosisReport(core, action, loaded, references, config.topN));
        return;
      }
      case "report":
        reports.push(action.report);
        core.reported(action.caseId);
        return;
      case "delete":
        for (const id of action.ids) stored.delete(id);
        core.deleted(action.ids);
        return;
    }
  };
  const drain = async () => {
    // Every answer may make more due (a collect → a diagnosis → a report); a bound guards a loop.
    for (let round = 0; round < 10_000; round++) {
      const actions = core.due();
      if (actions.length === 0) return;
      for (const a of actions) await perform(a);
    }
    throw new Error("the snapshot core kept handing out actions at one time");
  };

  for (const w of windows) {
    core.advance(w.end);
    core.observeWindow(w.streams, w.points);
    for (const e of w.events) {
      core.advance(e.detectedAt);
      core.observeSuspect(e);
    }
    await drain();
  }
  // After the telemetry ends, the world goes on (the simulator plans beyond its last tick):
  // let the traces in hand finish on the event clock, as agents would keep answering.
  const last = windows.at(-1)?.end ?? 0;
  for (let t = last; t <= last + config.maxTraceMs; t += 30 * 60_000) {
    core.advance(t);
    await drain();
  }

  const byTarget = new Map(
    truth.map((t) => [`${t.record.host}/${t.record.component}/${t.record.process}`, t]),
  );
  const cases: DiagnosisCase[] = [];
  let onFalsePositives = 0;
  for (const r of reports) {
    const t = byTarget.get(`${r.host}/${r.component}/${r.process}`);
    if (t === undefined || t.record.kind !== "process") {
      onFalsePositives++;
      continue;
    }
    const entry = plan.leaks.find(
      (l) => l.host.id === r.host && l.comp.name === r.component && l.proc.name === r.process,
    );
    if (entry === undefined)
      throw new Error(`the simulation has no leak ${t.key}: it does not match the truth`);
    const truthLeaf = (t.record.stack ?? leakStackOf(plan, entry))[0]!;
    cases.push({
      host: r.host,
      component: r.component,
      process: r.process,
      truth: t.index,
      pid: r.pid,
      truthPattern: t.record.pattern,
      ...(t.record.cause !== undefined ? { cause: t.record.cause } : {}),
      estimate: { pattern: r.pattern, growthBytesPerHour: r.growthBytesPerHour },
      detectedGrowthBytesPerHour: r.growthBytesPerHour,
      truthLeaf,
      from: r.profiles[0]?.takenAt ?? r.detectedAt,
      to: r.profiles.at(-1)?.takenAt ?? r.detectedAt,
      profiles: r.profiles.length,
      referenceHosts: r.references.map((x) => x.host),
      traceEnd: r.completion.startsWith("time limit") ? "max-duration" : "complete",
      diagnosed: true,
      method: r.method,
      rank: rankOf(r.culprits, truthLeaf),
      culprits: r.culprits.slice(0, 3).map((c) => ({
        frame: c.frames[0]!,
        growthBytes: c.growthBytes,
        excessBytes: 0, // not in the report: its culprits carry their growth and score only
        score: c.score,
        reason: c.reason,
      })),
      dropped: r.dropped,
    });
  }
  const byPattern: Record<string, DiagnosisMetrics> = {};
  for (const p of [...new Set(cases.map((c) => c.truthPattern))].sort())
    byPattern[p] = scoreCases(cases.filter((c) => c.truthPattern === p));
  return {
    rule: SINK_DIAGNOSIS_RULE,
    options: DEFAULT_DIAGNOSIS_OPTIONS,
    overall: scoreCases(cases),
    byPattern,
    cases,
    sink: { reports: reports.length, onFalsePositives, cases: core.stats.casesOpened, failedTraces },
  };
}
