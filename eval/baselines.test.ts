import { describe, expect, it } from "vitest";
import { type Baseline, FirstDayMedian, HourlyMean, SeriesRegistry } from "./baselines/common.ts";
import { PrecogBaseline } from "./baselines/precog.ts";
import { PredictLinearBaseline, predictFromSums } from "./baselines/predict-linear.ts";
import { BUCKET_LADDER, binOf, StaticThresholdBaseline, thresholdFromHistogram } from "./baselines/static.ts";
import { lcg, MiB, T0 } from "./fixtures.ts";
import { fitLine } from "./stats.ts";
import { HOUR_MS, targetKey } from "./types.ts";

const H = HOUR_MS;
const STEP = 5 * 60_000;
const GiB = 1024 * MiB;

interface Proc {
  host: string;
  name?: string;
  component?: string;
  bytes: (t: number) => number;
  pid?: (t: number) => number;
  hostFree?: (t: number, bytes: number) => number | undefined;
}

/** Runs a baseline over synthetic processes sampled every 5 min for `hours`. */
function run(b: Baseline, procs: Proc[], hours: number) {
  const reg = new SeriesRegistry([b]);
  for (let t = T0; t < T0 + hours * H; t += STEP) {
    for (const p of procs) {
      const component = p.component ?? "svc";
      const name = p.name ?? "svc";
      const bytes = Math.round(p.bytes(t));
      const pid = p.pid ? p.pid(t) : 100;
      const series = reg.get(p.host, component, name, pid, T0 - H, targetKey(p.host, component, name));
      reg.feed(series, t, bytes, p.hostFree ? p.hostFree(t, bytes) : undefined);
    }
  }
  reg.finish();
  return b.detections().sort((a, b2) => a.host.localeCompare(b2.host));
}

/** A fleet of `n` flat noisy hosts around `base` bytes (±2%), plus optional extra processes. */
function fleet(n: number, base: number, seed: number): Proc[] {
  const procs: Proc[] = [];
  for (let i = 0; i < n; i++) {
    const r = lcg(seed + i);
    procs.push({ host: `h${i}`, bytes: () => base * (1 + (r() - 0.5) * 0.04) });
  }
  return procs;
}

const leakFrom = (start: number, base: number, perHour: number) => (t: number) =>
  base + (t > start ? ((t - start) / H) * perHour : 0);

