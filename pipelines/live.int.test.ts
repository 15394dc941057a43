/**
 * `resin run` end to end, as users run it: the CLI in a child process, a real nats-server with
 * JetStream, VictoriaMetrics (v2 write API) or InfluxDB 1.x (v1 /write), a simulated fleet
 * published through JetStream. The reference is the replay of the same telemetry in one process:
 * the live run must publish exactly its suspect events (each once, in order) and write its
 * series, through every fault.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { CheckpointStore } from "../lib/checkpoints.ts";
import { ensureStreams } from "../lib/jetstream.ts";
import { connectWithRetry, NatsSettings } from "../lib/nats.ts";
import {
  deadLettersOn,
  drained,
  expectedOutputs,
  ResinProcess,
  samplesOfLines,
  suspectsOn,
  victoriaSamples,
} from "../lib/testing/live.ts";
import {
  freePort,
  startInfluxDb1,
  startNats,
  startVictoriaMetrics,
  type TestServer,
  waitFor,
} from "../lib/testing/servers.ts";
import { createSimulation, resolveScenario } from "../simulate/index.ts";
import { publishTelemetry } from "../simulate/publish.ts";
import { partitionKey } from "./live.ts";

// A fleet no tuning used: 20 hosts, 3 days, process and kernel leaks (18 suspect events).
const LINES = [...createSimulation(resolveScenario("mixed", { hosts: 20, days: 3, seed: 11 })).lines()];
let expected: Awaited<ReturnType<typeof expectedOutputs>>;
let expectedSamples: Set<string>;

const servers: TestServer[] = [];
const procs: ResinProcess[] = [];
const conns: NatsConnection[] = [];

beforeAll(async () => {
  expected = await expectedOutputs(LINES);
  expectedSamples = new Set(samplesOfLines(expected.series));
  expect(expected.events.length).toBeGreaterThan(10);
  expect(new Set(expected.events.map((e) => e.kind))).toEqual(new Set(["process", "kernel"]));
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === "fail")
    for (const p of procs) console.error(p.logs.map((l) => JSON.stringify(l)).join("\n"), p.stderr.join(""));
  for (const p of procs.splice(0)) p.kill("SIGKILL");
  for (const c of conns.splice(0)) await c.close().catch(() => undefined);
  for (const s of servers.splice(0)) await s.dispose();
});

async function nats(
  options: Parameters<typeof startNats>[0] = {},
): Promise<{ server: TestServer; nc: NatsConnection }> {
  const server = await startNats(options);
  servers.push(server);
  const nc = await connectWithRetry(NatsSettings.parse({ servers: server.url }));
  conns.push(nc);
  return { server, nc };
}

function resin(server: TestServer, ...args: string[]): ResinProcess {
  const p = new ResinProcess([
    "--nats",
    server.url,
    "--metrics-port",
    "0",
    "--checkpoint-interval",
    "300ms",
    "--batch",
    "1000",
    ...args,
  ]);
  procs.push(p);
  return p;
}

const publish = (nc: NatsConnection, lines: readonly string[], rate?: number) =>
  publishTelemetry(nc, lines, { giveUpAfterMs: 120_000, ...(rate === undefined ? {} : { rate }) });

const VM_FLAGS = (vm: TestServer) => [
  "--influx-url",
  vm.url,
  "--influx-org",
  "resin",
  "--influx-bucket",
  "resin",
  "--influx-flush-interval",
  "100ms",
];

/** The series in VictoriaMetrics equal the replay's, once every point is in. */
async function expectSeriesIn(vm: TestServer): Promise<void> {
  let stored = new Set<string>();
  await waitFor("the series in VictoriaMetrics", async () => {
    stored = new Set(await victoriaSamples(vm.url, '{__name__=~"resin_(memory|bucket|suspect)_.*"}'));
    return stored.size >= expectedSamples.size;
  }).catch(() => undefined);
  const missing = [...expectedSamples].filter((s) => !stored.has(s));
  const extra = [...stored].filter((s) => !expectedSamples.has(s));
  expect({ missing: missing.slice(0, 5), extra: extra.slice(0, 5) }).toEqual({ missing: [], extra: [] });
  expect(stored.size).toBe(expectedSamples.size);
}

