/**
 * The snapshot and ticket sinks end to end on a real nats-server, against a REAL leaking Node.js
 * process (lib/heap/fixtures/leaky-service.js) served by a SnapshotResponder with the Node.js
 * source for host "h1": an open suspect for that process makes the sink trace it, collect real
 * heap profiles into the Object Store, decide the trace is complete, diagnose it and write a
 * ticket that names the leaking function first. The sink is restarted mid-trace (a new
 * instance on the same NATS): it resumes the same trace from its KV state, and the profiles
 * taken before the restart are in the diagnosis and still in NATS. No timing assertions.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeSnapshotSource } from "../../agent/snapshot-node.ts";
import { ProfileStore } from "../../lib/agent/profiles.ts";
import { AgentSourceError, SnapshotResponder } from "../../lib/agent/responder.ts";
import {
  LEAKY_SERVICE_PATH,
  type LeakyService,
  startLeakyService,
} from "../../lib/heap/fixtures/leaky-service.ts";
import { connectWithRetry, NatsSettings } from "../../lib/nats.ts";
import { streamMessages } from "../../lib/testing/live.ts";
import { startNats, type TestServer, waitFor } from "../../lib/testing/servers.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import { TicketSink } from "../ticket/sink.ts";
import type { SnapshotSinkConfigInput } from "./config.ts";
import type { CaseState } from "./core.ts";
import { DiagnosisReport } from "./report.ts";
import { SNAPSHOT_STATE_BUCKET, SnapshotSink } from "./sink.ts";

const log = pino({ level: process.env.RESIN_TEST_LOG ?? "silent" });
let server: TestServer;
let nc: NatsConnection;
let service: LeakyService;
let responder: SnapshotResponder;
let ticketsDir: string;
const sinks: { close(): Promise<unknown> }[] = [];

beforeAll(async () => {
  server = await startNats();
  nc = await connectWithRetry(NatsSettings.parse({ servers: server.url }));
  service = await startLeakyService();
  const url = await service.inspectorUrl();
  responder = await SnapshotResponder.start(nc, {
    host: "h1",
    source: new NodeSnapshotSource({ inspectorFor: async () => url }),
    log,
  });
  ticketsDir = mkdtempSync(join(tmpdir(), "resin-tickets-"));
});

afterAll(async () => {
  for (const s of sinks) await s.close().catch(() => undefined);
  await responder?.close();
  await service?.stop();
  await nc?.close();
  await server?.dispose();
  rmSync(ticketsDir, { recursive: true, force: true });
});

const config: SnapshotSinkConfigInput = {
  clock: "wall",
  collectIntervalMs: 400,
  minProfiles: 4,
  // The whole trace counts for completion; it ends after a minute whatever the profiles say.
  completionWindowMs: 3_600_000,
  maxTraceMs: 60_000,
  samplingIntervalBytes: 8192,
  maxCollectionsPerClusterHour: 10_000,
  requestTimeoutMs: 60_000,
  retryDelayMs: 200,
  traceTtlMs: 600_000,
  pollMs: 50,
};

async function openSinks(): Promise<{ snapshots: SnapshotSink; tickets: TicketSink }> {
  const tickets = await TicketSink.open(nc, { dir: ticketsDir }, { log });
  const snapshots = await SnapshotSink.open(nc, config, {
    log,
    onDiagnosis: async (r) => {
      await tickets.deliver(r);
    },
  });
  sinks.push(snapshots, tickets);
  return { snapshots, tickets };
}

describe("snapshot sink on a real leaking Node.js process", () => {
  it("traces it, survives a restart mid-trace, and files a ticket naming the leaking function first", async () => {
    const now = Date.now();
    const suspect: SuspectEvent = {
      v: 1,
      id: `api/h1/leaky-service/${service.pid}`,
      state: "open",
      kind: "process",
      component: "api",
      host: "h1",
      process: "leaky-service",
      pid: service.pid,
      start: now - 3_600_000,
      end: now,
      detectedAt: now,
      severity: 6.5,
      pattern: "steady",
      // What its memory telemetry would say: 16 KiB per 10 ms tick, with room to spare.
      growthBytesPerHour: 12e9,
    };
    service.go();

    // First instance: traces until it holds at least one profile, then stops (a resin restart).
    const first = await openSinks();
    first.snapshots.suspect(suspect);
    const trace = () => first.snapshots.core.cases()[0]?.traces[0];
    await waitFor("a first profile", () => (trace()?.ring.length ?? 0) >= 1, 120_000);
    const before = trace()!;
    expect(before).toMatchObject({ host: "h1", pid: service.pid, status: "tracing" });
    expect(await first.snapshots.close()).toEqual({ undelivered: 0 });
    await first.tickets.close();
    const ringBefore = first.snapshots.core.cases()[0]!.traces[0]!.ring.map((p) => p.id);
    expect(ringBefore.length).toBeGreaterThanOrEqual(1);
    expect(ringBefore.length).toBeLessThan(4); // not complete yet: the restart is mid-trace

    // What survives: the case in KV, the profiles in the Object Store, the trace on the agent.
    const kv = await new Kvm(nc).open(SNAPSHOT_STATE_BUCKET);
    const saved = (await kv.get("snapshots.case.api"))?.json<CaseState>();
    expect(saved?.traces[0]?.trace).toBe(before.trace);
    expect(saved?.traces[0]?.ring.map((p) => p.id)).toEqual(ringBefore);
    expect(responder.traces).toEqual([before.trace]);

    // Second instance, same NATS: resumes the same trace and finishes the job.
    const second = await openSinks();
    expect(second.snapshots.core.cases()[0]?.traces[0]?.trace).toBe(before.trace);
    second.snapshots.suspect(suspect); // the pipeline replays from its checkpoint: no second case
    expect(second.snapshots.core.cases()).toHaveLength(1);
    expect(second.snapshots.core.cases()[0]!.traces).toHaveLength(1);

    await waitFor(
      "a ticket",
      () => second.snapshots.stats.casesDiagnosed >= 1 || second.snapshots.stats.casesFailed >= 1,
      180_000,
    );
    expect(second.snapshots.stats.casesFailed).toBe(0);
    const files = ["json", "md", "html"].map((ext) => join(ticketsDir, `${reportIdIn(ticketsDir)}.${ext}`));
    for (const f of files) expect(existsSync(f)).toBe(true);
    const report = DiagnosisReport.parse(JSON.parse(readFileSync(files[0]!, "utf8")));

    const summary = report.culprits.map((c) => `${c.frames[0]?.fn} ${c.reason}`).join("\n");
    const top = report.culprits[0]!.frames[0]!;
    expect(top.fn, summary).toBe("retainSessionBuffers");
    expect(top.file).toBe(pathToFileURL(LEAKY_SERVICE_PATH).href);
    expect(top.line).toBeGreaterThan(0);
    expect(readFileSync(files[1]!, "utf8")).toContain("1. `retainSessionBuffers`");
    expect(readFileSync(files[2]!, "utf8")).toContain("retainSessionBuffers");
    expect(report).toMatchObject({ host: "h1", pid: service.pid, component: "api", pattern: "steady" });
    expect(report.candidates).toEqual([expect.objectContaining({ host: "h1", outcome: "diagnosed" })]);

    // The profiles from before the restart are part of the diagnosis, and all are in NATS.
    const ids = report.profiles.map((p) => p.id);
    expect(ids.length).toBeGreaterThanOrEqual(4);
    expect(ids.slice(0, ringBefore.length)).toEqual(ringBefore);
    expect(new Set(ids.map((id) => id.split("/")[1]))).toEqual(new Set([before.trace]));
    const store = await ProfileStore.open(nc);
    for (const id of ids) expect(await store.info(id), id).toMatchObject({ host: "h1", pid: service.pid });

    // The ticket is on resin.tickets once, even when delivered again (a replay).
    await second.tickets.deliver(report);
    const published = await streamMessages(nc, "RESIN_TICKETS");
    expect(published.map((m) => [m.subject, m.msgId])).toEqual([["resin.tickets", report.id]]);
    expect(JSON.parse(published[0]!.payload).id).toBe(report.id);

    // Done: the agent no longer samples, and the case leaves the state.
    await waitFor("the trace to stop", () => responder.traces.length === 0, 60_000);
    await waitFor(
      "the case to leave the state",
      async () => {
        const e = await kv.get("snapshots.case.api");
        return e === null || e.operation !== "PUT";
      },
      60_000,
    );
    // A later replay of the same open suspect opens nothing.
    second.snapshots.suspect(suspect);
    expect(second.snapshots.core.activeCases).toBe(0);
  });
});

describe("snapshot sink with failing agents", () => {
  it("moves on from a host without an agent, one that does not answer and one whose process is gone, counting each", async () => {
    // "silent" takes requests and never answers; "gone" refuses (the process exited); "ok" leaks.
    const silent = nc.subscribe("resin.agent.silent.snapshot", { callback: () => undefined });
    const gone = await SnapshotResponder.start(nc, {
      host: "gone",
      source: {
        start: async () => {
          throw new AgentSourceError("no-such-process", "no process 2");
        },
        collect: async () => ({ takenAt: 0, stacks: [] }),
      },
    });
    let n = 0;
    const ok = await SnapshotResponder.start(nc, {
      host: "ok",
      source: async () => {
        n++;
        return {
          takenAt: Date.now(),
          stacks: [
            { frames: [{ fn: "hoard", file: "/srv/ok.js", line: 7 }], bytes: n * 1_000_000, objects: n },
            { frames: [{ fn: "churn", file: "/srv/ok.js", line: 20 }], bytes: (n % 2) * 500_000, objects: 1 },
          ],
        };
      },
    });
    const reports: DiagnosisReport[] = [];
    const sink = await SnapshotSink.open(
      nc,
      {
        clock: "wall",
        collectIntervalMs: 50,
        tracesPerCase: 1,
        maxFailuresPerHost: 2,
        retryDelayMs: 10,
        requestTimeoutMs: 300,
        maxCollectionsPerClusterHour: 10_000,
        pollMs: 20,
      },
      { log, stateKey: "failing", onDiagnosis: async (r) => void reports.push(r) },
    );
    sinks.push(sink, { close: async () => silent.unsubscribe() }, gone, ok);
    const now = Date.now();
    const event = (host: string, pid: number, severity: number): SuspectEvent => ({
      v: 1,
      id: `svc/${host}/svc/${pid}`,
      state: "open",
      kind: "process",
      component: "svc",
      host,
      process: "svc",
      pid,
      start: now - 3_600_000,
      end: now,
      detectedAt: now,
      severity,
      pattern: "steady",
      growthBytesPerHour: 1e12,
    });
    sink.suspect(event("nobody", 1, 9));
    sink.suspect(event("silent", 1, 8));
    sink.suspect(event("gone", 2, 7));
    sink.suspect(event("ok", 3, 1));
    await waitFor("a diagnosis", () => reports.length > 0, 60_000);
    const r = reports[0]!;
    expect(r.host).toBe("ok");
    expect(r.culprits[0]?.frames[0]?.fn).toBe("hoard");
    const outcome = Object.fromEntries(r.candidates.map((c) => [c.host, c.outcome]));
    expect(outcome).toMatchObject({
      nobody: expect.stringMatching(/^failed: no agent answers for host nobody/),
      silent: expect.stringMatching(/^failed: agent on silent did not answer start within 300 ms/),
      gone: expect.stringMatching(/^failed: agent on gone refused start: no-such-process/),
      ok: "diagnosed",
    });
    expect(sink.stats).toMatchObject({
      hostsGivenUp: 3,
      noResponders: 2,
      requestTimeouts: 2,
      refusals: 1,
      requestFailures: 5,
      tracesStarted: 4,
    });
  });
});

/** The id of the one ticket written to `dir`. */
function reportIdIn(dir: string): string {
  const json = readdirSync(dir).filter((f) => f.endsWith(".json"));
  if (json.length !== 1) throw new Error(`expected one ticket in ${dir}, found ${json.join(", ")}`);
  return json[0]!.slice(0, -".json".length);
}
