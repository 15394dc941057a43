/**
 * The snapshot protocol over a real nats-server: a responder with a scripted source answers
 * start / collect / stop, stores pprof profiles with their metadata in the Object Store, and
 * refuses what it cannot do with a typed reply naming the field and the value.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HeapProfile } from "../heap/profile.ts";
import { connectWithRetry, NatsSettings } from "../nats.ts";
import { startNats, type TestServer } from "../testing/servers.ts";
import { AgentRefusedError, AgentUnreachableError, SnapshotClient } from "./client.ts";
import { ProfileStore } from "./profiles.ts";
import { PROFILE_HEADERS, snapshotSubject } from "./protocol.ts";
import { AgentSourceError, SnapshotResponder, type TraceSpec } from "./responder.ts";

let server: TestServer;
let nc: NatsConnection;
const responders: SnapshotResponder[] = [];

beforeAll(async () => {
  server = await startNats();
  nc = await connectWithRetry(NatsSettings.parse({ servers: server.url }));
});

afterAll(async () => {
  for (const r of responders) await r.close();
  await nc?.close();
  await server?.dispose();
});

const profileAt = (at: number, leak: number): HeapProfile => ({
  takenAt: at,
  stacks: [
    { frames: [{ fn: "leak", file: "svc.js", line: 3 }], bytes: leak, objects: 1 },
    { frames: [{ fn: "churn", file: "svc.js", line: 9 }], bytes: 100, objects: 2 },
  ],
});

/** A scripted source: event-time profiles whose leak grows with `at`; pid 404 does not exist. */
function scripted() {
  const calls: string[] = [];
  return {
    calls,
    source: {
      async start(spec: TraceSpec) {
        calls.push(`start ${spec.trace} ${spec.pid} ${spec.samplingIntervalBytes}`);
        if (spec.pid === 404) throw new AgentSourceError("no-such-process", `no process ${spec.pid}`);
      },
      async collect(spec: TraceSpec, at: number | undefined) {
        calls.push(`collect ${spec.trace}`);
        return profileAt(at ?? 0, Math.max(0, ((at ?? 0) - 1_000_000) / 10));
      },
      async stop(spec: TraceSpec) {
        calls.push(`stop ${spec.trace}`);
      },
    },
  };
}

async function raw(host: string, body: unknown): Promise<Record<string, unknown>> {
  const msg = await nc.request(
    snapshotSubject(host),
    typeof body === "string" ? body : JSON.stringify(body),
    { timeout: 10_000 },
  );
  return msg.json<Record<string, unknown>>();
}

