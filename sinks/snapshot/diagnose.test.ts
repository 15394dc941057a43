import { describe, expect, it } from "vitest";
import type { HeapProfile } from "../../lib/heap/profile.ts";
import { type DiagnoseInput, diagnose, type LeakEstimate } from "./diagnose.ts";

const MiB = 1024 * 1024;
const HALF_HOUR = 30 * 60_000;
const T0 = Date.UTC(2025, 0, 1);

/** Stack named after its leaf function, under a common caller. */
function frames(fn: string) {
  return [
    { fn, file: `/srv/app/${fn}.js`, line: 10 },
    { fn: "handleRequest", file: "/srv/app/server.js", line: 3 },
  ];
}

/** A series of profiles 30 min apart from in-use MiB per stack per profile. */
function series(mib: Record<string, number[]>): HeapProfile[] {
  const n = Math.max(...Object.values(mib).map((v) => v.length));
  return Array.from({ length: n }, (_, i) => ({
    takenAt: T0 + i * HALF_HOUR,
    stacks: Object.entries(mib)
      .filter(([, v]) => v[i] !== undefined && v[i] > 0)
      .map(([fn, v]) => ({ frames: frames(fn), bytes: v[i]! * MiB, objects: Math.ceil(v[i]!) })),
  }));
}

const steady = (mibPerHour: number): LeakEstimate => ({
  pattern: "steady",
  growthBytesPerHour: mibPerHour * MiB,
});
const leaves = (input: DiagnoseInput) => diagnose(input).culprits.map((c) => c.frames[0]!.fn);

