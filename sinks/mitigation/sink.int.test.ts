/**
 * End to end over a real nats-server: windows and suspects go into the mitigation sink, commands
 * go out to agents (MitigationResponder) on resin.agent.<host>.mitigate, their results come back
 * and drive the tree, and every decision is audited on NATS (stream RESIN_MITIGATION_AUDIT) and
 * in the NDJSON file, the same records in both. Also: a host without an agent and an agent that
 * does not allow the action escalate; a restart resumes from KV without sending anything twice.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MitigationClient } from "../../lib/agent/mitigate-client.ts";
import { MitigateExecuteError, type MitigateRequest } from "../../lib/agent/mitigate-protocol.ts";
import { MitigationResponder } from "../../lib/agent/mitigate-responder.ts";
import { connectWithRetry, NatsSettings } from "../../lib/nats.ts";
import { startNats, type TestServer } from "../../lib/testing/servers.ts";
import type { SeriesInfo, StreamSnapshot } from "../../operators/window/index.ts";
import type { WindowResult } from "../../pipelines/detect.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import { AUDIT_STREAM, AUDIT_SUBJECT, type AuditRecord } from "./audit.ts";
import { MitigationEngine } from "./engine.ts";
import {
  AUDIT_FILE,
  MITIGATION_STATE_BUCKET,
  MitigationSink,
  type MitigationSinkConfigInput,
} from "./sink.ts";

const T0 = 1_767_571_200_000;
const HOUR = 3_600_000;
const log = pino({ level: "silent" });

let server: TestServer;
let nc: NatsConnection;
let dir: string;
const responders: MitigationResponder[] = [];
const executed: string[] = [];

beforeAll(async () => {
  server = await startNats();
  nc = await connectWithRetry(NatsSettings.parse({ servers: server.url }));
  dir = mkdtempSync(join(tmpdir(), "resin-mitigation-"));
  const execute = async (req: MitigateRequest) => {
    executed.push(`${req.host} ${req.action}${req.pid !== undefined ? ` ${req.pid}` : ""}`);
    if (req.action === "soft-reboot")
      throw new MitigateExecuteError("failed", "kexec refused: signed kernel required");
    return { detail: `${req.action} ok` };
  };
  const everything = {
    "restart-process": ["*"],
    "restart-service": ["*"],
    "migrate-vms": ["*"],
    "soft-reboot": ["*"],
    reboot: ["*"],
  };
  for (const host of ["h1", "h2"])
    responders.push(await MitigationResponder.start(nc, { host, allowlist: everything, execute }));
  // h4's agent lets nothing but a service restart run.
  responders.push(
    await MitigationResponder.start(nc, { host: "h4", allowlist: { "restart-service": ["api"] }, execute }),
  );
  // h3 has no agent at all.
});

afterAll(async () => {
  for (const r of responders) await r.close();
  await nc?.close();
  await server?.dispose();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** A closed window in which each host reports its component with `procs` processes. */
function window(at: number, hosts: { host: string; component: string; procs: number; vms: number }[]) {
  const infos: SeriesInfo[] = [];
  const streams: StreamSnapshot[] = [];
  hosts.forEach((h, stream) => {
    streams.push({
      stream,
      host: h.host,
      component: h.component,
      region: "west",
      cluster: "c1",
      version: "1",
      vms: h.vms,
      totalBytes: 100 * 2 ** 30,
      usedBytes: 60 * 2 ** 30,
    });
    for (let p = 0; p < h.procs; p++)
      infos.push({
        slot: infos.length,
        host: h.host,
        component: h.component,
        name: h.component,
        pid: 100 + p,
        startedAt: undefined,
        firstTs: at,
        stream,
        predecessor: undefined,
      });
  });
  const result: WindowResult = {
    window: {
      start: at - HOUR,
      end: at,
      newSeries: infos,
      slots: infos.map((i) => i.slot),
      values: infos.map(() => 2 ** 30),
      counts: infos.map(() => 12),
      streams,
      ended: [],
    },
    counts: [],
    scores: [],
    events: [],
  };
  return { result, seriesInfo: (slot: number) => infos[slot] };
}

