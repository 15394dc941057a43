import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { testTempDir } from "../lib/testing/temp.ts";
import { ValidationError } from "../schemas/common.ts";
import {
  createSimulation,
  DEFAULT_START,
  formatDuration,
  parseBytes,
  parseDuration,
  parseScenarioText,
  resolveScenario,
  ScenarioNotFoundError,
} from "./index.ts";

const EXAMPLE = new URL("./examples/small-fleet.json", import.meta.url).pathname;

function errorOf(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ValidationError) return err;
    throw err;
  }
  throw new Error("expected a ValidationError");
}

describe("durations and sizes", () => {
  it("parses and formats durations", () => {
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("2d")).toBe(172_800_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("1.5h")).toBe(5_400_000);
    expect(parseDuration("250ms")).toBe(250);
    for (const bad of ["", "5", "5x", "m5", "1h 30m", "-1h"])
      expect(() => parseDuration(bad)).toThrow(/invalid duration/);
    expect(formatDuration(300_000)).toBe("5m");
    expect(formatDuration(30_000)).toBe("30s");
    expect(formatDuration(3_600_000)).toBe("1h");
    expect(formatDuration(172_800_000)).toBe("2d");
    expect(formatDuration(5_400_000)).toBe("1h30m");
    expect(formatDuration(0)).toBe("0s");
    for (const ms of [1000, 61_000, 90_061_001]) expect(parseDuration(formatDuration(ms))).toBe(ms);
  });

  it("parses sizes", () => {
    expect(parseBytes("200MiB")).toBe(200 * 2 ** 20);
    expect(parseBytes("1.5GiB")).toBe(1.5 * 2 ** 30);
    expect(parseBytes("3GB")).toBe(3e9);
    expect(parseBytes("42")).toBe(42);
    expect(() => parseBytes("lots")).toThrow(/invalid size/);
  });
});

describe("scenarios", () => {
  it("resolves presets with defaults and overrides", () => {
    const c = resolveScenario("mixed");
    expect(c).toMatchObject({
      hosts: 200,
      days: 5,
      intervalMs: 300_000,
      seed: 1,
      lateness: 2,
      start: DEFAULT_START,
    });
    const o = resolveScenario("quiet", {
      hosts: 10,
      days: 0.5,
      interval: "1m",
      seed: 9,
      start: "2026-02-01T00:00:00Z",
    });
    expect(o).toMatchObject({
      hosts: 10,
      days: 0.5,
      intervalMs: 60_000,
      seed: 9,
      start: Date.UTC(2026, 1, 1),
    });
    expect(() => resolveScenario("nope")).toThrow(ScenarioNotFoundError);
    expect(errorOf(() => resolveScenario("mixed", { hosts: 0 })).message).toMatch(/hosts.*got 0/);
  });

  it("loads the example file; flags override its values", () => {
    const c = resolveScenario(EXAMPLE);
    expect(c).toMatchObject({ name: "small-fleet", hosts: 40, days: 2, seed: 42 });
    expect(c.components.map((x) => x.name)).toContain("kernel");
    expect(c.components[0]!.processes[1]!.noise).toEqual([0.005, 0.02]); // default filled in
    expect(c.components[1]!.processes[0]!.baseBytes).toEqual([1.5 * 2 ** 30, 3 * 2 ** 30]);
    const o = resolveScenario(EXAMPLE, { hosts: 12, seed: 3 });
    expect(o).toMatchObject({ hosts: 12, seed: 3, days: 2 });
    const sim = createSimulation(o);
    expect(sim.truth().some((t) => t.component === "storage-cache" && t.pattern === "stair")).toBe(true);
  });

  it("rejects unknown keys, naming the field path and the value", () => {
    const e = errorOf(() => parseScenarioText(JSON.stringify({ hosts: 10, hostz: 12 }), "x.json"));
    expect(e.message).toContain("x.json");
    expect(e.violations).toEqual([{ path: "hostz", value: 12, message: "unknown key" }]);
    const nested = errorOf(() =>
      parseScenarioText(JSON.stringify({ faults: { lost: 0.01, dropped: 0.5 } }), "y.json"),
    );
    expect(nested.message).toMatch(/faults\.dropped: unknown key \(got 0\.5\)/);
  });

  it("names the path and value of bad values", () => {
    const cases: [unknown, RegExp][] = [
      [{ hosts: -3 }, /hosts: .*\(got -3\)/],
      [{ interval: "5 minutes" }, /interval: .*\(got "5 minutes"\)/],
      [{ start: "yesterday" }, /start: .*\(got "yesterday"\)/],
      [{ faults: { lost: 2 } }, /faults\.lost: .*\(got 2\)/],
      [{ events: { deployHours: [24, 6] } }, /events\.deployHours: .*min <= max.*\(got \[24,6\]\)/],
      [
        { components: [{ name: "svc", processes: [{ name: "svc", baseBytes: ["1GiB", "lots"] }] }] },
        /components\[0\]\.processes\[0\]\.baseBytes\[1\]: .*\(got "lots"\)/,
      ],
      [
        {
          leaks: { explicit: [{ host: 1, component: "vm-agent", pattern: "wavy", at: "1h", ratePerDay: 1 }] },
        },
        /leaks\.explicit\[0\]\.pattern: .*\(got "wavy"\)/,
      ],
      [
        { leaks: { canary: { component: "nope" } } },
        /leaks\.canary\.component: no such component in the catalog \(got "nope"\)/,
      ],
      [
        {
          events: { configChange: { component: "kernel", step: [0.1, 0.2], at: [0.5, 0.5], withinHours: 1 } },
        },
        /events\.configChange\.component: must not be the kernel/,
      ],
    ];
    for (const [json, pattern] of cases) {
      expect(errorOf(() => parseScenarioText(JSON.stringify(json), "f.json")).message).toMatch(pattern);
    }
    expect(errorOf(() => parseScenarioText("{ hosts: 1 }", "bad.json")).message).toMatch(/not valid JSON/);
  });

  it("reports explicit leaks on targets that do not exist", () => {
    const dir = testTempDir("sim");
    const file = join(dir, "s.json");
    writeFileSync(
      file,
      JSON.stringify({
        hosts: 5,
        days: 0.5,
        leaks: {
          explicit: [
            { host: "r00-h00099", component: "vm-agent", pattern: "steady", at: "1h", ratePerDay: 1 },
          ],
        },
      }),
    );
    const e = errorOf(() => createSimulation(resolveScenario(file)));
    expect(e.message).toMatch(/leaks\.explicit\[0\]\.host: no such host .*\(got "r00-h00099"\)/);
  });
});