describe("helpers", () => {
  it("HourlyMean keeps an hour open for late samples during the grace period", () => {
    const m = new HourlyMean();
    const out: [number, number][] = [];
    m.add(T0, 10, out);
    m.add(T0 + 30 * 60_000, 20, out);
    m.add(T0 + H, 100, out); // next hour starts; hour 0 still open
    m.add(T0 + 50 * 60_000, 30, out); // late but within grace: counted
    expect(out).toEqual([]);
    m.add(T0 + H + 15 * 60_000, 100, out); // grace over: hour 0 closes
    expect(out).toEqual([[T0 / H, 20]]);
    m.add(T0 + 40 * 60_000, 1, out); // too late
    expect(m.late).toBe(1);
    m.add(T0 + 3 * H + 20 * 60_000, 7, out); // skips hour 2: hour 1 closes at once
    expect(out).toEqual([
      [T0 / H, 20],
      [T0 / H + 1, 100],
    ]);
    m.flush(out);
    expect(out[2]).toEqual([T0 / H + 3, 7]);
  });

  it("FirstDayMedian learns the median hourly mean of the first day", () => {
    const f = new FirstDayMedian();
    for (let t = T0; t <= T0 + 30 * H; t += STEP) f.add("k", t, t < T0 + 12 * H ? 10 : 30);
    expect(f.get("k")).toBe(20);
    expect(f.get("other")).toBeUndefined();
  });

  it.each([
    { values: [100 * MiB], want: 200 * MiB },
    { values: [199 * MiB], want: 200 * MiB },
    { values: [200 * MiB], want: 300 * MiB },
    { values: [0.5 * MiB], want: 1 * MiB },
    { values: [...Array(99).fill(100 * MiB), 1.2 * GiB], want: 200 * MiB },
    { values: [...Array(98).fill(100 * MiB), 1.2 * GiB, 1.2 * GiB], want: 1.5 * GiB },
  ])("static threshold is the bucket boundary above the p99 (case %#)", ({ values, want }) => {
    const hist = new Uint32Array(BUCKET_LADDER.length + 1);
    for (const v of values) hist[binOf(v)]!++;
    expect(thresholdFromHistogram(hist, values.length, 0.99)).toBe(want);
  });

  it("predictFromSums is ordinary least squares", () => {
    const xs = [0, 1, 2, 3, 4];
    const ys = xs.map((x) => 3 + 2 * x);
    const sum = (f: (i: number) => number) => xs.reduce((a, _, i) => a + f(i), 0);
    const p = predictFromSums(
      5,
      sum((i) => xs[i]!),
      sum((i) => ys[i]!),
      sum((i) => xs[i]! ** 2),
      sum((i) => xs[i]! * ys[i]!),
      10,
    );
    expect(p!.value).toBeCloseTo(23, 9);
    expect(p!.slope).toBeCloseTo(2, 9);
    expect(predictFromSums(1, 0, 0, 0, 0, 1)).toBeNull();
  });

  it("fitLine works on epoch-scale x and byte-scale y", () => {
    const xs = [0, 1, 2, 3, 4, 5].map((h) => T0 + h * H);
    const ys = xs.map((x) => 40 * GiB + ((x - T0) / H) * MiB);
    const fit = fitLine(xs, ys)!;
    expect(fit.slope * H).toBeCloseTo(MiB, 3);
    expect(fit.r2).toBeCloseTo(1, 9);
    expect(fitLine([1, 2, 3], [5, 5, 5])!.r2).toBe(0);
    expect(fitLine([1], [1])).toBeNull();
  });
});

describe("static baseline", () => {
  it("fires on a clear linear leak, on that host only", () => {
    const procs = fleet(5, 100 * MiB, 1);
    procs.push({ host: "leaky", bytes: leakFrom(T0 + 30 * H, 100 * MiB, 10 * MiB) });
    const b = new StaticThresholdBaseline();
    const got = run(b, procs, 60);
    expect(b.thresholdOf("svc", "svc")).toBe(200 * MiB);
    expect(got.map((d) => d.host)).toEqual(["leaky"]);
    // 100 MiB + 10 MiB/h crosses 200 MiB after 10 h; the hourly mean ≥ X one hour later at the latest.
    expect(got[0]!.detectedAt).toBeGreaterThan(T0 + 40 * H);
    expect(got[0]!.detectedAt).toBeLessThanOrEqual(T0 + 42 * H);
  });

  it("stays quiet on flat noise", () => {
    expect(run(new StaticThresholdBaseline(), fleet(8, 180 * MiB, 2), 72)).toEqual([]);
  });

  it("needs N hosts when minHosts = N", () => {
    const procs = fleet(5, 100 * MiB, 3);
    procs.push({ host: "leaky", bytes: leakFrom(T0 + 30 * H, 100 * MiB, 10 * MiB) });
    expect(run(new StaticThresholdBaseline({ minHosts: 2 }), procs, 60)).toEqual([]);
    procs.push({ host: "leaky2", bytes: leakFrom(T0 + 30 * H, 100 * MiB, 10 * MiB) });
    const got = run(new StaticThresholdBaseline({ minHosts: 2 }), procs, 60);
    expect(got.map((d) => d.host)).toEqual(["leaky", "leaky2"]);
  });
});

