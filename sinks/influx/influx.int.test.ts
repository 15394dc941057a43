/**
 * The InfluxDB sink against real servers: VictoriaMetrics for the v2 write API (read back
 * through its export API) and InfluxDB 1.x for the v1 API (read back with InfluxQL).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startInfluxDb1, startVictoriaMetrics, type TestServer, waitFor } from "../../lib/testing/servers.ts";
import type { BucketScore } from "../../operators/bucket-anomaly/core.ts";
import type { SeriesInfo, StreamSnapshot } from "../../operators/window/core.ts";
import type { WindowResult } from "../../pipelines/detect.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import { pipelineLine, suspectLines, windowLines } from "./points.ts";
import { InfluxSink, type InfluxSinkLog } from "./sink.ts";

const T0 = 1_767_571_200_000;
const HOUR = 3_600_000;

const warnings: string[] = [];
const log: InfluxSinkLog = { warn: (_obj, msg) => warnings.push(msg) };

function info(slot: number, host: string, name: string): SeriesInfo {
  return {
    slot,
    host,
    component: "storage-cache",
    name,
    pid: 4242 + slot,
    startedAt: undefined,
    firstTs: T0,
    stream: slot,
    predecessor: undefined,
  };
}

function snapshot(stream: number, host: string, region: string, cluster: string): StreamSnapshot {
  return {
    stream,
    host,
    component: "storage-cache",
    region,
    cluster,
    version: "1",
    vms: 7,
    totalBytes: undefined,
    usedBytes: undefined,
  };
}

const seriesBySlot = new Map([
  [0, info(0, "r00-h00042", "storage cache, primary")],
  [1, info(1, "r00-h00043", "storage-cache")],
]);

function bucket(lowerBytes: number, hosts: number, score: number, anomalous: boolean): BucketScore {
  const base = { start: T0, component: "storage-cache", process: "storage-cache" };
  return { ...base, lowerBytes, hosts, baselineMean: 0.5, score, anomalous };
}

const result: WindowResult = {
  window: {
    start: T0,
    end: T0 + HOUR,
    newSeries: [...seriesBySlot.values()],
    slots: [0, 1],
    values: [1_932_735_283, 2_147_483_648],
    counts: [12, 11],
    streams: [snapshot(0, "r00-h00042", "west europe", "c17"), snapshot(1, "r00-h00043", "eastus", "")],
    ended: [],
  },
  counts: [],
  scores: [bucket(1_073_741_824, 2, 0, false), bucket(2_147_483_648, 1, 12.5, true)],
  events: [],
};

const events: SuspectEvent[] = [
  {
    v: 1,
    id: "storage-cache/r00-h00042/storage-cache/4242",
    state: "open",
    kind: "process",
    component: "storage-cache",
    host: "r00-h00042",
    process: "storage cache, primary",
    pid: 4242,
    start: T0 - 12 * HOUR,
    end: T0,
    detectedAt: T0 + HOUR,
    severity: 7.4,
    pattern: "stair",
    growthBytesPerHour: 18_874_368,
    bucket: { lowerBytes: 2_147_483_648, hosts: 1, score: 12.5 },
  },
];
events.push({ ...events[0]!, state: "resolved", detectedAt: T0 + 5 * HOUR, severity: 2, bucket: undefined });

const counters = { decoded: 1200, invalid: 3, trackedSeries: 2, consumerLag: 0 };
const WALL = T0 + 5 * HOUR + 1234;

function allLines(instance: string): string[] {
  return [
    ...windowLines(result, (slot) => seriesBySlot.get(slot)),
    ...suspectLines(events),
    pipelineLine(counters, { instance, partition: "detect" }, WALL)!,
  ];
}

describe("InfluxSink → VictoriaMetrics (api v2)", () => {
  let vm: TestServer;

  interface Exported {
    metric: Record<string, string>;
    values: number[];
    timestamps: number[];
  }

  /** Every series matching `selector`, once at least `count` are visible. */
  async function exported(selector: string, count: number): Promise<Exported[]> {
    let series: Exported[] = [];
    await waitFor(`${count} series for ${selector}`, async () => {
      await (await fetch(`${vm.url}/internal/force_flush`)).arrayBuffer();
      const res = await fetch(`${vm.url}/api/v1/export?match[]=${encodeURIComponent(selector)}`);
      const text = await res.text();
      series = text
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => JSON.parse(l) as Exported);
      return series.length >= count;
    });
    return series;
  }

  function find(series: Exported[], name: string, labels: Record<string, string> = {}): Exported {
    const found = series.filter(
      (s) => s.metric.__name__ === name && Object.entries(labels).every(([k, v]) => s.metric[k] === v),
    );
    expect(found, `${name} ${JSON.stringify(labels)}`).toHaveLength(1);
    return found[0]!;
  }

  beforeAll(async () => {
    vm = await startVictoriaMetrics();
  });

  afterAll(async () => {
    await vm?.dispose();
  });

  it("writes every measurement; the export has the same values and timestamps", async () => {
    const sink = new InfluxSink({ url: vm.url, org: "resin", bucket: "resin", flushIntervalMs: 50 }, { log });
    await sink.healthcheck();
    const lines = allLines("it-v2");
    sink.write(lines);
    await sink.flush();
    expect(sink.stats).toMatchObject({
      accepted: lines.length,
      written: lines.length,
      dropped: 0,
      pending: 0,
    });
    expect(await sink.close()).toEqual({ undelivered: 0 });

    // memory 2×2, bucket 2×4, suspect 9 (open, with bucket) + 6 (resolved), pipeline 4
    const series = await exported('{__name__=~"resin_.*"}', 4 + 8 + 15 + 4);
    expect(series).toHaveLength(31);

    const bytes = find(series, "resin_memory_bytes", { host: "r00-h00042" });
    expect(bytes.metric).toEqual({
      __name__: "resin_memory_bytes",
      component: "storage-cache",
      process: "storage cache, primary",
      host: "r00-h00042",
      region: "west europe",
      cluster: "c17",
    });
    expect(bytes).toMatchObject({ values: [1_932_735_283], timestamps: [T0] });
    const other = find(series, "resin_memory_samples", { host: "r00-h00043" });
    expect(other.metric.cluster).toBeUndefined();
    expect(other).toMatchObject({ values: [11], timestamps: [T0] });
    expect(find(series, "resin_memory_bytes", { host: "r00-h00043" }).values).toEqual([2_147_483_648]);

    const score = find(series, "resin_bucket_score", { lower_bytes: "2147483648" });
    expect(score).toMatchObject({ values: [12.5], timestamps: [T0] });
    expect(find(series, "resin_bucket_anomalous", { lower_bytes: "2147483648" }).values).toEqual([1]);
    expect(find(series, "resin_bucket_anomalous", { lower_bytes: "1073741824" }).values).toEqual([0]);
    expect(find(series, "resin_bucket_hosts", { lower_bytes: "1073741824" }).values).toEqual([2]);
    expect(find(series, "resin_bucket_baseline", { lower_bytes: "1073741824" }).values).toEqual([0.5]);

    const severity = find(series, "resin_suspect_severity", { state: "open" });
    expect(severity.metric).toMatchObject({
      id: "storage-cache/r00-h00042/storage-cache/4242",
      kind: "process",
      pattern: "stair",
      process: "storage cache, primary",
    });
    expect(severity).toMatchObject({ values: [7.4], timestamps: [T0 + HOUR] });
    expect(find(series, "resin_suspect_bucket_lower_bytes", { state: "open" }).values).toEqual([
      2_147_483_648,
    ]);
    expect(find(series, "resin_suspect_start_ms", { state: "open" }).values).toEqual([T0 - 12 * HOUR]);
    expect(find(series, "resin_suspect_open", { state: "resolved" })).toMatchObject({
      values: [0],
      timestamps: [T0 + 5 * HOUR],
    });
    expect(
      series.filter((s) => s.metric.state === "resolved" && s.metric.__name__?.includes("bucket")),
    ).toEqual([]);

    expect(find(series, "resin_pipeline_tracked_series", { instance: "it-v2" })).toMatchObject({
      values: [2],
      timestamps: [WALL],
    });
    expect(find(series, "resin_pipeline_decoded", { partition: "detect" }).values).toEqual([1200]);
  });

  it("keeps accepting while the server is down, and delivers everything once it is back", async () => {
    const sink = new InfluxSink(
      {
        url: vm.url,
        org: "resin",
        bucket: "resin",
        batchSize: 10,
        flushIntervalMs: 20,
        maxRetries: 100,
        minRetryDelayMs: 50,
        maxRetryDelayMs: 200,
        maxRetryTimeMs: 60_000,
      },
      { log },
    );
    await vm.stop();
    const lines = Array.from(
      { length: 25 },
      (_, i) => pipelineLine({ decoded: i }, { instance: "outage", partition: "detect" }, WALL + i * 1000)!,
    );
    try {
      for (let i = 0; i < lines.length; i += 5) sink.write(lines.slice(i, i + 5));
      await waitFor("a failed attempt", () => sink.stats.retried > 0);
      expect(sink.stats).toMatchObject({ accepted: 25, written: 0, dropped: 0, pending: 25 });
      expect(new Set(sink.pendingLines())).toEqual(new Set(lines));
    } finally {
      await vm.start();
    }
    await waitFor("delivery after the restart", () => sink.stats.pending === 0);
    expect(sink.stats).toMatchObject({ accepted: 25, written: 25, dropped: 0 });
    expect(await sink.close()).toEqual({ undelivered: 0 });

    const [decoded] = await exported('{__name__="resin_pipeline_decoded",instance="outage"}', 1);
    const points = decoded!.timestamps.map((t, i) => [t, decoded!.values[i]]);
    expect(points).toEqual(lines.map((_, i) => [WALL + i * 1000, i]));
  });

  it("drops, and counts, what it cannot deliver while the server stays down", async () => {
    const sink = new InfluxSink(
      {
        url: vm.url,
        org: "resin",
        bucket: "resin",
        batchSize: 5,
        flushIntervalMs: 20,
        maxRetries: 2,
        minRetryDelayMs: 20,
        maxRetryDelayMs: 50,
        maxRetryTimeMs: 300,
        maxBufferLines: 10,
        flushTimeoutMs: 500,
      },
      { log },
    );
    await vm.stop();
    try {
      const lines = (from: number, n: number) =>
        Array.from(
          { length: n },
          (_, i) =>
            pipelineLine(
              { decoded: from + i },
              { instance: "down", partition: "detect" },
              WALL + (from + i) * 1000,
            )!,
        );
      for (let i = 0; i < 40; i += 5) sink.write(lines(i, 5));
      expect(() => sink.write(lines(40, 2))).not.toThrow();
      await waitFor("every line settled", () => sink.stats.pending === 0);
      expect(sink.stats).toMatchObject({ accepted: 42, written: 0, dropped: 42, pending: 0 });

      // close while lines are still waiting: bounded by flushTimeoutMs, undelivered reported
      sink.write(lines(100, 3));
      const { undelivered } = await sink.close();
      const s = sink.stats;
      expect(s.written + s.dropped).toBe(s.accepted);
      expect(s).toMatchObject({ accepted: 45, written: 0, dropped: 45, pending: 0 });
      expect(undelivered).toBeLessThanOrEqual(3);
      expect(warnings.some((w) => w.includes("dropped"))).toBe(true);
    } finally {
      await vm.start();
    }
  });
});

