import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LineWriter } from "../lib/ndjson.ts";
import { createSimulation, resolveScenario, writeLines } from "../simulate/index.ts";
import {
  type DiagnosisCase,
  type DiagnosisResult,
  evaluateDiagnosis,
  rankOf,
  scoreCases,
} from "./diagnosis.ts";
import { evalProgram, tempDir } from "./fixtures.ts";

const leaf = (fn: string, file = `src/${fn}.go`, line = 10) => ({ fn, file, line });

function diagnosisCase(over: Partial<DiagnosisCase>): DiagnosisCase {
  return {
    host: "h1",
    component: "svc",
    process: "svc",
    truth: 0,
    pid: 42,
    truthPattern: "steady",
    estimate: { pattern: "steady", growthBytesPerHour: 1 },
    detectedGrowthBytesPerHour: 1,
    truthLeaf: leaf("leak"),
    from: 0,
    to: 0,
    profiles: 3,
    referenceHosts: [],
    traceEnd: "complete",
    diagnosed: true,
    rank: 1,
    culprits: [],
    ...over,
  };
}

describe("root-cause accuracy", () => {
  it("ranks by the leaf's function and file, whatever the line and the callers", () => {
    const culprits = [
      { frames: [leaf("parseBody")] },
      { frames: [leaf("leak", "src/other.go")] }, // same name, another file: not it
      { frames: [leaf("leak", "src/leak.go", 99), leaf("handler")] },
    ];
    expect(rankOf(culprits, leaf("leak"))).toBe(3);
    expect(rankOf(culprits, leaf("parseBody"))).toBe(1);
    expect(rankOf(culprits.slice(0, 2), leaf("leak"))).toBeNull();
    expect(rankOf([], leaf("leak"))).toBeNull();
  });

  it("counts top-1 and top-3 over the diagnosed leaks only", () => {
    const cases = [
      diagnosisCase({ rank: 1 }),
      diagnosisCase({ rank: 3, traceEnd: "max-duration" }),
      diagnosisCase({ rank: 4 }),
      diagnosisCase({ rank: null, traceEnd: "max-duration" }),
      diagnosisCase({ diagnosed: false, rank: null, traceEnd: "restarted", profiles: 1 }),
    ];
    expect(scoreCases(cases)).toEqual({
      cases: 5,
      diagnosed: 4,
      top1: 1,
      top3: 2,
      top1Rate: 0.25,
      top3Rate: 0.5,
      complete: 2,
    });
    expect(scoreCases([diagnosisCase({ diagnosed: false, rank: null })])).toMatchObject({
      diagnosed: 0,
      top1Rate: null,
      top3Rate: null,
    });
  });
});

