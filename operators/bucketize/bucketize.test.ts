import { map } from "rxjs/operators";
import { TestScheduler } from "rxjs/testing";
import { describe, expect, it } from "vitest";
import { BucketAnomalyCore, scoreBuckets } from "../bucket-anomaly/index.ts";
import type { ClosedWindow, SeriesInfo } from "../window/core.ts";
import { type BucketCounts, bucketize, bucketizeWindows } from "./index.ts";

const MB = 1024 * 1024;
const bounds = [100 * MB, 200 * MB, 400 * MB];

function info(slot: number, host: string, name = "p"): SeriesInfo {
  return {
    slot,
    host,
    component: "c",
    name,
    pid: slot,
    startedAt: 0,
    firstTs: 0,
    stream: slot,
    predecessor: undefined,
  };
}

function windowOf(start: number, values: number[], hosts?: string[]): ClosedWindow {
  const newSeries = values.map((_, i) => info(i, hosts?.[i] ?? `h${i}`));
  return {
    start,
    end: start + 1,
    newSeries,
    slots: values.map((_, i) => i),
    values,
    counts: values.map(() => 12),
    streams: [],
    ended: [],
  };
}

describe("bucketize", () => {
  it("counts distinct hosts at or above each bucket (cumulative)", () => {
    const w = windowOf(0, [50 * MB, 150 * MB, 250 * MB, 500 * MB]);
    const [c] = bucketize(w, (s) => w.newSeries[s], bounds);
    expect(c!.hosts).toEqual([3, 2, 1]);
    expect(c!.total).toBe(4);
  });

  it("counts a host once even with two processes of the same name", () => {
    const w = windowOf(0, [150 * MB, 450 * MB], ["h1", "h1"]);
    const [c] = bucketize(w, (s) => w.newSeries[s], bounds);
    expect(c!.hosts).toEqual([1, 1, 1]);
  });

  it("operator maps windows in virtual time", () => {
    new TestScheduler((a, b) => expect(a).toEqual(b)).run(({ cold, expectObservable }) => {
      const w = windowOf(0, [150 * MB]);
      const out = cold("-a|", { a: w }).pipe(bucketizeWindows(() => undefined, bounds));
      expectObservable(out).toBe("-a|", {
        a: [{ start: 0, component: "c", process: "p", hosts: [1, 0, 0], total: 1 }],
      });
    });
  });
});

describe("bucket anomaly", () => {
  const counts = (start: number, top: number): BucketCounts[] => [
    { start, component: "c", process: "p", hosts: [20, 2, top], total: 20 },
  ];

  it("flags the bucket whose host count rises above its baseline, in virtual time", () => {
    new TestScheduler((a, b) => expect(a).toEqual(b)).run(({ cold, expectObservable }) => {
      // 12 quiet windows with an empty top bucket, then 3 hosts reach it.
      const values: Record<string, BucketCounts[]> = { q: counts(0, 0), r: counts(1, 3) };
      const flags = cold("qqqqqqqqqqqqr|", values).pipe(
        scoreBuckets({ minBaseline: 6, minBucketBytes: 0 }, bounds),
        map((scores) => scores.filter((s) => s.anomalous).map((s) => s.lowerBytes)),
      );
      expectObservable(flags).toBe("qqqqqqqqqqqqr|", { q: [], r: [400 * MB] });
    });
  });

  it("scores a larger rise higher and needs a baseline first", () => {
    const core = new BucketAnomalyCore({ minBaseline: 6, minBucketBytes: 0 }, bounds);
    expect(core.score(counts(0, 5)).some((s) => s.anomalous)).toBe(false);
    for (let i = 1; i < 12; i++) core.score(counts(i, 0));
    const small = new BucketAnomalyCore({ minBaseline: 6, minBucketBytes: 0 }, bounds);
    for (let i = 0; i < 12; i++) small.score(counts(i, 0));
    const top = (s: ReturnType<typeof core.score>) => s.find((x) => x.lowerBytes === 400 * MB)!.score;
    expect(top(core.score(counts(12, 6)))).toBeGreaterThan(top(small.score(counts(12, 2))));
  });

  it("never alerts on a mass drop (cumulative counts only fall)", () => {
    const core = new BucketAnomalyCore({ minBaseline: 6, minBucketBytes: 0 }, bounds);
    for (let i = 0; i < 12; i++)
      core.score([{ start: i, component: "c", process: "p", hosts: [20, 10, 5], total: 20 }]);
    const s = core.score([{ start: 12, component: "c", process: "p", hosts: [20, 0, 0], total: 20 }]);
    expect(s.some((x) => x.anomalous)).toBe(false);
  });
});
