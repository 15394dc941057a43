import { describe, expect, it } from "vitest";
import { proc, telemetryCases } from "./fixtures.ts";
import { checkSuspect, checkTelemetry, checkTruth } from "./index.ts";

describe("telemetry v1 schema", () => {
  it.each(telemetryCases)("%s", (_name, message, badPath) => {
    const result = checkTelemetry(message);
    if (badPath === undefined) {
      expect(result.ok).toBe(true);
    } else {
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.violations.map((v) => v.path)).toContain(badPath);
        expect(result.reason).toContain(badPath);
      }
    }
  });

  it("names the offending value in the reason", () => {
    const result = checkTelemetry(proc({ bytes: -10 }));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(/processes\[0\]\.bytes: .*\(got -10\)/);
  });
});

const goodSuspect = {
  v: 1,
  id: "storage-cache/r00-h00042/storage-cache/4242",
  state: "open",
  kind: "process",
  component: "storage-cache",
  host: "r00-h00042",
  process: "storage-cache",
  pid: 4242,
  start: 1767657600000,
  end: 1767700800000,
  detectedAt: 1767700800000,
  severity: 7.4,
  pattern: "steady",
  growthBytesPerHour: 18874368,
  bucket: { lowerBytes: 2147483648, hosts: 3, score: 12.1 },
};

describe("suspect event v1 schema", () => {
  it.each<[string, unknown, string | undefined]>([
    ["contract example", goodSuspect, undefined],
    ["without bucket", { ...goodSuspect, bucket: undefined }, undefined],
    ["extra field tolerated", { ...goodSuspect, note: "x" }, undefined],
    ["unknown state", { ...goodSuspect, state: "closed" }, "state"],
    ["unknown pattern", { ...goodSuspect, pattern: "linear" }, "pattern"],
    ["unknown kind", { ...goodSuspect, kind: "driver" }, "kind"],
    ["missing severity", { ...goodSuspect, severity: undefined }, "severity"],
    ["bucket without hosts", { ...goodSuspect, bucket: { lowerBytes: 1, score: 2 } }, "bucket.hosts"],
  ])("%s", (_name, message, badPath) => {
    const result = checkSuspect(message);
    expect(result.ok).toBe(badPath === undefined);
    if (!result.ok) expect(result.violations.map((v) => v.path)).toContain(badPath);
  });
});

const goodTruth = {
  host: "r00-h00042",
  component: "storage-cache",
  process: "storage-cache",
  kind: "process",
  pattern: "stair",
  startTs: 1767657600000,
  ratePerHour: 18874368,
};

describe("ground truth v1 schema", () => {
  it.each<[string, unknown, string | undefined]>([
    ["contract example", goodTruth, undefined],
    [
      "with our optional fields",
      { ...goodTruth, cause: "canary", version: "2", normalBytes: 1, grownBytes: 2 },
      undefined,
    ],
    [
      "with the leaking stack",
      { ...goodTruth, stack: [{ fn: "lru.(*Cache).Add", file: "internal/cache/lru.go", line: 88 }] },
      undefined,
    ],
    [
      "stack frame without a function",
      { ...goodTruth, stack: [{ fn: "", file: "a.go", line: 1 }] },
      "stack[0].fn",
    ],
    ["empty stack", { ...goodTruth, stack: [] }, "stack"],
    ["negative rate", { ...goodTruth, ratePerHour: -1 }, "ratePerHour"],
    ["unknown pattern", { ...goodTruth, pattern: "zigzag" }, "pattern"],
    ["missing startTs", { ...goodTruth, startTs: undefined }, "startTs"],
  ])("%s", (_name, message, badPath) => {
    const result = checkTruth(message);
    expect(result.ok).toBe(badPath === undefined);
    if (!result.ok) expect(result.violations.map((v) => v.path)).toContain(badPath);
  });
});
