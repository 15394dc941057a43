import { describe, expect, it } from "vitest";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import {
  SnapshotSinkConfig as Schema,
  type SnapshotSinkConfig,
  type SnapshotSinkConfigInput,
} from "./config.ts";
import { type Action, type CoreState, SnapshotCore, type TraceState } from "./core.ts";
import type { DiagnosisReport } from "./report.ts";

const MIN = 60_000;
const H = 60 * MIN;
const T0 = Date.UTC(2026, 0, 5);
const MiB = 1024 * 1024;

function suspect(host: string, severity: number, over: Partial<SuspectEvent> = {}): SuspectEvent {
  return {
    v: 1,
    id: `api/${host}/api/${over.pid ?? 100}`,
    state: "open",
    kind: "process",
    component: "api",
    host,
    process: "api",
    pid: 100,
    start: T0 - 10 * H,
    end: T0,
    detectedAt: T0,
    severity,
    pattern: "steady",
    growthBytesPerHour: 10 * MiB,
    ...over,
  };
}

function core(config: SnapshotSinkConfigInput = {}, state?: CoreState): SnapshotCore {
  const c = new SnapshotCore(Schema.parse(config) as SnapshotSinkConfig, state);
  c.advance(T0);
  return c;
}

const kinds = (actions: Action[]) =>
  actions.map((a) => ("trace" in a ? `${a.kind} ${a.trace.host}` : a.kind)).sort();
const traceOf = (a: Action): TraceState => (a as { trace: TraceState }).trace;

/** Answers every start with success and every collect with a profile of `bytes(host, n)`. */
function answer(c: SnapshotCore, actions: Action[], bytes: (host: string, n: number) => number): void {
  for (const a of actions) {
    if (a.kind === "start") c.started(a.trace.trace, { os: "linux" });
    else if (a.kind === "collect")
      c.collected(a.trace.trace, {
        id: `${a.trace.trace}/${a.trace.ring.length}`,
        takenAt: a.at,
        bytes: bytes(a.trace.host, a.trace.ring.length),
      });
    else if (a.kind === "stop") c.stopped(a.trace.trace);
    else if (a.kind === "delete") c.deleted(a.ids);
  }
}

/** Answers until nothing more is due now (a trace on event time catches up with the clock). */
function settle(c: SnapshotCore, bytes: (host: string, n: number) => number): void {
  for (let actions = c.due(); actions.length > 0; actions = c.due()) answer(c, actions, bytes);
}

const report = (caseId: string) => ({ id: "r1", caseId }) as unknown as DiagnosisReport;

