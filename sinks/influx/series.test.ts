import { afterEach, describe, expect, it } from "vitest";
import type { SeriesInfo } from "../../operators/window/core.ts";
import type { WindowResult } from "../../pipelines/detect.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import { InfluxSeriesSink } from "./series.ts";
import { InfluxSink } from "./sink.ts";

const T0 = 1_767_571_200_000;
const HOUR = 3_600_000;

const info = (slot: number, host: string): SeriesInfo => ({
  slot,
  host,
  component: "svc",
  name: "svc",
  pid: 100 + slot,
  startedAt: undefined,
  firstTs: T0,
  stream: slot,
  predecessor: undefined,
});
const series = [info(0, "h0"), info(1, "h1")];

function window(start: number): WindowResult {
  return {
    window: {
      start,
      end: start + HOUR,
      newSeries: [],
      slots: [0, 1],
      values: [1e9, 2e9],
      counts: [12, 12],
      streams: [],
      ended: [],
    },
    counts: [],
    scores: [],
    events: [],
  };
}

const open: SuspectEvent = {
  v: 1,
  id: "svc/h1/svc/101",
  state: "open",
  kind: "process",
  component: "svc",
  host: "h1",
  process: "svc",
  pid: 101,
  start: T0 - 10 * HOUR,
  end: T0,
  detectedAt: T0 + HOUR,
  severity: 5,
  pattern: "steady",
  growthBytesPerHour: 1e7,
};

const sinks: InfluxSink[] = [];
/** A sink whose lines stay pending: nothing listens on port 9, and only flush() would send. */
function sink(processSeries: "all" | "suspects" | "none"): InfluxSink {
  const s = new InfluxSink({
    url: "http://127.0.0.1:9",
    org: "o",
    bucket: "b",
    flushIntervalMs: 0,
    processSeries,
  });
  sinks.push(s);
  return s;
}

afterEach(async () => {
  for (const s of sinks.splice(0)) await s.close();
});

const memoryHosts = (lines: string[]) =>
  lines.filter((l) => l.startsWith("resin_memory,")).map((l) => /host=([^,]+)/.exec(l)?.[1]);

describe("InfluxSeriesSink", () => {
  it("with processSeries=suspects writes memory only for open suspects, and keeps them across a restart", () => {
    const a = new InfluxSeriesSink(sink("suspects"), { instance: "i", partition: "0/1" });
    const lookup = (slot: number) => series[slot];
    a.window(window(T0), lookup);
    expect(memoryHosts(a.pendingLines())).toEqual([]);
    a.suspect(open);
    a.window(window(T0 + HOUR), lookup);
    expect(memoryHosts(a.pendingLines())).toEqual(["h1"]);
    expect(a.pendingLines().filter((l) => l.startsWith("resin_suspect,"))).toHaveLength(1);

    // What a checkpoint keeps, a new sink restores: the open suspect still selects its series.
    const b = new InfluxSeriesSink(sink("suspects"), { instance: "i", partition: "0/1" });
    b.restoreState(structuredClone(a.captureState()));
    b.requeue(a.pendingLines());
    b.window(window(T0 + 2 * HOUR), lookup);
    expect(memoryHosts(b.pendingLines())).toEqual(["h1", "h1"]);

    b.suspect({ ...open, state: "resolved", detectedAt: T0 + 3 * HOUR });
    b.window(window(T0 + 3 * HOUR), lookup);
    expect(memoryHosts(b.pendingLines())).toEqual(["h1", "h1"]);
  });

  it("with processSeries=all writes every series; pipeline counters carry instance and partition", () => {
    const a = new InfluxSeriesSink(
      sink("all"),
      { instance: "resin-0", partition: "1/2" },
      () => T0 + 5 * HOUR,
    );
    a.window(window(T0), (slot) => series[slot]);
    a.pipeline({ consumed: 10, consumerLag: 2 });
    const lines = a.pendingLines();
    expect(memoryHosts(lines)).toEqual(["h0", "h1"]);
    expect(lines).toContain(
      `resin_pipeline,instance=resin-0,partition=1/2 consumed=10i,consumer_lag=2i ${T0 + 5 * HOUR}`,
    );
    expect(a.stats).toMatchObject({ accepted: 3, written: 0, pending: 3 });
  });
});