describe("diagnose", () => {
  it("finds a steady leak among churn that moves more than it does", () => {
    const profiles = series({
      retainSessionBuffers: [10, 11, 12, 13, 14, 15],
      parseBody: [0, 6, 1, 7, 2, 8],
      renderPage: [3, 1, 4, 1, 5, 4],
      config: [2, 2, 2, 2, 2, 2],
    });
    const d = diagnose({ profiles, estimate: steady(2) });
    expect(d.method).toBe("series");
    expect(d.windowMs).toBe(5 * HALF_HOUR);
    expect(d.culprits.map((c) => c.frames[0]!.fn)).toEqual([
      "retainSessionBuffers",
      "parseBody",
      "renderPage",
    ]);
    const [leak, churn] = d.culprits;
    expect(leak).toMatchObject({ growthBytes: 5 * MiB, growingIntervals: 5, intervals: 5 });
    expect(leak!.growthShare).toBeCloseTo(5 / (5 + 8 + 1));
    expect(leak!.frames).toEqual(frames("retainSessionBuffers"));
    expect(leak!.reason).toBe(
      "grew 5.0 MiB, in 5 of 5 intervals, kept 100% of what moved, 60% of it in the later half",
    );
    expect(churn!.reason).toMatch(/kept 29% of what moved/);
    expect(leak!.score).toBeGreaterThan(3 * churn!.score);
  });

  it("does not rank a cache that filled and settled over a smaller steady leak", () => {
    const profiles = series({
      lruCacheSet: [0, 8, 12, 12, 12, 12],
      retainSessionBuffers: [1, 2, 3, 4, 5, 6],
      tokenCache: [0, 4, 6, 5.9, 6.1, 6], // full, replacing entries
    });
    const d = diagnose({ profiles, estimate: steady(17 / 2.5) });
    expect(d.culprits.map((c) => c.frames[0]!.fn)).toEqual([
      "retainSessionBuffers",
      "lruCacheSet",
      "tokenCache",
    ]);
    expect(d.culprits[1]!.reason).toMatch(/grew early then settled, like a cache filling/);
    expect(d.culprits[1]!.growthBytes).toBe(12 * MiB);
    expect(d.culprits[0]!.score).toBeGreaterThan(5 * d.culprits[1]!.score);
  });

  it("drops a stack that grows just as much on healthy hosts and down-weights one that grows a little there", () => {
    const profiles = series({
      warmJitCache: [0, 2, 4, 6, 8, 10],
      retainSessionBuffers: [0, 1, 2, 3, 4, 5],
      metricsRegistry: [0, 1.5, 3, 4.5, 6, 7.5],
    });
    const estimate = steady(9);
    expect(leaves({ profiles, estimate })).toEqual([
      "warmJitCache",
      "metricsRegistry",
      "retainSessionBuffers",
    ]);

    const references = [
      series({ warmJitCache: [0, 2, 4, 6], metricsRegistry: [1, 1.6, 2.2, 2.8] }),
      series({ warmJitCache: [1, 2.8, 4.9, 7], metricsRegistry: [0, 0.6, 1.2, 1.8] }),
      series({ warmJitCache: [0, 1.9, 4.1, 5.9] }), // older build: no metrics registry
      [series({ retainSessionBuffers: [1] })[0]!], // one profile: no rate, ignored
    ];
    const d = diagnose({ profiles, references, estimate });
    expect(d.culprits.map((c) => c.frames[0]!.fn)).toEqual(["retainSessionBuffers", "metricsRegistry"]);
    expect(d.dropped).toEqual({ tooLarge: 0, onReferences: 1 });
    // metricsRegistry grows 1.2 MiB/h on the median healthy host against 3 MiB/h here.
    expect(d.culprits[1]!.reason).toMatch(/grows 40% as fast on healthy hosts/);
    expect(d.culprits[1]!.score).toBeCloseTo(7.5 * MiB * 0.6);
    expect(d.culprits[0]!.reason).not.toMatch(/healthy/);
  });

  it("ranks a stair leak over a cache fill and slow steady growth", () => {
    const profiles = series({
      retainSessionBuffers: [2, 2, 5, 5, 8, 8],
      lruCacheSet: [0, 4, 4, 4, 4, 4],
      auditLog: [0, 0.2, 0.4, 0.6, 0.8, 1],
      parseBody: [1, 3, 0, 2, 1, 2],
    });
    const estimate: LeakEstimate = { pattern: "stair", growthBytesPerHour: ((6 + 4 + 1) * MiB) / 2.5 };
    const d = diagnose({ profiles, estimate });
    expect(d.culprits.map((c) => c.frames[0]!.fn)).toEqual([
      "retainSessionBuffers",
      "auditLog",
      "lruCacheSet",
      "parseBody",
    ]);
    expect(d.culprits[0]).toMatchObject({ growthBytes: 6 * MiB, growingIntervals: 2 });
    // Read as steady growth, growing in only 2 of 5 intervals would cost it 60% of its score.
    const asSteady = diagnose({ profiles, estimate: { ...estimate, pattern: "steady" } });
    expect(asSteady.culprits[0]!.score).toBeCloseTo(d.culprits[0]!.score * (2 / 5));
  });

  it("keeps a spike far larger than the slope, which other patterns drop", () => {
    const profiles = series({
      loadTenantSnapshot: [0, 0, 0, 50, 50, 50],
      retainSessionBuffers: [0, 0.1, 0.2, 0.3, 0.4, 0.5],
      parseBody: [1, 2, 1, 2, 1, 2],
    });
    const spike: LeakEstimate = { pattern: "spike", growthBytesPerHour: 1 * MiB };
    const d = diagnose({ profiles, estimate: spike });
    expect(d.culprits[0]).toMatchObject({ growthBytes: 50 * MiB, growingIntervals: 1 });
    expect(d.culprits[0]!.frames[0]!.fn).toBe("loadTenantSnapshot");
    expect(d.dropped.tooLarge).toBe(0);

    // Read as steady growth of 1 MiB/h, 50 MiB in 2.5 h is something else: dropped.
    const asSteady = diagnose({ profiles, estimate: steady(1) });
    expect(asSteady.dropped.tooLarge).toBe(1);
    expect(asSteady.culprits.map((c) => c.frames[0]!.fn)).toEqual(["retainSessionBuffers", "parseBody"]);
    expect(asSteady.culprits[0]!.growthShare).toBeCloseTo(0.5 / (50 + 0.5 + 1));
  });

  it("names a leak that did not grow while traced by what it holds beyond every healthy host", () => {
    // A stair leak between two steps: flat, but holding 40 MiB that healthy hosts do not.
    const profiles = series({
      retainSessionBuffers: [40, 40, 40, 40],
      parseBody: [1, 2, 3, 4], // churn that happened to rise in every interval
      config: [10, 10, 10, 10], // on this host a little more than elsewhere
    });
    const references = [
      series({ parseBody: [2, 1, 3, 2], config: [9, 9, 9, 9] }),
      // the leaking code runs here too, without leaking
      series({ parseBody: [1, 3, 2, 2], config: [4, 4, 4, 4], retainSessionBuffers: [0.5, 0.2, 0.4, 0.3] }),
    ];
    const estimate: LeakEstimate = { pattern: "stair", growthBytesPerHour: 4 * MiB };
    const d = diagnose({ profiles, references, estimate });
    expect(d.culprits.map((c) => c.frames[0]!.fn)).toEqual(["retainSessionBuffers", "parseBody"]);
    const [leak, churn] = d.culprits;
    expect(leak).toMatchObject({
      growthBytes: 0,
      excessBytes: 38.5 * MiB,
      score: 38.5 * MiB,
      growthShare: 0,
    });
    expect(leak!.reason).toBe(
      "did not grow (0 B over 3 intervals); held 38.5 MiB beyond 3× the most any of 2 healthy hosts held",
    );
    expect(churn).toMatchObject({ growthBytes: 3 * MiB, excessBytes: 0 });
    expect(churn!.reason).not.toMatch(/beyond/);

    // Growth and excess add up: the same leak still growing ranks higher still.
    const growing = series({ retainSessionBuffers: [40, 41, 42, 43], parseBody: [1, 2, 3, 4] });
    const g = diagnose({ profiles: growing, references, estimate: { ...estimate, pattern: "steady" } });
    expect(g.culprits[0]).toMatchObject({ growthBytes: 3 * MiB, excessBytes: 38.5 * MiB });
    expect(g.culprits[0]!.score).toBeCloseTo(3 * MiB + 38.5 * MiB);
    expect(g.culprits[0]!.reason).toMatch(/^grew 3.0 MiB, in 3 of 3 intervals.*; held 38.5 MiB beyond/);

    // Without references nothing tells the flat leak apart.
    expect(leaves({ profiles, estimate })).toEqual(["parseBody"]);
  });

  it("counts only what was held throughout, and no more than the leak could have retained since it began", () => {
    const profiles = series({
      collectSamples: [0, 0, 30, 30], // a burst that began while we watched
      loadTenantSnapshot: [50, 50, 50, 50], // far more than 2 MiB/h could have retained in 2 h
      retainSessionBuffers: [5, 6, 7, 8],
    });
    const references = [series({ parseBody: [1, 2, 1, 2] }), series({ parseBody: [2, 1, 2, 1] })];
    const since = profiles.at(-1)!.takenAt - 2 * 3_600_000;
    const estimate: LeakEstimate = { pattern: "steady", growthBytesPerHour: 2 * MiB, since };
    const d = diagnose({ profiles, references, estimate });
    expect(d.culprits.map((c) => [c.frames[0]!.fn, c.excessBytes / MiB])).toEqual([
      ["retainSessionBuffers", 5],
    ]);
    expect(d.dropped.tooLarge).toBe(1); // the burst's 30 MiB in 1.5 h

    // A spike may have retained anything in one rise: no bound.
    const spike = diagnose({ profiles, references, estimate: { ...estimate, pattern: "spike" } });
    expect(spike.culprits.map((c) => c.frames[0]!.fn)).toEqual([
      "loadTenantSnapshot",
      "collectSamples",
      "retainSessionBuffers",
    ]);
    expect(spike.culprits[0]!.excessBytes).toBe(50 * MiB);
    expect(spike.culprits[1]!.excessBytes).toBe(0);
  });

  it("matches a reference's stacks by function when a release moved their lines", () => {
    const profiles = series({ warmJitCache: [0, 2, 4, 6, 8, 10], retainSessionBuffers: [0, 1, 2, 3, 4, 5] });
    // Two references run the previous release, where warmJitCache's allocation sat 4 lines higher.
    const moved = (p: HeapProfile): HeapProfile => ({
      ...p,
      stacks: p.stacks.map((s) => ({ ...s, frames: [{ ...s.frames[0]!, line: 6 }, ...s.frames.slice(1)] })),
    });
    const references = [
      series({ warmJitCache: [0, 2, 4, 6] }).map(moved),
      series({ warmJitCache: [1, 3, 5, 7] }).map(moved),
      series({ warmJitCache: [0, 1.9, 4.1, 5.9] }),
    ];
    const d = diagnose({ profiles, references, estimate: steady(10) });
    expect(d.culprits.map((c) => c.frames[0]!.fn)).toEqual(["retainSessionBuffers"]);
    expect(d.dropped.onReferences).toBe(1);
  });

  it("keeps a stack that grows on healthy hosts as fast as here when it holds far more than they do", () => {
    // A small, slow leak: its code churns a little on healthy hosts, which happens to rise as much.
    const profiles = series({
      retainSessionBuffers: [10, 10, 10.5, 10.5, 11, 11],
      parseBody: [1, 2, 1, 2, 1, 2],
    });
    const references = [
      series({ retainSessionBuffers: [0.1, 0.4, 0.2, 0.9], parseBody: [2, 1, 2, 1] }),
      series({ retainSessionBuffers: [0.2, 0.5, 0.8, 1.1], parseBody: [1, 2, 1, 2] }),
    ];
    const d = diagnose({ profiles, references, estimate: steady(0.4) });
    expect(d.culprits[0]!.frames[0]!.fn).toBe("retainSessionBuffers");
    expect(d.culprits[0]!.excessBytes).toBeCloseTo((10 - 3 * 1.1) * MiB);
    expect(d.culprits[0]!.reason).toMatch(/grows \d+% as fast on healthy hosts; held 6.7 MiB beyond 3×/);
    expect(d.dropped.onReferences).toBe(0);
  });

  it("falls back to the last two profiles when every stack is filtered out", () => {
    const profiles = series({ a: [0, 10, 20, 30], b: [0, 20, 20, 25], c: [5, 5, 5, 4] });
    const d = diagnose({ profiles, estimate: steady(0.5) });
    expect(d.method).toBe("last-two");
    expect(d.dropped.tooLarge).toBe(2);
    expect(d.culprits.map((c) => [c.frames[0]!.fn, c.growthBytes / MiB, c.growthShare])).toEqual([
      ["a", 10, 10 / 15],
      ["b", 5, 5 / 15],
    ]);
    expect(d.culprits[0]!.reason).toMatch(/filtered out over the series; grew 10.0 MiB between the last two/);
  });

  it("says no stack grew when the fallback comes from no growth rather than filtering", () => {
    // Each stack ends where it began, but the last interval rose.
    const profiles = series({ a: [10, 12, 8, 10], b: [5, 7, 3, 5] });
    const d = diagnose({ profiles, estimate: steady(1) });
    expect(d.method).toBe("last-two");
    expect(d.dropped).toEqual({ tooLarge: 0, onReferences: 0 });
    expect(d.culprits[0]!.reason).toMatch(
      /^no stack grew over the series; grew 2.0 MiB between the last two/,
    );
    expect(d.culprits[0]!.reason).not.toMatch(/filtered/);
  });

  it("still counts what a stack growing faster than the estimate holds beyond healthy hosts", () => {
    // The detector underestimated the rate: the leak's 30 MiB in 1.5 h is "too large" for 2 MiB/h,
    // but it holds far more than any healthy host.
    const profiles = series({
      retainSessionBuffers: [20, 30, 40, 50],
      parseBody: [1, 2, 1, 2],
    });
    const references = [series({ parseBody: [1, 2, 1, 2], retainSessionBuffers: [0.5, 0.4, 0.5, 0.6] })];
    const d = diagnose({ profiles, references, estimate: steady(2) });
    expect(d.method).toBe("series");
    expect(d.culprits[0]!.frames[0]!.fn).toBe("retainSessionBuffers");
    expect(d.culprits[0]).toMatchObject({ growthBytes: 30 * MiB, excessBytes: (20 - 3 * 0.6) * MiB });
    expect(d.culprits[0]!.score).toBeCloseTo((20 - 3 * 0.6) * MiB);
    expect(d.culprits[0]!.reason).toMatch(/growth not scored; held 18.2 MiB beyond 3×/);
    expect(d.dropped.tooLarge).toBe(0);
  });

  it("works from two profiles, in any order, merging repeated stacks and honouring topN", () => {
    const [p0, p1] = series({ leak: [1, 3], other: [1, 2] });
    const doubled = {
      ...p1!,
      stacks: [...p1!.stacks, { frames: frames("other"), bytes: 2 * MiB, objects: 1 }],
    };
    const d = diagnose({ profiles: [doubled, p0!], estimate: steady(10) }, { topN: 1 });
    expect(d.culprits).toHaveLength(1);
    expect(d.culprits[0]).toMatchObject({ growthBytes: 3 * MiB, growingIntervals: 1, intervals: 1 });
    expect(d.culprits[0]!.frames[0]!.fn).toBe("other");
    expect(d.culprits[0]!.reason).toBe("grew 3.0 MiB, in 1 of 1 intervals, kept 100% of what moved");
  });

  it("ignores growth within the noise and refuses a single profile", () => {
    const profiles = series({ jitter: [1, 1.001, 1.002], leak: [1, 2, 3] });
    const d = diagnose({ profiles, estimate: steady(1) }, { noiseBytes: 0.01 * MiB });
    expect(d.culprits.map((c) => c.frames[0]!.fn)).toEqual(["leak"]);
    expect(() => diagnose({ profiles: profiles.slice(0, 1), estimate: steady(1) })).toThrow(
      /at least 2 profiles/,
    );
  });
});
