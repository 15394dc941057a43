import { describe, expect, it } from "vitest";
import type { BucketScore } from "../../operators/bucket-anomaly/core.ts";
import type { ClosedWindow, SeriesInfo, StreamSnapshot } from "../../operators/window/core.ts";
import type { WindowResult } from "../../pipelines/detect.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import {
  bucketLines,
  MEASUREMENT,
  memoryLines,
  OpenSuspects,
  pipelineLine,
  snakeCase,
  suspectLine,
  suspectLines,
  tagValue,
  windowLines,
} from "./points.ts";

const T0 = 1_767_571_200_000;

function series(slot: number, stream: number, host: string, name: string, pid = 100 + slot): SeriesInfo {
  return {
    slot,
    host,
    component: "storage-cache",
    name,
    pid,
    startedAt: undefined,
    firstTs: T0,
    stream,
    predecessor: undefined,
  };
}

function stream(streamSlot: number, host: string, region: string, cluster: string): StreamSnapshot {
  return {
    stream: streamSlot,
    host,
    component: "storage-cache",
    region,
    cluster,
    version: "1.0",
    vms: undefined,
    totalBytes: undefined,
    usedBytes: undefined,
  };
}

function result(window: Partial<ClosedWindow>, scores: BucketScore[] = []): WindowResult {
  return {
    window: {
      start: T0,
      end: T0 + 3_600_000,
      newSeries: [],
      slots: [],
      values: [],
      counts: [],
      streams: [],
      ended: [],
      ...window,
    },
    counts: [],
    scores,
    events: [],
  };
}

const known = new Map<number, SeriesInfo>([
  [0, series(0, 0, "r00-h00042", "storage cache, primary")],
  [1, series(1, 1, "r00-h00043", "storage-cache")],
]);
const lookup = (slot: number) => known.get(slot);

const memoryWindow = result({
  slots: [0, 1, 7],
  values: [1_932_735_283, 1_048_576.5, 5],
  counts: [12, 11, 3],
  streams: [stream(0, "r00-h00042", "west europe", "c=17"), stream(1, "r00-h00043", "eastus", "")],
});

describe("resin_memory", () => {
  it("writes one point per known series at the window start, escaping tag values", () => {
    expect(memoryLines(memoryWindow, lookup)).toEqual([
      "resin_memory,cluster=c\\=17,component=storage-cache,host=r00-h00042,process=storage\\ cache\\,\\ primary,region=west\\ europe bytes=1932735283i,samples=12i 1767571200000",
      // empty cluster omitted, the median rounded to an integer; slot 7 has no identity: skipped
      "resin_memory,component=storage-cache,host=r00-h00043,process=storage-cache,region=eastus bytes=1048577i,samples=11i 1767571200000",
    ]);
  });

  it("honours processSeries", () => {
    expect(memoryLines(memoryWindow, lookup, { processSeries: "none" })).toEqual([]);
    expect(memoryLines(memoryWindow, lookup, { processSeries: "suspects" })).toEqual([]);
    const onlyH43 = memoryLines(memoryWindow, lookup, {
      processSeries: "suspects",
      isSuspect: (info) => info.host === "r00-h00043",
    });
    expect(onlyH43).toHaveLength(1);
    expect(onlyH43[0]).toContain("host=r00-h00043");
  });

  it("follows open suspects from their events", () => {
    const open = new OpenSuspects();
    const event = suspect({ host: "r00-h00043", process: "storage-cache", pid: 101 });
    open.observe(event);
    expect(
      memoryLines(memoryWindow, lookup, { processSeries: "suspects", isSuspect: open.has }),
    ).toHaveLength(1);
    open.observe({ ...event, state: "resolved" });
    expect(open.size).toBe(0);
  });
});

function score(over: Partial<BucketScore>): BucketScore {
  return {
    start: T0,
    component: "storage-cache",
    process: "storage-cache",
    lowerBytes: 2_147_483_648,
    hosts: 3,
    baselineMean: 0.67,
    score: 12,
    anomalous: true,
    ...over,
  };
}