describe("InfluxSink → InfluxDB 1.x (api v1)", () => {
  let influx: TestServer;

  beforeAll(async () => {
    influx = await startInfluxDb1();
  });

  afterAll(async () => {
    await influx?.dispose();
  });

  async function select(q: string): Promise<{ columns: string[]; values: unknown[][] }[]> {
    const res = await fetch(`${influx.url}/query?db=resin&epoch=ms&q=${encodeURIComponent(q)}`);
    const body = (await res.json()) as {
      results: { series?: { columns: string[]; values: unknown[][] }[] }[];
    };
    return body.results[0]?.series ?? [];
  }

  it("creates the database, writes every measurement, and InfluxQL reads them back", async () => {
    const sink = new InfluxSink(
      { api: "v1", url: influx.url, database: "resin", retentionPolicy: "autogen", flushIntervalMs: 50 },
      { log },
    );
    await sink.healthcheck();
    await sink.healthcheck(); // CREATE DATABASE is idempotent
    const lines = allLines("it-v1");
    sink.write(lines);
    await sink.flush();
    expect(sink.stats).toMatchObject({
      accepted: lines.length,
      written: lines.length,
      dropped: 0,
      pending: 0,
    });
    expect(await sink.close()).toEqual({ undelivered: 0 });

    const [buckets] = await select("SELECT * FROM resin_bucket ORDER BY time");
    expect(buckets!.columns).toEqual([
      "time",
      "anomalous",
      "baseline",
      "component",
      "hosts",
      "lower_bytes",
      "process",
      "score",
    ]);
    expect(buckets!.values).toEqual([
      [T0, 0, 0.5, "storage-cache", 2, "1073741824", "storage-cache", 0],
      [T0, 1, 0.5, "storage-cache", 1, "2147483648", "storage-cache", 12.5],
    ]);

    const [memory] = await select(
      "SELECT bytes, samples, region, cluster FROM resin_memory WHERE host = 'r00-h00042'",
    );
    expect(memory!.values).toEqual([[T0, 1_932_735_283, 12, "west europe", "c17"]]);

    const [suspects] = await select(
      'SELECT "open", severity, growth_bytes_per_hour, bucket_score, "state", process FROM resin_suspect ORDER BY time',
    );
    expect(suspects!.values).toEqual([
      [T0 + HOUR, 1, 7.4, 18_874_368, 12.5, "open", "storage cache, primary"],
      [T0 + 5 * HOUR, 0, 2, 18_874_368, null, "resolved", "storage cache, primary"],
    ]);

    const [pipeline] = await select("SELECT * FROM resin_pipeline");
    expect(pipeline!.columns).toEqual([
      "time",
      "consumer_lag",
      "decoded",
      "instance",
      "invalid",
      "partition",
      "tracked_series",
    ]);
    expect(pipeline!.values).toEqual([[WALL, 0, 1200, "it-v1", 3, "detect", 2]]);
  });

  it("reports a write the server rejects as dropped, and the rest of a partial write as written", async () => {
    const sink = new InfluxSink(
      { api: "v1", url: influx.url, database: "resin", flushIntervalMs: 0 },
      { log },
    );
    await sink.healthcheck();
    // hosts was written as an integer above: a float now conflicts, for that line only
    sink.write([
      `resin_bucket,component=c,process=p,lower_bytes=1 hosts=1.5,score=1 ${T0}`,
      `resin_bucket,component=c,process=p,lower_bytes=2 hosts=2i,score=1 ${T0}`,
    ]);
    await sink.flush();
    expect(sink.stats).toMatchObject({ accepted: 2, written: 1, dropped: 1, pending: 0 });
    await sink.close();
    const [rows] = await select("SELECT hosts FROM resin_bucket WHERE component = 'c'");
    expect(rows!.values).toEqual([[T0, 2]]);
  });
});
