import { describe, expect, it } from "vitest";
import { judgeEligibility } from "./eligibility.ts";
import { lcg, MiB, T0, telemetryRows, tempDir, truth, writeNdjson } from "./fixtures.ts";
import { evaluate } from "./index.ts";
import { TrackedTarget } from "./series.ts";
import { HOUR_MS, keyOf } from "./types.ts";

const H = HOUR_MS;
const STEP = 5 * 60_000;

/** Feeds a tracked target with samples every 5 min over [from, to). */
function feed(
  t: TrackedTarget,
  from: number,
  to: number,
  bytes: (ts: number) => number,
  pid: (ts: number) => number = () => 1,
  startedAt: (ts: number) => number | undefined = () => undefined,
) {
  for (let ts = from; ts < to; ts += STEP) t.add(ts, bytes(ts), pid(ts), startedAt(ts));
}

describe("judgeEligibility", () => {
  it.each([
    { name: "fields: 10% exactly is eligible", normal: 1000, grown: 100, minGrowth: 0.1, eligible: true },
    { name: "fields: 9.9% is not", normal: 1000, grown: 99, minGrowth: 0.1, eligible: false },
    { name: "fields: higher threshold", normal: 1000, grown: 150, minGrowth: 0.2, eligible: false },
    { name: "fields: zero growth never eligible", normal: 0, grown: 0, minGrowth: 0, eligible: false },
  ])("$name", ({ normal, grown, minGrowth, eligible }) => {
    const r = truth({ host: "a", normalBytes: normal, grownBytes: grown });
    const e = judgeEligibility(0, keyOf(r), r, { target: undefined, watch: undefined }, minGrowth);
    expect(e.eligible).toBe(eligible);
    expect(e.normalSource).toBe("field");
    expect(e.growthSource).toBe("field");
  });

  it("estimates normal as the median before startTs and growth as rate × time to the last sample", () => {
    const r = truth({ host: "a", startTs: T0 + 24 * H, ratePerHour: 2 * MiB });
    const t = new TrackedTarget();
    const w = t.watch(r.startTs);
    const noise = lcg(1);
    feed(t, T0, T0 + 48 * H, (ts) => {
      const leak = ts > r.startTs ? ((ts - r.startTs) / H) * 2 * MiB : 0;
      return 100 * MiB + (noise() - 0.5) * MiB + leak;
    });
    t.finish();
    const e = judgeEligibility(0, keyOf(r), r, { target: t, watch: w }, 0.1);
    expect(e.normalSource).toBe("telemetry-before-start");
    expect(e.normalBytes!).toBeGreaterThan(99.4 * MiB);
    expect(e.normalBytes!).toBeLessThan(100.6 * MiB);
    expect(e.growthSource).toBe("telemetry-rate");
    expect(e.growthFrom).toBe(r.startTs);
    expect(e.growthTo).toBe(T0 + 48 * H - STEP);
    // 2 MiB/h × (24 h − 5 min) ≈ 48 MiB ≈ 48% of normal
    expect(e.growthBytes!).toBeCloseTo(2 * MiB * (24 - 1 / 12), 0);
    expect(e.eligible).toBe(true);
  });

  it("counts growth only since the last restart after startTs", () => {
    const r = truth({ host: "a", startTs: T0 + 10 * H, ratePerHour: 1 * MiB });
    const restartAt = T0 + 40 * H;
    const t = new TrackedTarget();
    const w = t.watch(r.startTs);
    feed(
      t,
      T0,
      T0 + 48 * H,
      () => 100 * MiB,
      (ts) => (ts < restartAt ? 1 : 2),
      (ts) => (ts < restartAt ? T0 - H : restartAt),
    );
    t.finish();
    expect(t.restarts).toEqual([restartAt]);
    const e = judgeEligibility(0, keyOf(r), r, { target: t, watch: w }, 0.1);
    expect(e.growthFrom).toBe(restartAt);
    // 1 MiB/h over ~8 h since the restart: 8% of 100 MiB, not eligible at 10%
    expect(e.growthBytes!).toBeLessThan(8 * MiB);
    expect(e.eligible).toBe(false);
    expect(e.reason).toMatch(/below 10%/);
  });

  it("uses the first 6 h when the target starts at or after startTs", () => {
    const r = truth({ host: "a", startTs: T0, ratePerHour: 1 * MiB });
    const t = new TrackedTarget();
    const w = t.watch(r.startTs);
    // 50 MiB for the first 6 h, then much larger: the estimate must only see the first 6 h.
    feed(t, T0 + H, T0 + 30 * H, (ts) => (ts < T0 + 7 * H ? 50 * MiB : 500 * MiB));
    t.finish();
    const e = judgeEligibility(0, keyOf(r), r, { target: t, watch: w }, 0.1);
    expect(e.normalSource).toBe("telemetry-first-6h");
    expect(e.normalBytes).toBe(50 * MiB);
    expect(e.eligible).toBe(true);
  });

  it("mixes a field with an estimate", () => {
    const r = truth({ host: "a", startTs: T0 + 5 * H, ratePerHour: 0, grownBytes: 30 * MiB });
    const t = new TrackedTarget();
    const w = t.watch(r.startTs);
    feed(t, T0, T0 + 10 * H, () => 200 * MiB);
    t.finish();
    const e = judgeEligibility(0, keyOf(r), r, { target: t, watch: w }, 0.1);
    expect(e.normalSource).toBe("telemetry-before-start");
    expect(e.growthSource).toBe("field");
    expect(e.eligible).toBe(true); // 30 MiB >= 20 MiB
  });

  it("a target absent from the telemetry without fields cannot be judged", () => {
    const r = truth({ host: "ghost" });
    const e = judgeEligibility(0, keyOf(r), r, { target: new TrackedTarget(), watch: undefined }, 0.1);
    expect(e.eligible).toBe(false);
    expect(e.normalSource).toBe("none");
    expect(e.reason).toMatch(/not in telemetry/);
  });
});