describe("SnapshotResponder", () => {
  it("starts, collects into the Object Store with metadata headers, and stops", async () => {
    const { source, calls } = scripted();
    const r = await SnapshotResponder.start(nc, { host: "h1", source, os: "linux-6.1" });
    responders.push(r);
    const client = new SnapshotClient(nc, 10_000);

    const started = await client.start("h1", {
      trace: "t1",
      pid: 42,
      process: "svc",
      component: "api",
      samplingIntervalBytes: 8192,
      ttlMs: 3_600_000,
      at: 1_000_000,
    });
    expect(started).toMatchObject({ ok: true, op: "start", host: "h1", pid: 42, expiresAt: 4_600_000 });
    expect(started.os).toBe("linux-6.1");
    // Starting the same trace again is harmless (a caller retrying after a lost reply).
    await client.start("h1", {
      trace: "t1",
      pid: 42,
      process: "svc",
      component: "api",
      samplingIntervalBytes: 8192,
      ttlMs: 3_600_000,
      at: 1_000_000,
    });
    expect(calls.filter((c) => c.startsWith("start"))).toEqual(["start t1 42 8192"]);

    const a = await client.collect("h1", { trace: "t1", at: 1_001_000 });
    const b = await client.collect("h1", { trace: "t1", at: 1_002_000 });
    expect(a).toMatchObject({ host: "h1", pid: 42, takenAt: 1_001_000, bytes: 200, stacks: 2 });
    expect(b.id).not.toBe(a.id);
    expect(b.bytes).toBe(300);

    const store = await ProfileStore.open(nc);
    const stored = await store.get(b.id);
    expect(stored?.takenAt).toBe(1_002_000);
    expect(stored?.stacks.find((s) => s.frames[0]?.fn === "leak")?.bytes).toBe(200);
    const info = await store.objects.info(b.id);
    expect(info?.headers?.get(PROFILE_HEADERS.host)).toBe("h1");
    expect(info?.headers?.get(PROFILE_HEADERS.pid)).toBe("42");
    expect(info?.headers?.get(PROFILE_HEADERS.takenAt)).toBe("1002000");
    expect(await store.info(b.id)).toMatchObject({ host: "h1", pid: 42, takenAt: 1_002_000, bytes: 300 });

    expect(await client.stop("h1", { trace: "t1", at: 1_003_000 })).toMatchObject({ known: true });
    expect(await client.stop("h1", { trace: "t1", at: 1_003_000 })).toMatchObject({ known: false });
    expect(calls.at(-1)).toBe("stop t1");
    const gone = await client.collect("h1", { trace: "t1" }).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(AgentRefusedError);
    expect((gone as AgentRefusedError).code).toBe("unknown-trace");
  });

  it("refuses bad requests naming the field and the value", async () => {
    const { source } = scripted();
    responders.push(await SnapshotResponder.start(nc, { host: "h2", source }));

    expect(await raw("h2", "{not json")).toMatchObject({
      ok: false,
      error: { code: "bad-request", field: "(message)" },
    });
    expect(await raw("h2", { v: 2, op: "collect", trace: "x" })).toMatchObject({
      ok: false,
      error: { code: "unsupported-version", field: "v", value: 2 },
    });
    const bad = await raw("h2", {
      v: 1,
      op: "start",
      trace: "t",
      pid: -1,
      process: "svc",
      component: "api",
      samplingIntervalBytes: 1024,
      ttlMs: 60_000,
    });
    expect(bad).toMatchObject({
      ok: false,
      op: "start",
      error: { code: "bad-request", field: "pid", value: -1 },
    });
    expect(await raw("h2", { v: 1, op: "dance", trace: "t" })).toMatchObject({
      error: { code: "bad-request", field: "op", value: "dance" },
    });
    expect(await raw("h2", { v: 1, op: "collect", trace: "has space" })).toMatchObject({
      error: { code: "bad-request", field: "trace", value: "has space" },
    });
  });

  it("passes on the source's error code, refuses too many traces and conflicting ones", async () => {
    const { source } = scripted();
    responders.push(await SnapshotResponder.start(nc, { host: "h3", source, maxTraces: 1 }));
    const client = new SnapshotClient(nc, 10_000);
    const start = (trace: string, pid: number) =>
      client
        .start("h3", {
          trace,
          pid,
          process: "svc",
          component: "api",
          samplingIntervalBytes: 4096,
          ttlMs: 60_000,
        })
        .catch((e: unknown) => e as AgentRefusedError);

    expect(((await start("a", 404)) as AgentRefusedError).code).toBe("no-such-process");
    expect(await start("a", 1)).toMatchObject({ ok: true });
    expect(((await start("a", 2)) as AgentRefusedError).code).toBe("trace-conflict");
    const busy = (await start("b", 3)) as AgentRefusedError;
    expect(busy.code).toBe("busy");
    expect(busy.message).toMatch(/at most 1/);
  });

  it("stops a trace nobody named within its TTL, in event time", async () => {
    const { source, calls } = scripted();
    const r = await SnapshotResponder.start(nc, { host: "h4", source });
    responders.push(r);
    const client = new SnapshotClient(nc, 10_000);
    const spec = { process: "svc", component: "api", samplingIntervalBytes: 4096, ttlMs: 60_000 };
    await client.start("h4", { trace: "old", pid: 1, ...spec, at: 0 });
    await client.start("h4", { trace: "new", pid: 2, ...spec, at: 50_000 });
    await client.collect("h4", { trace: "new", at: 100_000 }); // "old" last heard at 0: expired
    expect(r.traces).toEqual(["new"]);
    expect(r.stats.expired).toBe(1);
    expect(calls).toContain("stop old");
    const expired = await client.collect("h4", { trace: "old", at: 100_001 }).catch((e: unknown) => e);
    expect((expired as AgentRefusedError).code).toBe("unknown-trace");
  });

  it("tells an unreachable host from a refusal", async () => {
    const client = new SnapshotClient(nc, 2000);
    const err = await client.collect("nobody", { trace: "t" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentUnreachableError);
    expect((err as AgentUnreachableError).why).toBe("no-responders");
  });

  it("stops its traces when closed", async () => {
    const { source, calls } = scripted();
    const r = await SnapshotResponder.start(nc, { host: "h5", source });
    const client = new SnapshotClient(nc, 10_000);
    await client.start("h5", {
      trace: "t",
      pid: 7,
      process: "svc",
      component: "api",
      samplingIntervalBytes: 4096,
      ttlMs: 60_000,
    });
    await r.close();
    expect(calls.at(-1)).toBe("stop t");
    const err = await client.collect("h5", { trace: "t" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentUnreachableError);
  });
});