describe("resin run: end to end", { timeout: 180_000 }, () => {
  it("publishes the replay's suspect events and writes its series to VictoriaMetrics (v2 API)", async () => {
    const { server, nc } = await nats();
    const vm = await startVictoriaMetrics();
    servers.push(vm);
    await publish(nc, LINES);
    const port = await freePort();
    const run = resin(server, ...VM_FLAGS(vm), "--metrics-port", String(port), "--metrics-host", "127.0.0.1");
    await drained(nc, "resin-detect");
    // /healthz and /metrics while it runs: the counters agree with the stream.
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect([health.status, ((await health.json()) as { nats: string }).nats]).toEqual([200, "connected"]);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
    const stored = (await (await jetstreamManager(nc)).streams.info("RESIN_TELEMETRY")).state.messages;
    expect(metric("resin_messages_consumed_total")).toBe(stored);
    expect(metric("resin_consumer_lag_messages")).toBe(0);
    expect(metric("resin_open_suspects")).toBeGreaterThan(0);
    expect(metric("resin_messages_duplicate_total")).toBe(0); // the stream de-duplicated by message id
    expect(metrics).toMatch(/^process_cpu_seconds_total /m);
    const { code, stopped } = await run.stop();
    expect(code).toBe(0);
    expect(await suspectsOn(nc)).toEqual(expected.suspects);
    expect(stopped).toMatchObject({ redelivered: 0, deadLetters: 0, points: { dropped: 0, pending: 0 } });
    await expectSeriesIn(vm);
    // The pipeline's own series: the last one counts every message consumed.
    const consumed = await victoriaSamples(vm.url, '{__name__="resin_pipeline_consumed"}');
    expect(
      consumed.some(
        (s) => s.startsWith(`resin_pipeline_consumed{instance=`) && s.includes(` ${stopped.consumed} @`),
      ),
    ).toBe(true);
  });

  it("writes to InfluxDB 1.x through the v1 /write API", async () => {
    const { server, nc } = await nats();
    const influx = await startInfluxDb1();
    servers.push(influx);
    await publish(nc, LINES);
    const run = resin(server, "--influx-url", influx.url, "--influx-api", "v1", "--influx-db", "resin");
    await drained(nc, "resin-detect");
    const { code, stopped } = await run.stop();
    expect(code).toBe(0);
    expect(await suspectsOn(nc)).toEqual(expected.suspects);
    expect(stopped).toMatchObject({ points: { dropped: 0, pending: 0 } });
    // Count each measurement's points; InfluxDB 1.x keeps one point per series and time.
    const query = async (q: string) => {
      const res = await fetch(`${influx.url}/query?db=resin&q=${encodeURIComponent(q)}`);
      return (await res.json()) as { results: { series?: { name: string; values: unknown[][] }[] }[] };
    };
    for (const measurement of ["resin_memory", "resin_bucket", "resin_suspect"]) {
      const want = new Set(expected.series.filter((l) => l.startsWith(`${measurement},`)).map(seriesAndTime))
        .size;
      const field = { resin_memory: "bytes", resin_bucket: "hosts", resin_suspect: "severity" }[measurement];
      const r = await query(`SELECT count("${field}") FROM "${measurement}"`);
      expect([measurement, r.results[0]?.series?.[0]?.values[0]?.[1]]).toEqual([measurement, want]);
    }
    const top = await query(`SELECT max("severity") FROM "resin_suspect" WHERE "kind" = 'kernel'`);
    const maxKernel = Math.max(...expected.events.filter((e) => e.kind === "kernel").map((e) => e.severity));
    expect(top.results[0]?.series?.[0]?.values[0]?.[1]).toBeCloseTo(maxKernel, 9);

    // The README's InfluxQL queries behind the dashboard panels answer with the replay's data.
    const leak = expected.events.find((e) => e.kind === "process")!;
    const where = `"component" = '${leak.component}' AND "process" = '${leak.process}'`;
    const heatmap = await query(
      `SELECT max("hosts") FROM "resin_bucket" WHERE ${where} GROUP BY time(1h), "lower_bytes"`,
    );
    expect(heatmap.results[0]?.series?.length).toBeGreaterThan(1);
    const score = await query(`SELECT "score" FROM "resin_bucket" WHERE ${where} GROUP BY "lower_bytes"`);
    expect(score.results[0]?.series?.length).toBe(heatmap.results[0]?.series?.length);
    const memory = await query(
      `SELECT "bytes" FROM "resin_memory" WHERE "host" = '${leak.host}' AND "process" = '${leak.process}'`,
    );
    expect(memory.results[0]?.series?.[0]?.values.length).toBeGreaterThan(24);
    const lastState = await query(
      `SELECT last("open") AS "open", "severity", "growth_bytes_per_hour" FROM "resin_suspect" GROUP BY "id"`,
    );
    const lastOpen = new Map<string, number>();
    for (const e of expected.events) lastOpen.set(e.id, e.state === "resolved" ? 0 : 1);
    const got = new Map(
      lastState.results[0]?.series?.map((s) => [
        (s as unknown as { tags: { id: string } }).tags.id,
        s.values[0]?.[1],
      ]),
    );
    expect(got).toEqual(lastOpen);
    const rate = await query(
      `SELECT non_negative_derivative(last("consumed"), 1s) FROM "resin_pipeline" WHERE time > now() - 1h GROUP BY time(1s), "instance"`,
    );
    expect(rate.results[0]?.series?.length).toBe(1);
  });

  it("splits the components over partitions: two instances together publish the replay's events", async () => {
    const { server, nc } = await nats({ partitions: 2 });
    await publish(nc, LINES);
    const runs = [
      resin(server, "--partition", "0/2", "--instance", "p0"),
      resin(server, "--partition", "1/2", "--instance", "p1"),
    ];
    await drained(nc, `resin-${partitionKey({ index: 0, count: 2 })}`);
    await drained(nc, `resin-${partitionKey({ index: 1, count: 2 })}`);
    const stops = await Promise.all(runs.map((r) => r.stop()));
    expect(stops.map((s) => s.code)).toEqual([0, 0]);
    // Each instance saw a share of the stream, and together all of it.
    const consumed = stops.map((s) => s.stopped.consumed as number);
    expect(consumed.every((n) => n > 0)).toBe(true);
    const stored = (await (await jetstreamManager(nc)).streams.info("RESIN_TELEMETRY")).state.messages;
    expect(consumed[0]! + consumed[1]!).toBe(stored);
    // Per component, the events are the replay's in the replay's order.
    const got = (await suspectsOn(nc)).map((s) => JSON.parse(s) as { component: string });
    const byComponent = (events: { component: string }[]) => {
      const m = new Map<string, string[]>();
      for (const e of events) m.set(e.component, [...(m.get(e.component) ?? []), JSON.stringify(e)]);
      return Object.fromEntries([...m].sort());
    };
    expect(byComponent(got)).toEqual(byComponent(expected.events));
  });
});