function suspect(host: string, component: string, over: Partial<SuspectEvent> = {}): SuspectEvent {
  const kernel = component === "kernel";
  const pid = over.pid ?? (kernel ? 0 : 100);
  const process = kernel ? "slab" : component;
  return {
    v: 1,
    id: `${component}/${host}/${process}/${pid}`,
    state: "open",
    kind: kernel ? "kernel" : "process",
    component,
    host,
    process,
    pid,
    start: T0 - 12 * HOUR,
    end: T0,
    detectedAt: T0,
    severity: 6,
    pattern: "steady",
    growthBytesPerHour: 64 * 2 ** 20,
    ...over,
  };
}

async function auditOnNats(): Promise<AuditRecord[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(AUDIT_STREAM);
  const consumer = await jsm.consumers.add(AUDIT_STREAM, {
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
  });
  const c = await jetstream(nc).consumers.get(AUDIT_STREAM, consumer.name);
  const out: AuditRecord[] = [];
  if (info.state.messages === 0) return out;
  const batch = await c.fetch({ max_messages: info.state.messages, expires: 5000 });
  for await (const m of batch) {
    expect(m.subject).toBe(AUDIT_SUBJECT);
    out.push(m.json<AuditRecord>());
    if (out.length === info.state.messages) break;
  }
  await jsm.consumers.delete(AUDIT_STREAM, consumer.name);
  return out;
}

