/**
 * The Linux agent end to end on this machine, every part real: a nats-server, `resin agent`
 * sampling the real /proc every 500 ms, a Node.js service started by the test that leaks
 * steadily, and `resin run` with the detector's time scaled down (a 2-second window stands for
 * an hour: --detect-config), heap snapshots on the wall clock and live mitigation.
 *
 * It shows: a suspect opens for exactly that process with pattern `steady`; its heap is profiled
 * through the agent and the ticket names the leaking function first; the restart allowlisted in
 * the agent's config for that process (and in resin's rules) restarts it; the suspect resolves.
 * The agent watches the whole machine (no `unmatched: "skip"`): vitest, nats-server, resin
 * itself, the kernel's memory; none of them may raise a suspect.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectWithRetry, NatsSettings } from "../lib/nats.ts";
import { type CapturedProcess, ResinProcess, spawnNode } from "../lib/testing/live.ts";
import { freePort, startNats, type TestServer, waitFor } from "../lib/testing/servers.ts";
import type { SuspectEvent } from "../schemas/suspect.ts";
import type { Telemetry } from "../schemas/telemetry.ts";
import { DiagnosisReport } from "../sinks/snapshot/report.ts";

const FIXTURE = resolve(import.meta.dirname, "fixtures/steady-leak.js");
const HOST = "e2e-agent-host";

let server: TestServer;
let nc: NatsConnection;
let dir: string;
const children: ChildProcess[] = [];
const pids = new Set<number>();

beforeAll(async () => {
  server = await startNats();
  nc = await connectWithRetry(NatsSettings.parse({ servers: server.url }));
  dir = mkdtempSync(join(tmpdir(), "resin-agent-e2e-"));
  follow();
});

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  // The restarted service is the agent's detached child: end it by the pid the telemetry gave.
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await nc?.close();
  await server?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function spawnLogged(args: string[]): CapturedProcess {
  const p = spawnNode(args);
  children.push(p.child);
  return p;
}

/**
 * Suspect events and the pids of `orders` as they are published, collected by subscriptions:
 * polling whole streams would make this test's own process grow steadily, in view of the agent.
 */
const events: SuspectEvent[] = [];
const orders = new Set<number>();
const suspects = async (): Promise<SuspectEvent[]> => events;
const ordersPids = async (): Promise<Set<number>> => orders;
function follow(): void {
  nc.subscribe("resin.suspects.>", {
    callback: (_err, m) => {
      events.push(m.json<SuspectEvent>());
    },
  });
  nc.subscribe(`resin.telemetry.orders.${HOST}`, {
    callback: (_err, m) => {
      for (const p of m.json<Telemetry>().processes) orders.add(p.pid);
    },
  });
}