describe("TrackedTarget", () => {
  it("keeps hourly medians, drops samples for closed hours and marks restarts", () => {
    const t = new TrackedTarget();
    for (let h = 0; h < 5; h++) {
      for (let m = 0; m < 12; m++) t.add(T0 + h * H + m * STEP, h * 10 + (m % 3), 1, undefined);
    }
    t.add(T0 + 30 * 60_000, 999, 1, undefined); // hour 0 is closed by now: dropped
    t.add(T0 + 5 * H, 1, 2, undefined); // new pid: restart
    t.finish();
    const s = t.series();
    expect(s.hours).toEqual([0, 1, 2, 3, 4, 5].map((h) => T0 + h * H));
    expect(s.medians).toEqual([1, 11, 21, 31, 41, 1]);
    expect(t.lateDropped).toBe(1);
    expect(t.restarts).toEqual([T0 + 5 * H]);
  });

  it("accepts a late sample while its hour is still open", () => {
    const t = new TrackedTarget();
    t.add(T0 + 10 * 60_000, 10, 1, undefined);
    t.add(T0 + H + 5 * 60_000, 20, 1, undefined);
    t.add(T0 + 50 * 60_000, 30, 1, undefined); // late, hour 0 still open
    t.finish();
    expect(t.lateDropped).toBe(0);
    expect(t.series().medians).toEqual([20, 20]);
  });
});

describe("evaluate: eligibility from telemetry of another generator (no optional fields)", () => {
  it("judges leaks by the telemetry and reports the rule", async () => {
    const dir = tempDir();
    const noise = lcg(3);
    const start = T0 + 24 * H;
    const rows = telemetryRows(
      [
        {
          host: "big",
          component: "svc",
          name: "svc",
          bytes: (t) => 100 * MiB + (t > start ? ((t - start) / H) * MiB : 0),
        },
        {
          host: "tiny",
          component: "svc",
          name: "svc",
          bytes: (t) => 100 * MiB + (t > start ? ((t - start) / H) * 0.1 * MiB : 0),
        },
        { host: "flat", component: "svc", name: "svc", bytes: () => 100 * MiB + noise() * MiB },
      ],
      { hours: 48 },
    );
    const telemetry = writeNdjson(dir, "t.ndjson", rows);
    const records = [
      truth({ host: "big", startTs: start, ratePerHour: MiB }),
      truth({ host: "tiny", startTs: start, ratePerHour: 0.1 * MiB }),
    ];
    const result = await evaluate({
      telemetryPath: telemetry,
      truth: records,
      suspects: [],
      baselines: false,
    });
    expect(result.truth.map((t) => t.eligible)).toEqual([true, false]);
    expect(result.truth[0]!.normalSource).toBe("telemetry-before-start");
    expect(result.truth[0]!.normalBytes).toBe(100 * MiB);
    expect(result.rules.eligibility).toMatch(/median/);
    expect(result.detectors[0]!.overall.eligibleRecords).toBe(1);
    expect(result.detectors[0]!.overall.fn).toBe(1);
  });
});