describe("resin run: faults", { timeout: 180_000 }, () => {
  it("survives nats-server killed and restarted mid-stream", async () => {
    const { server, nc } = await nats();
    const vm = await startVictoriaMetrics();
    servers.push(vm);
    const run = resin(server, ...VM_FLAGS(vm));
    await run.logged("consuming telemetry");
    const publishing = publish(nc, LINES, 40_000);
    // Kill the server while telemetry flows in and resin is working through it.
    await waitFor(
      "resin to checkpoint",
      async () => run.logs.some((l) => l.msg === "checkpoint saved") || (await checkpointSeq(nc)) > 0,
    );
    await server.kill();
    await new Promise((r) => setTimeout(r, 1500));
    await server.start();
    const result = await publishing;
    expect(result.undelivered).toBe(0);
    await drained(nc, "resin-detect", 90_000);
    const { code, stopped } = await run.stop();
    expect(code).toBe(0);
    expect(await suspectsOn(nc)).toEqual(expected.suspects);
    expect(stopped).toMatchObject({ points: { dropped: 0, pending: 0 } });
    await expectSeriesIn(vm);
  });

  it("resumes after SIGKILL from its checkpoint: nothing lost, nothing published twice", async () => {
    const { server, nc } = await nats();
    await publish(nc, LINES);
    const total = (await (await jetstreamManager(nc)).streams.info("RESIN_TELEMETRY")).state.last_seq;
    const first = resin(server, "--batch", "500");
    await waitFor("a checkpoint mid-stream", async () => (await checkpointSeq(nc)) > 0);
    first.kill("SIGKILL");
    await first.exited;
    const at = await checkpointSeq(nc);
    expect(at).toBeLessThan(total);
    const second = resin(server);
    const restored = await second.logged("restored checkpoint");
    expect(restored.seq).toBe(at);
    await drained(nc, "resin-detect");
    const { code } = await second.stop();
    expect(code).toBe(0);
    expect(await suspectsOn(nc)).toEqual(expected.suspects);

    // A checkpoint made under other detector settings is refused, with the way out named.
    const changed = resin(server, "--lateness", "20m");
    const exit = await changed.exited;
    expect(exit.code).not.toBe(0);
    expect(changed.stderr.join("")).toMatch(/--reset-state/);
  });

  it("keeps every point while the time-series server is down, across a SIGKILL, and writes them once it is back", async () => {
    const { server, nc } = await nats();
    const vm = await startVictoriaMetrics();
    servers.push(vm);
    await vm.stop();
    await publish(nc, LINES);
    const first = resin(server, ...VM_FLAGS(vm), "--influx-retry-time", "10m");
    await drained(nc, "resin-detect");
    // Everything is processed and checkpointed; the points wait in the checkpoint. Crash.
    first.kill("SIGKILL");
    await first.exited;
    await vm.start();
    const second = resin(server, ...VM_FLAGS(vm));
    await second.logged("restored checkpoint");
    await expectSeriesIn(vm);
    const { code, stopped } = await second.stop();
    expect(code).toBe(0);
    expect(stopped).toMatchObject({ points: { dropped: 0, pending: 0 } });
    expect(await suspectsOn(nc)).toEqual(expected.suspects);
  });

  it("sends malformed, oversized and wrong-version messages to the dead letters and keeps going", async () => {
    const { server, nc } = await nats();
    await ensureStreams(await jetstreamManager(nc));
    const js = jetstream(nc);
    const good = LINES.slice(0, Math.floor(LINES.length / 2));
    const rest = LINES.slice(good.length);
    await publish(nc, good);
    const sample = JSON.parse(LINES[0]!) as Record<string, unknown>;
    const bad = [
      "{not json",
      JSON.stringify({ ...sample, v: 2 }),
      JSON.stringify({ ...sample, ts: "yesterday" }),
      JSON.stringify({ ...sample, padding: "x".repeat(300 * 1024) }),
    ];
    for (const b of bad) await js.publish("resin.telemetry.storage-cache.r00-h99999", b);
    await publish(nc, rest);
    const run = resin(server);
    await drained(nc, "resin-detect");
    const { code, stopped } = await run.stop();
    expect(code).toBe(0);
    expect(stopped).toMatchObject({ oversized: 1, deadLetters: 4 });
    const letters = (await deadLettersOn(nc)).map((d) => JSON.parse(d) as { reason: string; raw: string });
    // Oversized messages are set aside as they are taken, the others when their batch is decoded.
    expect(letters).toHaveLength(4);
    expect(letters.map((d) => d.reason)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/json/i),
        expect.stringMatching(/\bv\b.*2/),
        expect.stringMatching(/ts.*yesterday/),
        expect.stringMatching(/bytes exceeds the limit/),
      ]),
    );
    expect(await suspectsOn(nc)).toEqual(expected.suspects);
  });
});

/** Stream sequence of the saved checkpoint of the unpartitioned pipeline (0: none yet). */
async function checkpointSeq(nc: NatsConnection): Promise<number> {
  try {
    const store = await CheckpointStore.open(nc);
    return (await store.record(partitionKey({ index: 0, count: 1 })))?.seq ?? 0;
  } catch {
    return 0;
  }
}

/** `measurement,tags time` of a line: InfluxDB keeps one point per series and time. */
function seriesAndTime(line: string): string {
  const parts = line.split(/(?<!\\) /);
  return `${parts[0]} ${parts[parts.length - 1]}`;
}