describe("resin_bucket", () => {
  it("writes integer hosts and anomalous, float score and baseline, the lower bound as a tag", () => {
    const lines = bucketLines(
      result({}, [
        score({}),
        score({ lowerBytes: 52_428_800, hosts: 0, baselineMean: 0, score: 0, anomalous: false }),
        score({ lowerBytes: 104_857_600, hosts: 0, baselineMean: 1.5, score: 0, anomalous: false }),
        score({ process: "worker pool", lowerBytes: 209_715_200, hosts: 40, score: 3.25, anomalous: false }),
      ]),
    );
    expect(lines).toEqual([
      "resin_bucket,component=storage-cache,lower_bytes=2147483648,process=storage-cache anomalous=1i,baseline=0.67,hosts=3i,score=12 1767571200000",
      // hosts 0 and baseline 0: skipped; hosts 0 with a baseline: kept
      "resin_bucket,component=storage-cache,lower_bytes=104857600,process=storage-cache anomalous=0i,baseline=1.5,hosts=0i,score=0 1767571200000",
      "resin_bucket,component=storage-cache,lower_bytes=209715200,process=worker\\ pool anomalous=0i,baseline=0.67,hosts=40i,score=3.25 1767571200000",
    ]);
  });

  it("windowLines gives memory then bucket lines", () => {
    const r = { ...memoryWindow, scores: [score({})] };
    const lines = windowLines(r, lookup);
    expect(lines.map((l) => l.split(",")[0])).toEqual([
      MEASUREMENT.memory,
      MEASUREMENT.memory,
      MEASUREMENT.bucket,
    ]);
  });
});

function suspect(over: Partial<SuspectEvent>): SuspectEvent {
  return {
    v: 1,
    id: "storage-cache/r00-h00042/storage-cache/4242",
    state: "open",
    kind: "process",
    component: "storage-cache",
    host: "r00-h00042",
    process: "storage-cache",
    pid: 4242,
    start: 1_767_657_600_000,
    end: 1_767_700_800_000,
    detectedAt: 1_767_700_800_000,
    severity: 7.4,
    pattern: "steady",
    growthBytesPerHour: 18_874_368.4,
    ...over,
  };
}

describe("resin_suspect", () => {
  it("writes the event at detectedAt with bucket evidence when present", () => {
    expect(suspectLine(suspect({ bucket: { lowerBytes: 2_147_483_648, hosts: 3, score: 12.1 } }))).toBe(
      "resin_suspect,component=storage-cache,host=r00-h00042,id=storage-cache/r00-h00042/storage-cache/4242,kind=process,pattern=steady,process=storage-cache,state=open " +
        "bucket_hosts=3i,bucket_lower_bytes=2147483648i,bucket_score=12.1,end_ms=1767700800000i,growth_bytes_per_hour=18874368i,open=1i,pid=4242i,severity=7.4,start_ms=1767657600000i 1767700800000",
    );
  });

  it("omits bucket fields without evidence, marks resolved as not open, keeps a whole severity a float", () => {
    const line = suspectLine(
      suspect({ state: "resolved", severity: 7, process: "pool tag", kind: "kernel", id: "a b,c" }),
    );
    expect(line).toBe(
      "resin_suspect,component=storage-cache,host=r00-h00042,id=a\\ b\\,c,kind=kernel,pattern=steady,process=pool\\ tag,state=resolved " +
        "end_ms=1767700800000i,growth_bytes_per_hour=18874368i,open=0i,pid=4242i,severity=7,start_ms=1767657600000i 1767700800000",
    );
  });

  it("leaves out a value that is not finite instead of throwing", () => {
    const line = suspectLine(suspect({ severity: Number.NaN, state: "update" }));
    expect(line).not.toContain("severity");
    expect(line).toContain("open=1i");
    expect(suspectLines([suspect({}), suspect({ state: "resolved" })])).toHaveLength(2);
  });
});

describe("resin_pipeline", () => {
  it("writes every finite counter as an integer field named in snake_case", () => {
    const line = pipelineLine(
      {
        decoded: 120,
        trackedSeries: 42,
        consumer_lag: 3,
        late: Number.NaN,
        lagRatio: 0.6,
        windows: Number.POSITIVE_INFINITY,
      },
      { instance: "host a", partition: "detect-p0of4" },
      1_767_700_812_345,
    );
    expect(line).toBe(
      "resin_pipeline,instance=host\\ a,partition=detect-p0of4 consumer_lag=3i,decoded=120i,lag_ratio=1i,tracked_series=42i 1767700812345",
    );
  });

  it("gives no line without a finite counter", () => {
    expect(pipelineLine({ late: Number.NaN }, { instance: "i", partition: "detect" }, T0)).toBeUndefined();
  });
});

describe("helpers", () => {
  it("tagValue drops empty values and trailing backslashes", () => {
    expect(tagValue(undefined)).toBeUndefined();
    expect(tagValue("")).toBeUndefined();
    expect(tagValue("\\\\")).toBeUndefined();
    expect(tagValue("C:\\tmp\\")).toBe("C:\\tmp");
    expect(tagValue("a b")).toBe("a b");
  });

  it("snakeCase", () => {
    expect(snakeCase("consumerLag")).toBe("consumer_lag");
    expect(snakeCase("points_written")).toBe("points_written");
    expect(snakeCase("openSuspects2X")).toBe("open_suspects2_x");
  });
});