// About 100 s; RESIN_AGENT_E2E=0 skips it. With time compressed 1800x (2 s windows), the
// young processes of the test's own infrastructure grow like leaks: the agent's young generation
// is capped (below), and growth under the detector's minGrowthBytes (32 MiB) is not a suspect,
// which keeps nats-server's climb while it takes the test's load (14 -> 20 MB) out.
describe.runIf(process.env.RESIN_AGENT_E2E !== "0")(
  "resin agent on this machine, end to end",
  { timeout: 420_000 },
  () => {
    it("finds, diagnoses and restarts a real leaking process, and nothing else", async () => {
      const inspectorPort = await freePort();
      const serviceArgv = [
        // V8's sampling heap profiler names the outermost function of an optimized frame: once
        // TurboFan inlines retainAuditTrail into its timer callback, the leak's new allocations
        // are charged to the callback. Production services get the same: the diagnosis then names
        // the caller (file and line of the call). Here the test wants the function itself.
        "--no-turbo-inlining",
        `--inspect=127.0.0.1:${inspectorPort}`,
        FIXTURE,
        "--baseline-mib=300",
        "--leak-kib-per-s=4096",
        "--leak-after-s=6",
        "--lifetime-s=400",
      ];
      const agentConfig = join(dir, "agent.json");
      writeFileSync(
        agentConfig,
        JSON.stringify({
          host: HOST,
          interval: "500ms",
          metricsPort: 0,
          attrs: { region: "local", cluster: "c1" },
          components: [
            {
              component: "orders",
              cmdline: "steady-leak\\.js",
              process: "orders",
              snapshot: { kind: "node-inspector", inspector: `127.0.0.1:${inspectorPort}` },
            },
          ],
          mitigation: {
            allow: [
              {
                action: "restart-process",
                component: "orders",
                process: "^orders$",
                command: [process.execPath, ...serviceArgv],
                logFile: join(dir, "orders.log"),
              },
            ],
          },
        }),
      );
      // One window is 2 s: the detector's "hours" are windows, so a day is 48 s. A series ends
      // 3 windows after its last sample (a restart ends the leaking pid's series).
      const detectConfig = join(dir, "detect.json");
      writeFileSync(
        detectConfig,
        JSON.stringify({
          window: { windowMs: 2000, allowedLatenessMs: 1000, idleEndMs: 6000 },
          // Every process here started minutes ago, i.e. within the test's few scaled "days": all
          // are young and must keep their pace to be flagged (a leak does, a warm-up does not).
          // Growth under 32 MiB is not worth a suspect here: with an hour squeezed into 2 s, the
          // few MB a server takes on while it warms up under the test's load (nats-server: 14 ->
          // 20 MB in two minutes) look like days of steady growth. The leak passes it in 8 s.
          // And all are new to the detector (no history before their start): judged from the
          // start, not after a day of warm-up as a host that joins a fleet is.
          detect: { warmupHours: 200, newWarmupHours: 0, minGrowthBytes: 32 * 1024 * 1024 },
        }),
      );
      // resin's side: restart-process allowed for orders (the agent has its own allowlist too).
      const rules = join(dir, "rules.json");
      writeFileSync(
        rules,
        JSON.stringify({ allow: { "restart-process": { components: ["orders"] } }, minSeverity: 0 }),
      );
      const tickets = join(dir, "tickets");

      const run = new ResinProcess([
        "--nats",
        server.url,
        "--metrics-port",
        "0",
        "--checkpoint-interval",
        "500ms",
        "--lateness",
        "1s",
        "--detect-config",
        detectConfig,
        "--snapshots",
        "--snapshot-clock",
        "wall",
        "--snapshot-interval",
        "3s",
        "--snapshot-hosts",
        "1",
        "--snapshot-cluster-limit",
        "1000",
        "--snapshot-max-trace",
        "60s",
        "--snapshot-sampling",
        "16KiB",
        "--snapshot-timeout",
        "30s",
        "--tickets-dir",
        tickets,
        "--mitigate",
        "--mitigation-live",
        "--mitigation-clock",
        "wall",
        "--mitigation-rules",
        rules,
      ]);
      children.push(run as unknown as ChildProcess);
      await run.logged("snapshot and ticket sinks ready", 60_000);
      // The infrastructure warms up before the agent watches: with a 2 s window its start-up would
      // otherwise be hours of steady growth (in production the agent watches long-running services).
      await new Promise((r) => setTimeout(r, 15_000));
      // As the README suggests for hosts: a young generation capped at 1 MB keeps the agent's own
      // memory flat after its first minute (V8 otherwise grows it for minutes).
      const agent = spawnLogged([
        "--max-semi-space-size=1",
        "bin/resin.js",
        "agent",
        "--config",
        agentConfig,
        "--nats",
        server.url,
      ]);
      await waitFor("the agent connected", () => agent.output().includes("connected to NATS"), 60_000);
      await new Promise((r) => setTimeout(r, 30_000));

      const service = spawnLogged(serviceArgv);
      await waitFor("the leaking service", () => service.output().includes("ready"), 30_000);
      const leaking = service.child.pid!;
      pids.add(leaking);

      const context = async () =>
        `suspects:\n${(await suspects()).map((e) => JSON.stringify(e)).join("\n")}\n` +
        `agent:\n${agent.output().slice(-4000)}\nresin run:\n${run.logs
          .slice(-40)
          .map((l) => JSON.stringify(l))
          .join("\n")}\n${run.stderr.join("")}`;
      const within = async (what: string, probe: () => boolean | Promise<boolean>, ms: number) =>
        await waitFor(what, probe, ms).catch(async (err: Error) => {
          throw new Error(`${err.message}\n${await context()}`);
        });

      // 1. A steady suspect for exactly that process.
      await within(
        "a suspect for the leaking process",
        async () => (await suspects()).some((e) => e.component === "orders" && e.state === "open"),
        180_000,
      );
      const opened = (await suspects()).find((e) => e.component === "orders" && e.state === "open")!;
      expect(opened).toMatchObject({
        host: HOST,
        process: "orders",
        pid: leaking,
        pattern: "steady",
        kind: "process",
      });

      // 2. Its heap profiled through the agent; the ticket names the leaking function first.
      const reports = () => {
        try {
          return readdirSync(tickets)
            .filter((f) => f.endsWith(".json"))
            .map((f) => DiagnosisReport.parse(JSON.parse(readFileSync(join(tickets, f), "utf8"))));
        } catch {
          return [];
        }
      };
      await within(
        "a ticket for the leaking process",
        () => reports().some((r) => r.component === "orders"),
        180_000,
      );
      const report = reports().find((r) => r.component === "orders")!;
      expect(report).toMatchObject({ host: HOST, component: "orders", process: "orders" });
      expect(report.culprits[0]?.frames[0]?.fn, JSON.stringify(report.culprits.slice(0, 3))).toBe(
        "retainAuditTrail",
      );

      // 3. The allowlisted restart: the old process exits, the agent starts it again.
      await within(
        "the leaking process stopped",
        () => service.child.exitCode !== null || service.child.signalCode !== null,
        180_000,
      );
      expect(service.child.signalCode).toBe("SIGTERM");
      await within("the restarted process in telemetry", async () => (await ordersPids()).size >= 2, 60_000);
      for (const pid of await ordersPids()) pids.add(pid);
      expect(agent.output()).toContain("mitigation: stop orders (pid");

      // 4. The suspect resolves.
      await within(
        "the suspect resolved",
        async () => (await suspects()).some((e) => e.id === opened.id && e.state === "resolved"),
        120_000,
      );

      // Nothing else on the machine raised a suspect.
      const others = (await suspects()).filter((e) => e.component !== "orders");
      const cmdline = (pid: number) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
        } catch {
          return "(gone)";
        }
      };
      expect(
        others.map((e) => ({ ...e, cmdline: cmdline(e.pid) })),
        `agent pid ${agent.child.pid}, resin run ${(run as unknown as { child: ChildProcess }).child.pid}, vitest worker ${process.pid}`,
      ).toEqual([]);
      const { code } = await run.stop();
      expect(code).toBe(0);
    });
  },
);
