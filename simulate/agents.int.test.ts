/**
 * Simulated agents for a simulated fleet on a real nats-server, with the snapshot sink on event
 * time: a suspect for a process the simulator made leak is traced at event times 30 min apart,
 * a healthy host of the same cluster and version gives a reference, and the diagnosis names
 * the stack the simulator leaks from (its ground truth).
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentRefusedError, SnapshotClient } from "../lib/agent/client.ts";
import { connectWithRetry, NatsSettings } from "../lib/nats.ts";
import { startNats, type TestServer } from "../lib/testing/servers.ts";
import type { SuspectEvent } from "../schemas/suspect.ts";
import type { SeriesPoint, StreamInfo } from "../sinks/snapshot/core.ts";
import type { DiagnosisReport } from "../sinks/snapshot/report.ts";
import { SnapshotSink } from "../sinks/snapshot/sink.ts";
import { type SimulatedAgents, startSimulatedAgents } from "./agents.ts";
import { leakStackOf } from "./heap.ts";
import { createSimulation, resolveScenario } from "./index.ts";
import { lifeAt, type Plan } from "./plan.ts";

const H = 3_600_000;
const log = pino({ level: process.env.RESIN_TEST_LOG ?? "silent" });
let server: TestServer;
let nc: NatsConnection;
let agents: SimulatedAgents | undefined;
let sink: SnapshotSink | undefined;

beforeAll(async () => {
  server = await startNats();
  nc = await connectWithRetry(NatsSettings.parse({ servers: server.url }));
});

afterAll(async () => {
  await sink?.close();
  await agents?.close();
  await nc?.close();
  await server?.dispose();
});

const versionAt = (versions: string[], at: number[], t: number) => {
  let v = versions[0]!;
  for (let i = 0; i < at.length && at[i]! <= t; i++) v = versions[i]!;
  return v;
};

/** A steady process leak whose process lives through [t0, t0 + 24 h], with a healthy peer of the same fingerprint. */
function pickLeak(plan: Plan) {
  for (const entry of plan.leaks) {
    const { host, comp, proc, leak } = entry;
    if (leak.kind !== "process" || leak.pattern !== "steady" || comp.kernel) continue;
    const t0 = leak.startTs + 12 * H;
    const life = lifeAt(proc, t0);
    if (lifeAt(proc, t0 + 24 * H) !== life || host.downFrom < t0 + 24 * H) continue;
    const version = versionAt(comp.versions, comp.versionAt, t0);
    const peers = plan.hosts.filter(
      (h) =>
        h !== host &&
        h.cluster === host.cluster &&
        h.os === host.os &&
        h.downFrom > t0 + 24 * H &&
        h.comps.some(
          (c) =>
            c.name === comp.name &&
            versionAt(c.versions, c.versionAt, t0) === version &&
            c.procs.some(
              (p) => p.name === proc.name && p.leak === null && lifeAt(p, t0) === lifeAt(p, t0 + 24 * H),
            ),
        ),
    );
    if (peers.length > 0) return { entry, t0, pid: life.pid, version, peers };
  }
  throw new Error("no steady process leak with a healthy peer in this fleet");
}

describe("simulated agents", () => {
  it("answer in event time, refuse requests without it, and let the sink diagnose the simulated leak", async () => {
    const sim = createSimulation(resolveScenario("mixed", { hosts: 60, days: 4, seed: 7 }));
    const plan = sim.plan;
    const { entry, t0, pid, version, peers } = pickLeak(plan);
    const { host, comp, proc, leak } = entry;
    agents = await startSimulatedAgents(nc, plan, { hosts: [host.id, ...peers.map((p) => p.id)], log });

    // Without `at` a simulated agent cannot answer: it says so.
    const client = new SnapshotClient(nc, 10_000);
    const noClock = await client
      .start(host.id, {
        trace: "no-clock",
        pid,
        process: proc.name,
        component: comp.name,
        samplingIntervalBytes: 524288,
        ttlMs: 3_600_000,
      })
      .catch((e: unknown) => e);
    expect((noClock as AgentRefusedError).body).toMatchObject({ code: "bad-request" });
    // A pid that is not running then is no such process.
    const wrongPid = await client
      .start(host.id, {
        trace: "wrong-pid",
        pid: pid + 1,
        process: proc.name,
        component: comp.name,
        samplingIntervalBytes: 524288,
        ttlMs: 3_600_000,
        at: t0,
      })
      .catch((e: unknown) => e);
    expect((wrongPid as AgentRefusedError).code).toBe("no-such-process");

    const reports: DiagnosisReport[] = [];
    sink = await SnapshotSink.open(
      nc,
      { clock: "event", pollMs: 10, referenceProfiles: 3 },
      { log, onDiagnosis: async (r) => void reports.push(r) },
    );
    const suspect: SuspectEvent = {
      v: 1,
      id: `${comp.name}/${host.id}/${proc.name}/${pid}`,
      state: "open",
      kind: "process",
      component: comp.name,
      host: host.id,
      process: proc.name,
      pid,
      start: leak.startTs,
      end: t0,
      detectedAt: t0,
      severity: 5,
      pattern: "steady",
      growthBytesPerHour: leak.ratePerHour,
    };
    sink.suspect(suspect);
    // What a closed window tells the sink about the component's hosts.
    const streams: StreamInfo[] = [host, ...peers].map((h) => ({
      host: h.id,
      component: comp.name,
      cluster: h.cluster,
      version,
      vms: 1,
    }));
    const points: SeriesPoint[] = [host, ...peers].map((h) => {
      const p = h.comps.find((c) => c.name === comp.name)!.procs.find((x) => x.name === proc.name)!;
      return {
        host: h.id,
        component: comp.name,
        process: proc.name,
        pid: lifeAt(p, t0).pid,
        ts: t0,
        bytes: 1,
      };
    });
    sink.core.observeWindow(streams, points);

    for (let step = 0; step <= 48 && reports.length === 0; step++) {
      sink.advance(t0 + step * 30 * 60_000);
      await sink.whenIdle();
    }
    expect(reports).toHaveLength(1);
    const report = reports[0]!;
    const truth = leakStackOf(plan, entry);
    expect(report.culprits[0]?.frames, JSON.stringify(report.culprits.map((c) => c.frames[0]))).toEqual(
      truth,
    );
    expect(report.profiles.every((p) => p.takenAt >= t0 && (p.takenAt - t0) % (30 * 60_000) === 0)).toBe(
      true,
    );
    expect(report.references).toEqual([
      expect.objectContaining({
        match: "cluster",
        fingerprint: expect.objectContaining({ cluster: host.cluster, os: host.os, version }),
      }),
    ]);
    expect(peers.map((p) => p.id)).toContain(report.references[0]!.host);
    expect(sink.stats).toMatchObject({ casesDiagnosed: 1, referencesTaken: 1, requestFailures: 0 });
    // Every collection stored one profile; those that fell out of the ring were deleted.
    expect(agents.stats().profilesStored).toBe(sink.stats.collections);
    expect(sink.stats.profilesDeleted).toBe(sink.stats.profilesDropped);
    expect(report.profiles.length).toBe(Math.min(24, sink.stats.collections - 3));
  });
});