describe("SnapshotCore", () => {
  it("opens one case per component and traces its top 3 suspects by rank", () => {
    const c = core();
    c.observeSuspect(suspect("h-low", 2));
    c.observeSuspect(suspect("h-top", 9));
    c.observeSuspect(suspect("h-mid", 5));
    c.observeSuspect(suspect("h-high", 7));
    c.observeSuspect(suspect("k1", 50, { kind: "kernel", component: "kernel", id: "k" }));
    expect(c.stats.casesOpened).toBe(1);
    expect(c.stats.kernelSkipped).toBe(1);
    expect(kinds(c.due())).toEqual(["start h-high", "start h-mid", "start h-top"]);
    expect(c.due()).toEqual([]); // in flight
  });

  it("collects at start, then every interval, within the cluster budget (counted when held back)", () => {
    const c = core({ maxCollectionsPerClusterHour: 5, tracesPerCase: 3 });
    for (const h of ["a", "b", "c"]) c.observeSuspect(suspect(h, 5));
    answer(c, c.due(), () => 0);
    const first = c.due();
    expect(kinds(first)).toEqual(["collect a", "collect b", "collect c"]);
    answer(c, first, () => MiB);
    expect(c.due()).toEqual([]);
    c.advance(T0 + 30 * MIN);
    // 3 taken in this hour, room for 2: the third trace waits (all hosts are in an unknown cluster).
    const second = c.due();
    expect(second).toHaveLength(2);
    expect(c.stats.collectionsDeferred).toBe(1);
    answer(c, second, () => 2 * MiB);
    c.advance(T0 + 45 * MIN);
    expect(c.due()).toEqual([]);
    c.advance(T0 + H);
    // The first three collections left the hour: room for all three traces again.
    expect(kinds(c.due())).toEqual(["collect a", "collect b", "collect c"]);
  });

  it("replaces a host that fails for good, and one that keeps failing, with the next candidate", () => {
    const c = core({ tracesPerCase: 2, maxFailuresPerHost: 2, retryDelayMs: 5 * MIN });
    for (const [h, s] of [
      ["a", 9],
      ["b", 8],
      ["c", 7],
      ["d", 6],
    ] as const)
      c.observeSuspect(suspect(h, s));
    const starts = c.due();
    expect(kinds(starts)).toEqual(["start a", "start b"]);
    c.failed(traceOf(starts[0]!).trace, { effect: "fatal", message: "no-such-process" });
    c.failed(traceOf(starts[1]!).trace, { effect: "retry", message: "timeout" });
    expect(kinds(c.due())).toEqual(["start c"]); // b waits for its retry
    c.advance(T0 + 5 * MIN);
    const retry = c.due().filter((a) => traceOf(a).host === "b");
    expect(kinds(retry)).toEqual(["start b"]);
    c.failed(traceOf(retry[0]!).trace, { effect: "retry", message: "timeout again" });
    expect(kinds(c.due())).toEqual(["start d"]);
    expect(c.stats.hostsGivenUp).toBe(2);
    expect(c.cases()[0]!.traces.map((t) => [t.host, t.status])).toEqual([
      ["a", "failed"],
      ["b", "failed"],
      ["c", "starting"],
      ["d", "starting"],
    ]);
  });

  it("fails the case when every candidate failed, and opens a new one for a new suspect", () => {
    const c = core({ tracesPerCase: 1 });
    c.observeSuspect(suspect("a", 9));
    c.failed(traceOf(c.due()[0]!).trace, { effect: "fatal", message: "gone" });
    c.due();
    expect(c.stats.casesFailed).toBe(1);
    expect(c.activeCases).toBe(0);
    c.observeSuspect(suspect("a", 9)); // the same suspect again: handled
    expect(c.stats.replaysIgnored).toBe(1);
    c.observeSuspect(suspect("b", 3));
    expect(c.stats.casesOpened).toBe(2);
  });

  it("diagnoses the first trace whose profiles complete its pattern and stops the others", () => {
    const c = core({ tracesPerCase: 2, minProfiles: 3 });
    c.observeSuspect(suspect("leaky", 9));
    c.observeSuspect(suspect("noisy", 8));
    const grow = (host: string, n: number) => (host === "leaky" ? (10 + n) * MiB : (n % 2) * 5 * MiB);
    for (let i = 0; i < 4; i++) {
      c.advance(T0 + i * 30 * MIN);
      answer(c, c.due(), grow);
    }
    const actions = c.due();
    expect(kinds(actions)).toEqual(["diagnose leaky", "stop leaky", "stop noisy"]);
    const d = actions.find((a) => a.kind === "diagnose") as Extract<Action, { kind: "diagnose" }>;
    expect(d.trace.ring).toHaveLength(3);
    expect(d.trace.outcome).toMatch(/steady growth: R² 1.00/);
    expect(d.candidate).toMatchObject({ host: "leaky", pattern: "steady", severity: 9 });
    expect(c.cases()[0]!.traces.find((t) => t.host === "noisy")?.outcome).toBe(
      "stopped: leaky completed first",
    );

    answer(c, actions, () => 0);
    c.diagnosed(d.caseId, report(d.caseId));
    const reporting = c.due();
    expect(kinds(reporting)).toEqual(["report"]);
    c.reported(d.caseId);
    expect(c.activeCases).toBe(0);
    expect(c.stats.casesDiagnosed).toBe(1);

    // Within the cool-down a new suspect of the component only joins the record.
    c.observeSuspect(suspect("late", 4));
    expect(c.stats.casesSuppressed).toBe(1);
    c.advance(T0 + 26 * H);
    c.observeSuspect(suspect("later", 4));
    expect(c.activeCases).toBe(1);
  });

  it("ends a trace at the time limit, diagnosing it with 2 profiles or more", () => {
    const c = core({ tracesPerCase: 1, maxTraceMs: 2 * H });
    c.observeSuspect(suspect("a", 9));
    const noisy = (_: string, n: number) => [5, 1, 6, 2, 5, 1][n]! * MiB;
    for (let i = 0; i <= 4; i++) {
      c.advance(T0 + i * 30 * MIN);
      settle(c, noisy);
    }
    const t = c.cases()[0]!.traces[0]!;
    expect(t.status).toBe("complete");
    expect(t.outcome).toMatch(/time limit: 4 profiles in 2.0 h/);
  });

  it("on event time, collects at its schedule however far the clock jumped, within the budget", () => {
    const c = core({ tracesPerCase: 1, maxCollectionsPerClusterHour: 1, minProfiles: 20 });
    c.observeSuspect(suspect("a", 9));
    answer(c, c.due(), () => 0); // started at T0
    c.advance(T0 + 5 * H); // a backlog of telemetry went through at once
    const times: number[] = [];
    for (let actions = c.due(); actions.length > 0; actions = c.due()) {
      for (const a of actions) if (a.kind === "collect") times.push(a.at - T0);
      answer(c, actions, (_, n) => n * MiB);
    }
    // Due every 30 min from T0, but 1 per hour: each waits for the previous one to be an hour old.
    expect(times.map((t) => t / MIN)).toEqual([0, 60, 120, 180, 240, 300]);
    expect(c.stats.collectionsDeferred).toBeGreaterThan(0);
  });

  it("stops tracing a suspect the detector resolved and moves to the next", () => {
    const c = core({ tracesPerCase: 1 });
    c.observeSuspect(suspect("a", 9));
    c.observeSuspect(suspect("b", 1));
    answer(c, c.due(), () => 0);
    c.observeSuspect(suspect("a", 9, { state: "resolved" }));
    expect(kinds(c.due())).toEqual(["start b", "stop a"]);
  });

  it("starts a trace afresh when the agent lost it, dropping the profiles of the lost session", () => {
    const c = core({ tracesPerCase: 1 });
    c.observeSuspect(suspect("a", 9));
    answer(c, c.due(), () => 0);
    answer(c, c.due(), () => MiB);
    c.advance(T0 + 30 * MIN);
    const collect = c.due();
    c.failed(traceOf(collect[0]!).trace, { effect: "restart", message: "unknown-trace" });
    expect(c.stats.tracesLost).toBe(1);
    expect(kinds(c.due())).toEqual(["delete", "start a"]);
    expect(c.cases()[0]!.traces[0]!.ring).toEqual([]);
  });

  it("resumes from its saved state as plain JSON", () => {
    const c = core({ tracesPerCase: 1 });
    c.observeSuspect(suspect("a", 9));
    answer(c, c.due(), () => 0);
    answer(c, c.due(), () => MiB);
    c.advance(T0 + 10 * MIN);
    // The process dies here; its state (as saved) is read by the next one.
    const saved = JSON.parse(JSON.stringify(c.snapshot())) as CoreState;
    const next = core({ tracesPerCase: 1 }, saved);
    expect(next.due()).toEqual([]); // the next collection is not due yet
    next.advance(T0 + 30 * MIN);
    const resumed = next.due();
    expect(kinds(resumed)).toEqual(["collect a"]);
    expect(traceOf(resumed[0]!).ring).toHaveLength(1);
    expect(traceOf(resumed[0]!).trace).toBe(c.cases()[0]!.traces[0]!.trace);
    // The same open suspect replayed after the restart changes nothing.
    next.observeSuspect(suspect("a", 9));
    expect(next.activeCases).toBe(1);
    expect(next.cases()[0]!.traces).toHaveLength(1);
  });

  it("names what changed, part by part, for the state store", () => {
    const c = core();
    c.observeSuspect(suspect("a", 9));
    expect(c.takeDirty().sort()).toEqual(["case.api", "suspects.api"]);
    c.due();
    expect(c.takeDirty().sort()).toEqual(["case.api", "meta"]);
    expect(c.part("case.api")).toMatchObject({ component: "api", status: "tracing" });
    expect(c.part("case.other")).toBeUndefined();
  });

  it("takes a reference from a healthy host of the same cluster and version and offers it to the diagnosis", () => {
    const c = core({ tracesPerCase: 1, referenceProfiles: 2, minProfiles: 3 });
    c.observeSuspect(suspect("sick", 9));
    c.observeWindow(
      [
        { host: "sick", component: "api", cluster: "c1", version: "1.0", vms: 3 },
        { host: "well", component: "api", cluster: "c1", version: "1.0", vms: 1 },
        { host: "elsewhere", component: "api", cluster: "c2", version: "1.0", vms: 0 },
      ],
      [
        { host: "sick", component: "api", process: "api", pid: 100, ts: T0 - H, bytes: 5 },
        { host: "well", component: "api", process: "api", pid: 200, ts: T0 - H, bytes: 5 },
        { host: "elsewhere", component: "api", process: "api", pid: 300, ts: T0 - H, bytes: 5 },
      ],
    );
    expect(c.cases()).toHaveLength(1);
    const grow = (_: string, n: number) => (10 + n) * MiB;
    answer(c, c.due(), grow); // start sick: its OS is known now
    const ref = c.due();
    expect(kinds(ref)).toEqual(["collect sick", "start well"]);
    expect(traceOf(ref[1]!)).toMatchObject({ purpose: "reference", pid: 200, cluster: "c1" });
    answer(c, ref, grow);
    let d: Extract<Action, { kind: "diagnose" }> | undefined;
    for (let i = 1; i <= 4 && d === undefined; i++) {
      c.advance(T0 + i * 30 * MIN);
      const actions = c.due();
      d = actions.find((a) => a.kind === "diagnose") as typeof d;
      answer(c, actions, grow);
    }
    expect(c.references()).toHaveLength(1);
    expect(c.references()[0]).toMatchObject({
      host: "well",
      fingerprint: { component: "api", cluster: "c1", os: "linux", version: "1.0", date: "2026-01-05" },
    });
    expect(c.stats.referencesTaken).toBe(1);
    expect(d?.trace.host).toBe("sick");
    expect(d?.references?.match).toBe("cluster");
    expect(d?.references?.records.map((r) => r.host)).toEqual(["well"]);
    expect(d?.candidate.vms).toBe(3);
  });

  it("waits a little for a reference being taken before diagnosing", () => {
    const c = core({ tracesPerCase: 1, referenceProfiles: 4, minProfiles: 3 });
    c.observeSuspect(suspect("sick", 9));
    c.observeWindow(
      [
        { host: "sick", component: "api", cluster: "c1", version: "1.0", vms: 3 },
        { host: "well", component: "api", cluster: "c1", version: "1.0", vms: 1 },
      ],
      [
        { host: "sick", component: "api", process: "api", pid: 100, ts: T0 - H, bytes: 5 },
        { host: "well", component: "api", process: "api", pid: 200, ts: T0 - H, bytes: 5 },
      ],
    );
    const grow = (_: string, n: number) => (10 + n) * MiB;
    let diagnosedAt: number | undefined;
    let d: Extract<Action, { kind: "diagnose" }> | undefined;
    for (let i = 0; i <= 6 && d === undefined; i++) {
      c.advance(T0 + i * 30 * MIN);
      for (let actions = c.due(); actions.length > 0 && d === undefined; actions = c.due()) {
        d = actions.find((a) => a.kind === "diagnose") as typeof d;
        if (d !== undefined) diagnosedAt = c.now;
        answer(c, actions, grow);
      }
    }
    // The suspect's trace was complete at T0 + 1 h (3 profiles); the reference (4) at T0 + 1.5 h,
    // on the same schedule as the suspect's.
    expect(c.references()[0]?.profiles.map((p) => (p.takenAt - T0) / MIN)).toEqual([0, 30, 60, 90]);
    expect(diagnosedAt).toBe(T0 + 90 * MIN);
    expect(d?.references?.records).toHaveLength(1);
  });

  it("records the memory series of the suspects it follows and ranks by clarity", () => {
    const c = core({ tracesPerCase: 1, severityBand: 10 });
    c.observeSuspect(suspect("clear", 5));
    c.observeSuspect(suspect("noisy", 6));
    // Only the first case's trace starts now; feed windows before anything is due.
    for (let i = 0; i < 6; i++) {
      c.observeWindow(
        [],
        [
          { host: "clear", component: "api", process: "api", pid: 100, ts: T0 + i * H, bytes: 100 + 10 * i },
          {
            host: "noisy",
            component: "api",
            process: "api",
            pid: 100,
            ts: T0 + i * H,
            bytes: [1, 90, 5, 80, 2, 95][i]!,
          },
        ],
      );
    }
    expect(c.candidatesOf(c.cases()[0]!).find((x) => x.host === "clear")?.series.ts).toHaveLength(6);
    expect(kinds(c.due())).toEqual(["start clear"]);
  });
});