describe("resin eval --diagnose-sim", () => {
  const out: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    out.length = 0;
  });

  const program = () => evalProgram(out);

  // 60 hosts × 2 days of `mixed`, seed 3: 8 process leaks (a storage-cache canary among them).
  const flags = ["--hosts", "60", "--days", "2", "--seed", "3"];

  async function simulated() {
    const dir = tempDir();
    const sim = createSimulation(resolveScenario("mixed", { hosts: 60, days: 2, seed: 3 }));
    const telemetry = join(dir, "telemetry.ndjson");
    const truth = join(dir, "truth.ndjson");
    for (const [path, lines] of [
      [telemetry, sim.lines()],
      [truth, sim.truthLines()],
    ] as const) {
      const w = new LineWriter(path);
      await writeLines(lines, w);
      await w.close();
    }
    return { dir, telemetry, truth };
  }

  it("profiles each leak resin found and reports top-1 and top-3 in the table, JSON and HTML", async () => {
    const f = await simulated();
    const json = join(f.dir, "eval.json");
    const html = join(f.dir, "eval.html");
    const args = [
      "--telemetry",
      f.telemetry,
      "--truth",
      f.truth,
      "--no-baselines",
      "--json",
      json,
      "--html",
      html,
    ];
    await program().parseAsync(["node", "resin", "eval", ...args, "--diagnose-sim", "mixed", ...flags]);

    const d = JSON.parse(readFileSync(json, "utf8")).diagnosis as DiagnosisResult;
    expect(d.overall.cases).toBeGreaterThanOrEqual(5);
    expect(d.overall.diagnosed).toBe(d.overall.cases);
    expect(d.overall.top1Rate).toBeGreaterThanOrEqual(0.8);
    expect(d.overall.top3Rate).toBeGreaterThanOrEqual(0.9);
    expect(Object.keys(d.byPattern).length).toBeGreaterThanOrEqual(1);
    for (const c of d.cases) {
      expect(c.profiles).toBeGreaterThanOrEqual(3);
      expect(c.referenceHosts.length).toBeGreaterThanOrEqual(2);
      expect(c.truthLeaf.fn).not.toBe("");
    }
    const table = out.join("");
    expect(table).toMatch(/Root-cause diagnosis on simulated heap profiles/);
    expect(table).toMatch(
      new RegExp(`^all\\s+${d.overall.cases}\\s+${d.overall.diagnosed}\\s+${d.overall.top1} \\(`, "m"),
    );
    const page = readFileSync(html, "utf8");
    expect(page).toContain("<h2>Root-cause diagnosis");
    expect(page).toContain(d.cases[0]!.truthLeaf.fn.replace(/&/g, "&amp;").replace(/</g, "&lt;"));

    // The snapshot sink's own reference policy, for comparison, on the same true positives.
    const report = JSON.parse(readFileSync(json, "utf8"));
    const resin = report.detectors[0];
    const plan = createSimulation(resolveScenario("mixed", { hosts: 60, days: 2, seed: 3 })).plan;
    const detections = [...resin.truePositives, ...resin.falsePositives];
    const lineage = evaluateDiagnosis(plan, report.truth, resin.truePositives, detections, {
      referencePolicy: "lineage",
    });
    expect(lineage.options.referencePolicy).toBe("lineage");
    expect(d.options.referencePolicy).toBe("baseline");
    expect(lineage.overall.cases).toBe(d.overall.cases);
    expect(evaluateDiagnosis(plan, report.truth, resin.truePositives, detections).overall).toEqual(d.overall);

    // A simulation that did not produce the truth is refused, naming the first record that differs.
    const err = await program()
      .parseAsync([
        "node",
        "resin",
        "eval",
        ...args,
        "--diagnose-sim",
        "mixed",
        ...flags.slice(0, 4),
        "--seed",
        "4",
      ])
      .then(
        () => null,
        (e: unknown) => e as { code: number; message: string },
      );
    expect(err?.code).toBe(3);
    expect(err?.message).toMatch(
      /--diagnose-sim: scenario mixed \(seed 4, 60 hosts, 2 days\) does not reproduce --truth: record 1/,
    );
  });

  it("takes the simulation's flags only with --diagnose-sim", async () => {
    const err = await program()
      .parseAsync(["node", "resin", "eval", "--telemetry", "t", "--truth", "g", "--seed", "3"])
      .then(
        () => null,
        (e: unknown) => e as { code: number; message: string },
      );
    expect(err?.message).toMatch(/--seed only goes with --diagnose-sim/);
    const bad = await program()
      .parseAsync([
        "node",
        "resin",
        "eval",
        "--telemetry",
        "t",
        "--truth",
        "g",
        "--diagnose-sim",
        "mixed",
        "--diagnose-references",
        "nearest",
      ])
      .then(
        () => null,
        (e: unknown) => e as { code: number; message: string },
      );
    expect(bad?.message).toMatch(/--diagnose-references must be baseline, lineage or sink, got "nearest"/);
  });

  it("through the snapshot sink: one report per leaking component, scored against the truth", async () => {
    const f = await simulated();
    const json = join(f.dir, "eval-sink.json");
    await program().parseAsync([
      "node",
      "resin",
      "eval",
      "--telemetry",
      f.telemetry,
      "--truth",
      f.truth,
      "--no-baselines",
      "--json",
      json,
      "--diagnose-sim",
      "mixed",
      ...flags,
      "--diagnose-references",
      "sink",
    ]);
    const d = JSON.parse(readFileSync(json, "utf8")).diagnosis as DiagnosisResult & {
      sink: { reports: number; onFalsePositives: number; cases: number };
    };
    // Resin's process true positives here are storage-cache leaks (a canary and isolated ones):
    // one case, one report.
    expect(d.sink.cases).toBeGreaterThanOrEqual(1);
    expect(d.sink.reports).toBeGreaterThanOrEqual(1);
    expect(d.overall.diagnosed + d.sink.onFalsePositives).toBe(d.sink.reports);
    // The sink traces the best-ranked suspects of a component, not every leak resin found.
    expect(d.overall.diagnosed).toBeLessThan(8);
    expect(d.overall.top1Rate).toBeGreaterThanOrEqual(0.5);
    for (const c of d.cases) {
      expect(c.profiles).toBeGreaterThanOrEqual(3);
      expect(c.truthLeaf.fn).not.toBe("");
    }
    expect(out.join("")).toMatch(/Root-cause diagnosis through the snapshot sink/);
  });
});
