/**
 * `resin run --snapshots` with `resin agent-sim`, as users run them: both CLIs in child
 * processes against a real nats-server carrying a simulated fleet's telemetry. The live
 * pipeline's suspects make the snapshot sink trace simulated hosts on event time, the simulated
 * agents answer from the simulator's heap model, and tickets come out in the directory and on
 * resin.tickets, naming the stacks the simulator leaks from.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectWithRetry, NatsSettings } from "../lib/nats.ts";
import { type CapturedProcess, ResinProcess, spawnNode, streamMessages } from "../lib/testing/live.ts";
import { freePort, startNats, type TestServer, waitFor } from "../lib/testing/servers.ts";
import { leakStackOf } from "../simulate/heap.ts";
import { createSimulation, resolveScenario } from "../simulate/index.ts";
import { publishTelemetry } from "../simulate/publish.ts";
import { DiagnosisReport } from "../sinks/snapshot/report.ts";

const ROOT = resolve(import.meta.dirname, "..");
const FLEET = ["--scenario", "mixed", "--hosts", "20", "--days", "3", "--seed", "11"];
const sim = createSimulation(resolveScenario("mixed", { hosts: 20, days: 3, seed: 11 }));

let server: TestServer;
let nc: NatsConnection;
let dir: string;
const children: { kill(signal: NodeJS.Signals): void }[] = [];

beforeAll(async () => {
  server = await startNats();
  nc = await connectWithRetry(NatsSettings.parse({ servers: server.url }));
  dir = mkdtempSync(join(tmpdir(), "resin-tickets-"));
});

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await nc?.close();
  await server?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function agentSim(): CapturedProcess {
  const p = spawnNode([
    resolve(ROOT, "bin/resin.js"),
    "agent-sim",
    "--nats",
    server.url,
    ...FLEET,
    "--log-level",
    "info",
  ]);
  children.push(p.child);
  return p;
}

const tickets = () => readdirSync(dir).filter((f) => f.endsWith(".json"));

describe("resin run --snapshots with resin agent-sim", { timeout: 300_000 }, () => {
  it("diagnoses the simulated fleet's leaks into tickets naming the leaking stacks", async () => {
    await publishTelemetry(nc, [...sim.lines()], { giveUpAfterMs: 120_000 });
    const agents = agentSim();
    await waitFor("the simulated agents", () => agents.output().includes("simulated agents ready"), 60_000);

    const port = await freePort();
    const run = new ResinProcess([
      "--nats",
      server.url,
      "--metrics-port",
      String(port),
      "--metrics-host",
      "127.0.0.1",
      "--checkpoint-interval",
      "300ms",
      "--snapshots",
      "--tickets-dir",
      dir,
    ]);
    children.push(run);
    await run.logged("snapshot and ticket sinks ready", 60_000);
    // The fleet's two process leaks (an isolated one, a canary), each diagnosed once.
    await waitFor("two tickets", () => tickets().length >= 2, 180_000).catch((err: Error) => {
      throw new Error(
        `${err.message}\n${run.logs.map((l) => JSON.stringify(l)).join("\n")}\n${agents.output()}`,
      );
    });
    // The sinks' counters are on /metrics.
    let metrics = "";
    const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
    await waitFor("the diagnoses counted", async () => {
      metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return metric("resin_snapshot_diagnoses_total") === 2;
    });
    expect(metric("resin_tickets_total")).toBe(2);
    expect(metric("resin_snapshot_collections_total")).toBeGreaterThanOrEqual(6);
    expect(metric("resin_snapshot_request_failures_total")).toBe(0);
    expect(metric("resin_ticket_webhook_dropped_total")).toBe(0);
    const { code } = await run.stop();
    expect(code).toBe(0);
    agents.child.kill("SIGTERM");

    const reports = tickets().map((f) =>
      DiagnosisReport.parse(JSON.parse(readFileSync(join(dir, f), "utf8"))),
    );
    expect(reports).toHaveLength(2);
    for (const r of reports) {
      for (const ext of ["md", "html"]) expect(readdirSync(dir)).toContain(`${r.id}.${ext}`);
      expect(r.profiles.length).toBeGreaterThanOrEqual(3);
      const leak = sim.plan.leaks.find(
        (l) => l.host.id === r.host && l.comp.name === r.component && l.proc.name === r.process,
      );
      expect(leak, `${r.host} ${r.component} is no simulated leak`).toBeDefined();
      // Compared with a healthy host of its cluster on the version most hosts run (for the
      // canary: the version it replaces), the leaking stack ranks first.
      expect(r.references, r.id).toEqual([expect.objectContaining({ match: "cluster" })]);
      expect(r.culprits[0]?.frames, r.id).toEqual(leakStackOf(sim.plan, leak!));
    }
    const canary = reports.find((r) => r.component === "host-api")!;
    expect(canary.references[0]!.fingerprint.version).not.toBe(canary.version);
    const published = await streamMessages(nc, "RESIN_TICKETS");
    expect(published.map((m) => m.msgId).sort()).toEqual(reports.map((r) => r.id).sort());
  });
});
