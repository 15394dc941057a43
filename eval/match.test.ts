import { describe, expect, it } from "vitest";
import { judgeEligibility } from "./eligibility.ts";
import { suspect, T0, truth } from "./fixtures.ts";
import { detectionsFromSuspects, scoreDetector } from "./match.ts";
import { median, percentile } from "./stats.ts";
import { HOUR_MS, keyOf, parseTargetKey, type TruthEval, targetKey } from "./types.ts";

const H = HOUR_MS;

/** Truth evals with eligibility given directly (normalBytes/grownBytes fields). */
function judged(records: ReturnType<typeof truth>[], eligible: boolean[]): TruthEval[] {
  return records.map((r, i) =>
    judgeEligibility(
      i,
      keyOf(r),
      { ...r, normalBytes: 100, grownBytes: eligible[i] ? 50 : 1 },
      { target: undefined, watch: undefined },
      0.1,
    ),
  );
}

describe("percentile", () => {
  it.each([
    { values: [], p: 0.5, want: null },
    { values: [7], p: 0.9, want: 7 },
    { values: [1, 2, 3, 4], p: 0.5, want: 2.5 },
    { values: [4, 1, 3, 2], p: 0.5, want: 2.5 },
    { values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], p: 0.9, want: 9.1 },
    { values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], p: 0.5, want: 5.5 },
    { values: [-3, 1], p: 0.5, want: -1 },
    { values: [0, 10], p: 1, want: 10 },
  ])("p$p of $values = $want", ({ values, p, want }) => {
    const got = percentile(values, p);
    if (want === null) expect(got).toBeNull();
    else expect(got).toBeCloseTo(want, 10);
  });

  it("median is p50", () => {
    expect(median([5, 1, 3])).toBe(3);
  });
});

describe("target keys", () => {
  it("round-trips process names with slashes", () => {
    const key = targetKey("h1", "svc", "/usr/bin/a b");
    expect(parseTargetKey(key)).toEqual({ host: "h1", component: "svc", process: "/usr/bin/a b" });
  });
});

describe("detectionsFromSuspects", () => {
  it.each([
    {
      name: "duplicate opens of one target count once, earliest open wins",
      events: [
        suspect({ host: "a", detectedAt: T0 + 5 * H }),
        suspect({ host: "a", detectedAt: T0 + 3 * H, pid: 7 }),
        suspect({ host: "a", state: "update", detectedAt: T0 + 1 * H, severity: 9 }),
      ],
      want: [{ host: "a", detectedAt: T0 + 3 * H, severity: 9 }],
    },
    {
      name: "resolved-only targets are not suspected",
      events: [suspect({ host: "a", state: "resolved" }), suspect({ host: "b" })],
      want: [{ host: "b", detectedAt: T0 + H, severity: 5 }],
    },
    {
      name: "update-only target uses its earliest update",
      events: [
        suspect({ host: "a", state: "update", detectedAt: T0 + 4 * H }),
        suspect({ host: "a", state: "update", detectedAt: T0 + 2 * H }),
      ],
      want: [{ host: "a", detectedAt: T0 + 2 * H, severity: 5 }],
    },
    {
      name: "different processes on one host are different targets",
      events: [suspect({ host: "a" }), suspect({ host: "a", process: "other" })],
      want: [
        { host: "a", detectedAt: T0 + H, severity: 5 },
        { host: "a", detectedAt: T0 + H, severity: 5 },
      ],
    },
  ])("$name", ({ events, want }) => {
    const got = detectionsFromSuspects(events).map((d) => ({
      host: d.host,
      detectedAt: d.detectedAt,
      severity: d.severity,
    }));
    expect(got).toEqual(want);
  });
});