const fileAudit = (): AuditRecord[] =>
  readFileSync(join(dir, AUDIT_FILE), "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as AuditRecord);

const config: MitigationSinkConfigInput = {
  engine: {
    dryRun: false,
    verifyMs: 2 * HOUR,
    allow: {
      "restart-process": { components: ["*"] },
      "restart-service": { components: ["*"] },
      "migrate-vms": { components: ["*"] },
      "soft-reboot": { components: ["*"] },
      reboot: { components: ["*"] },
    },
  },
  clock: "event",
  requestTimeoutMs: 2000,
  pollMs: 20,
};

describe("MitigationSink on a real nats-server", () => {
  it("suspects in, commands out, results back, audit on NATS and on disk", async () => {
    const influx: string[] = [];
    let sink = await MitigationSink.open(
      nc,
      { ...config, auditDir: dir },
      { log, instance: "it", writeLines: (lines) => influx.push(...lines) },
    );
    const w = window(T0, [
      { host: "h1", component: "api", procs: 1, vms: 2 },
      { host: "h2", component: "kernel", procs: 3, vms: 5 },
      { host: "h3", component: "api", procs: 2, vms: 1 },
      { host: "h4", component: "api", procs: 2, vms: 1 },
    ]);
    sink.window(w.result, w.seriesInfo);
    for (const [h, c] of [
      ["h1", "api"],
      ["h2", "kernel"],
      ["h3", "api"],
      ["h4", "api"],
    ] as const)
      sink.suspect(suspect(h, c));
    await sink.whenIdle();

    // h1: the process restarted. h2: VMs migrated, soft reboot failed, full reboot.
    // h3: no agent, so restart-process failed and restart-service followed (no agent either).
    // h4: its agent refused restart-process (not allowed), the service restart ran.
    expect(executed.sort()).toEqual(
      [
        "h1 restart-process 100",
        "h2 migrate-vms",
        "h2 reboot",
        "h2 soft-reboot",
        "h4 restart-service 100",
      ].sort(),
    );
    const story = (h: string) =>
      fileAudit()
        .filter((a) => a.host === h)
        .map(
          (a) => `${a.event}${a.action ? ` ${a.action}` : ""}${a.result?.code ? ` ${a.result.code}` : ""}`,
        );
    expect(story("h1")).toEqual(["skipped custom", "issued restart-process", "succeeded restart-process"]);
    expect(story("h2")).toEqual([
      "issued migrate-vms",
      "succeeded migrate-vms",
      "issued soft-reboot",
      "failed soft-reboot failed",
      "escalated reboot",
      "issued reboot",
      "succeeded reboot",
    ]);
    expect(story("h3")).toEqual([
      "skipped custom",
      "issued restart-process",
      "failed restart-process no-responders",
      "escalated restart-service",
      "issued restart-service",
      "failed restart-service no-responders",
      "gave-up",
    ]);
    expect(story("h4").slice(0, 4)).toEqual([
      "skipped custom",
      "issued restart-process",
      "failed restart-process not-allowed",
      "escalated restart-service",
    ]);
    expect(responders[2]!.stats.notAllowed).toBe(1);
    expect(fileAudit().every((a) => a.dryRun === false)).toBe(true);

    // The detector resolves h1's suspect: the target stops; h4's is not resolved in time: no step left.
    sink.suspect(suspect("h1", "api", { state: "resolved", detectedAt: T0 + HOUR }));
    const later = window(T0 + 3 * HOUR, [{ host: "h4", component: "api", procs: 2, vms: 1 }]);
    sink.window(later.result, later.seriesInfo);
    await sink.whenIdle();
    expect(story("h1").at(-1)).toBe("resolved");
    expect(story("h4").slice(4)).toEqual(["issued restart-service", "succeeded restart-service", "gave-up"]);

    // A restart resumes from KV: nothing is sent again, the audit sequence continues.
    const before = executed.length;
    await sink.close();
    sink = await MitigationSink.open(nc, { ...config, auditDir: dir }, { log, instance: "it" });
    const after = window(T0 + 4 * HOUR, [{ host: "h1", component: "api", procs: 1, vms: 2 }]);
    sink.window(after.result, after.seriesInfo);
    await sink.whenIdle();
    expect(executed.length).toBe(before);
    expect(sink.engine.target("h1", "api", "api")?.status).toBe("resolved");
    await sink.close();

    // NATS holds exactly the file's records, in order, once each.
    const nats = await auditOnNats();
    const disk = fileAudit();
    expect(nats).toEqual(disk);
    expect(disk.map((a) => a.seq)).toEqual(disk.map((_, i) => i));
    // And InfluxDB got one resin_mitigation point per record of the first run.
    expect(influx.length).toBeGreaterThan(10);
    expect(influx.every((l) => l.startsWith("resin_mitigation,"))).toBe(true);
  });

  it("after a crash, a command that was out is sent again under its id and the agent answers with its result", async () => {
    const engine = new MitigationEngine(config.engine);
    engine.onSuspect(suspect("h1", "db", { detectedAt: T0 + 10 * HOUR }));
    const [cmd] = engine.decide(T0 + 10 * HOUR);
    // The crashed instance sent it and the agent ran it; the reply was lost with the instance.
    expect(await new MitigationClient(nc, 5000).send({ ...cmd!, at: cmd!.issuedAt })).toMatchObject({
      outcome: "done",
    });
    const kv = await new Kvm(nc).create(MITIGATION_STATE_BUCKET, { history: 1 });
    await kv.put("crashed", JSON.stringify(engine.snapshot()));
    const ran = executed.filter((e) => e.startsWith("h1 restart-process")).length;

    const sink = await MitigationSink.open(nc, config, { log, stateKey: "crashed", instance: "it" });
    await sink.whenIdle();
    expect(sink.stats.commandsResent).toBe(1);
    expect(executed.filter((e) => e.startsWith("h1 restart-process")).length).toBe(ran);
    expect(sink.engine.target("h1", "db", "db")?.status).toBe("verifying");
    expect(responders[0]!.stats.duplicates).toBe(1);
    await sink.close();
  });
});