describe("predict_linear baseline", () => {
  it("fires on a clear linear leak after the for: duration", () => {
    const start = T0 + 30 * H;
    const procs: Proc[] = [
      { host: "leaky", bytes: leakFrom(start, 100 * MiB, 5 * MiB) },
      ...fleet(3, 100 * MiB, 4),
    ];
    const b = new PredictLinearBaseline();
    const got = run(b, procs, 60);
    expect(got.map((d) => d.host)).toEqual(["leaky"]);
    expect(b.limitOf(targetKey("leaky", "svc", "svc"))).toBeCloseTo(200 * MiB, -3);
    // 5 MiB/h × 72 h = 360 MiB of predicted growth: the condition holds within a few hours of the onset.
    expect(got[0]!.detectedAt).toBeGreaterThan(start + H);
    expect(got[0]!.detectedAt).toBeLessThan(start + 8 * H);
  });

  it("stays quiet on flat noise", () => {
    expect(run(new PredictLinearBaseline(), fleet(6, 500 * MiB, 5), 72)).toEqual([]);
  });

  it("a restart starts a new series: the new process is judged on its own samples", () => {
    const restart = T0 + 40 * H;
    const procs: Proc[] = [
      {
        host: "r",
        // grows before the restart would trip the rule, but only for 30 min: too short for `for: 1h`
        bytes: (t) =>
          t < restart - 30 * 60_000 || t >= restart
            ? 100 * MiB
            : 100 * MiB + ((t - (restart - 30 * 60_000)) / H) * 400 * MiB,
        pid: (t) => (t < restart ? 1 : 2),
      },
    ];
    expect(run(new PredictLinearBaseline(), procs, 60)).toEqual([]);
    // Control: the same ramp without the restart keeps growing and fires.
    const ramp = restart - 30 * 60_000;
    const control: Proc[] = [
      { host: "r", bytes: (t) => (t < ramp ? 100 * MiB : 100 * MiB + ((t - ramp) / H) * 400 * MiB) },
    ];
    expect(run(new PredictLinearBaseline(), control, 60).map((d) => d.host)).toEqual(["r"]);
  });
});

describe("precog baseline", () => {
  const free = (total: number) => (_t: number, bytes: number) => total - bytes - 8 * GiB;

  it("fires when the trend reaches the host's capacity within 7 days", () => {
    const start = T0 + 24 * H;
    // 16 GiB host, ~7.5 GiB free: 60 MiB/h reaches it in ~5 days.
    const procs: Proc[] = [
      { host: "leaky", bytes: leakFrom(start, 500 * MiB, 60 * MiB), hostFree: free(16 * GiB) },
      ...fleet(3, 500 * MiB, 6).map((p) => ({ ...p, hostFree: free(16 * GiB) })),
    ];
    const got = run(new PrecogBaseline(), procs, 48);
    expect(got.map((d) => d.host)).toEqual(["leaky"]);
    expect(got[0]!.detectedAt).toBeGreaterThanOrEqual(start + 3 * H);
    expect(got[0]!.detectedAt).toBeLessThanOrEqual(start + 9 * H);
    expect(got[0]!.note).toMatch(/R²=/);
  });

  it("does not fire on a leak too slow to exhaust memory within 7 days", () => {
    const procs: Proc[] = [
      { host: "slow", bytes: leakFrom(T0 + 24 * H, 500 * MiB, 1 * MiB), hostFree: free(64 * GiB) },
    ];
    expect(run(new PrecogBaseline(), procs, 48)).toEqual([]);
  });

  it("stays quiet on flat noise", () => {
    const procs = fleet(6, 500 * MiB, 7).map((p) => ({ ...p, hostFree: free(16 * GiB) }));
    expect(run(new PrecogBaseline(), procs, 72)).toEqual([]);
  });

  it("falls back to 2 × the first-day median without hostMemory", () => {
    const start = T0 + 24 * H;
    const procs: Proc[] = [
      { host: "leaky", bytes: leakFrom(start, 100 * MiB, 5 * MiB) },
      ...fleet(3, 100 * MiB, 8),
    ];
    const got = run(new PrecogBaseline(), procs, 48);
    expect(got.map((d) => d.host)).toEqual(["leaky"]);
  });
});