describe("scoreDetector", () => {
  const cases = [
    {
      name: "precision counts distinct targets, not events",
      truth: [truth({ host: "a" })],
      eligible: [true],
      events: [suspect({ host: "a" }), suspect({ host: "a", state: "update" }), suspect({ host: "x" })],
      want: { tp: 1, fp: 1, fn: 0, precision: 0.5, recallEligible: 1, recallAll: 1 },
    },
    {
      name: "two truth records on one target: one TP, both recalled",
      truth: [truth({ host: "a" }), truth({ host: "a", startTs: T0 + 10 * H }), truth({ host: "b" })],
      eligible: [true, true, true],
      events: [suspect({ host: "a" })],
      want: { tp: 1, fp: 0, fn: 1, precision: 1, recallEligible: 2 / 3, recallAll: 2 / 3 },
    },
    {
      name: "ineligible misses count in recall(all) only",
      truth: [truth({ host: "a" }), truth({ host: "b" })],
      eligible: [true, false],
      events: [suspect({ host: "a" })],
      want: { tp: 1, fp: 0, fn: 0, precision: 1, recallEligible: 1, recallAll: 0.5 },
    },
    {
      name: "detecting an ineligible leak is still a TP",
      truth: [truth({ host: "a" }), truth({ host: "b" })],
      eligible: [true, false],
      events: [suspect({ host: "b" })],
      want: { tp: 1, fp: 0, fn: 1, precision: 1, recallEligible: 0, recallAll: 0.5 },
    },
    {
      name: "resolved-only events do not count",
      truth: [truth({ host: "a" })],
      eligible: [true],
      events: [suspect({ host: "a", state: "resolved" }), suspect({ host: "z", state: "resolved" })],
      want: { tp: 0, fp: 0, fn: 1, precision: null, recallEligible: 0, recallAll: 0 },
    },
    {
      name: "matching needs component and process too",
      truth: [truth({ host: "a" })],
      eligible: [true],
      events: [suspect({ host: "a", component: "other" }), suspect({ host: "a", process: "p2" })],
      want: { tp: 0, fp: 2, fn: 1, precision: 0, recallEligible: 0, recallAll: 0 },
    },
  ];
  it.each(cases)("$name", (c) => {
    const r = scoreDetector("resin", "", detectionsFromSuspects(c.events), judged(c.truth, c.eligible));
    const m = r.overall;
    expect({
      tp: m.tp,
      fp: m.fp,
      fn: m.fn,
      precision: m.precision,
      recallEligible: m.recallEligible,
      recallAll: m.recallAll,
    }).toEqual(c.want);
    expect(r.truePositives.length).toBe(c.want.tp);
    expect(r.falsePositives.length).toBe(c.want.fp);
    expect(r.misses.filter((x) => x.eligible).length).toBe(c.want.fn);
  });

  it("F1 combines precision and eligible recall", () => {
    const t = judged([truth({ host: "a" }), truth({ host: "b" })], [true, true]);
    const r = scoreDetector(
      "resin",
      "",
      detectionsFromSuspects([suspect({ host: "a" }), suspect({ host: "x" })]),
      t,
    );
    expect(r.overall.precision).toBe(0.5);
    expect(r.overall.recallEligible).toBe(0.5);
    expect(r.overall.f1).toBeCloseTo(0.5, 12);
  });

  it("delays come from the first open event, unclamped, over eligible records", () => {
    const t = judged(
      [
        truth({ host: "a", startTs: T0 }),
        truth({ host: "b", startTs: T0 + 10 * H }),
        truth({ host: "c", startTs: T0 }),
        truth({ host: "d", startTs: T0 }),
      ],
      [true, true, true, false],
    );
    const events = [
      suspect({ host: "a", detectedAt: T0 + 2 * H }),
      suspect({ host: "a", state: "update", detectedAt: T0 + 1 * H }),
      suspect({ host: "b", detectedAt: T0 + 6 * H }), // before the recorded start: −4 h
      suspect({ host: "c", detectedAt: T0 + 8 * H }),
      suspect({ host: "d", detectedAt: T0 + 100 * H }), // ineligible: not in the delays
    ];
    const r = scoreDetector("resin", "", detectionsFromSuspects(events), t);
    expect(r.overall.delayCount).toBe(3);
    expect(r.overall.detectedBeforeStart).toBe(1);
    // delays: 2, −4, 8 → sorted −4, 2, 8
    expect(r.overall.delayP50h).toBeCloseTo(2, 12);
    expect(r.overall.delayP90h).toBeCloseTo(2 + 0.8 * 6, 12);
    const tpA = r.truePositives.find((d) => d.host === "a")!;
    expect(tpA.delaysH).toEqual([2]);
  });

  it("breaks down by pattern, kind and cause", () => {
    const records = [
      truth({ host: "a", pattern: "steady", cause: "isolated" }),
      truth({ host: "b", pattern: "stair", cause: "canary" }),
      truth({
        host: "k",
        component: "kernel",
        process: "Pool",
        kind: "kernel",
        pattern: "steady",
        cause: "kernel",
      }),
    ];
    const t = judged(records, [true, true, true]);
    const events = [
      suspect({ host: "a" }),
      suspect({ host: "k", component: "kernel", process: "Pool", kind: "kernel" }),
      suspect({ host: "z", component: "kernel", process: "Other", kind: "kernel" }),
    ];
    const r = scoreDetector("resin", "", detectionsFromSuspects(events), t);
    expect(r.byPattern.steady!.recallEligible).toBe(1);
    expect(r.byPattern.stair!.recallEligible).toBe(0);
    expect(r.byPattern.steady!.precision).toBeNull();
    expect(r.byKind.kernel!.precision).toBe(0.5);
    expect(r.byKind.kernel!.fp).toBe(1);
    expect(r.byKind.process!.precision).toBe(1);
    expect(r.byKind.process!.recallEligible).toBe(0.5);
    expect(Object.keys(r.byCause).sort()).toEqual(["canary", "isolated", "kernel"]);
    expect(r.byCause.canary!.fn).toBe(1);
  });

  it("no cause breakdown when truth has no cause", () => {
    const r = scoreDetector("resin", "", [], judged([truth({ host: "a" })], [true]));
    expect(r.byCause).toEqual({});
  });
});
