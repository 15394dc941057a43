import type { SuspectEvent } from "../schemas/suspect.ts";
import type { TruthRecord } from "../schemas/truth.ts";
import type { Plan } from "../simulate/plan.ts";
import type { Baseline } from "./baselines/common.ts";
import { PrecogBaseline, type PrecogOptions } from "./baselines/precog.ts";
import { PredictLinearBaseline, type PredictLinearOptions } from "./baselines/predict-linear.ts";
import { type StaticOptions, StaticThresholdBaseline } from "./baselines/static.ts";
import type { DiagnosisOptions } from "./diagnosis.ts";
import { ELIGIBILITY_RULE, judgeEligibility } from "./eligibility.ts";
import { DELAY_RULE, detectionsFromSuspects, MATCHING_RULE, scoreDetector } from "./match.ts";
import { buildPlots, DEFAULT_PLOT_CAP, plotsRule } from "./plots.ts";
import { scanTelemetry } from "./scan.ts";
import { TrackedTarget, type TruthWatch } from "./series.ts";
import { type EvalResult, keyOf, targetKey } from "./types.ts";

export { InputError, loadSuspects, loadTruth } from "./inputs.ts";

export { renderHtml } from "./report-html.ts";
export { renderTable } from "./table.ts";
export type * from "./types.ts";

export const DEFAULT_MIN_GROWTH = 0.1;

export const PERCENTILE_RULE =
  "p50/p90 interpolate linearly between closest ranks (rank = p × (n − 1) of the sorted delays; numpy's default).";

export interface BaselineOptions {
  static?: Partial<StaticOptions>;
  predictLinear?: Partial<PredictLinearOptions>;
  precog?: Partial<PrecogOptions>;
}

export interface EvaluateOptions {
  /** Telemetry NDJSON (CONTRACT.md §1); "-" for stdin, which needs `suspects` (it can be read only once). */
  telemetryPath: string;
  truth: readonly TruthRecord[];
  /** resin's suspect events; when absent, resin's detector runs in-process on the telemetry. */
  suspects?: readonly SuspectEvent[];
  /** Eligibility threshold as a fraction of the normal size; default 0.10. */
  minGrowth?: number;
  /** Baseline tuning, or false to run none. */
  baselines?: BaselineOptions | false;
  /** Plots per category in the HTML report; default 60. */
  plotCap?: number;
  /**
   * Also measure the root-cause diagnosis on simulated heap profiles (eval/diagnosis.ts): the
   * plan of the simulation that produced the telemetry and truth (simulate/index.ts
   * createSimulation(config).plan; the same configuration rebuilds it).
   */
  diagnosis?: { plan: Plan; options?: Partial<DiagnosisOptions> };
  onProgress?: (lines: number) => void;
}

export function makeBaselines(opts: BaselineOptions = {}): Baseline[] {
  return [
    new StaticThresholdBaseline(opts.static),
    new PredictLinearBaseline(opts.predictLinear),
    new PrecogBaseline(opts.precog),
  ];
}

/**
 * Measures resin (and the baselines, on the same telemetry in one streaming pass) against
 * ground truth: precision over distinct suspected targets, recall over eligible and all truth
 * records, F1, detection delays; overall and per pattern, kind and cause.
 */
export async function evaluate(opts: EvaluateOptions): Promise<EvalResult> {
  const minGrowth = opts.minGrowth ?? DEFAULT_MIN_GROWTH;
  if (!(minGrowth >= 0) || !Number.isFinite(minGrowth))
    throw new RangeError(`minGrowth must be >= 0, got ${minGrowth}`);
  const plotCap = opts.plotCap ?? DEFAULT_PLOT_CAP;

  let events: readonly SuspectEvent[];
  let resinSource: EvalResult["resinSource"];
  if (opts.suspects) {
    events = opts.suspects;
    resinSource = "suspects-file";
  } else {
    if (opts.telemetryPath === "-") {
      throw new Error("running the detector in-process needs a telemetry file, not stdin (or pass suspects)");
    }
    // Loaded only when needed: evaluating a suspects file does not depend on the detector's modules.
    const { detectFromFile } = await import("../pipelines/replay.ts");
    events = await detectFromFile(opts.telemetryPath);
    resinSource = "in-process-detector";
  }
  const resinDetections = detectionsFromSuspects(events);

  // Targets to follow through the pass: every truth record's and every resin suspect's.
  const tracked = new Map<string, TrackedTarget>();
  const track = (key: string) => {
    let t = tracked.get(key);
    if (!t) {
      t = new TrackedTarget();
      tracked.set(key, t);
    }
    return t;
  };
  const watches: TruthWatch[] = opts.truth.map((r) =>
    track(targetKey(r.host, r.component, r.process)).watch(r.startTs),
  );
  for (const d of resinDetections) track(keyOf(d));

  const baselines = opts.baselines === false ? [] : makeBaselines(opts.baselines);
  const scanInput = {
    path: opts.telemetryPath,
    tracked,
    baselines,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  };
  const telemetry = await scanTelemetry(scanInput);

  const truth = opts.truth.map((r, i) => {
    const key = targetKey(r.host, r.component, r.process);
    return judgeEligibility(i, key, r, { target: tracked.get(key), watch: watches[i] }, minGrowth);
  });

  const resinRule =
    resinSource === "suspects-file"
      ? "resin's detector, from its suspect events (CONTRACT.md §2) read from a file"
      : "resin's detector, run in-process on the telemetry (pipelines/replay.ts detectFromFile)";
  const detectors = [
    scoreDetector("resin", resinRule, resinDetections, truth),
    ...baselines.map((b) => scoreDetector(b.name, b.rule, b.detections(), truth)),
  ];

  const warnings: string[] = [];
  if (telemetry.badLines > 0) {
    const ex = telemetry.badLineExamples[0];
    warnings.push(
      `${telemetry.badLines} telemetry line(s) failed validation and were skipped` +
        (ex ? ` (first: record ${ex.record}: ${ex.reason})` : ""),
    );
  }
  const unjudged = truth.filter((t) => t.normalSource === "none" || t.growthSource === "none").length;
  if (unjudged > 0) {
    warnings.push(
      `${unjudged} truth record(s) have no telemetry for their target and cannot be judged eligible`,
    );
  }
  const absent = resinDetections.filter((d) => (tracked.get(keyOf(d))?.samples ?? 0) === 0).length;
  if (absent > 0) warnings.push(`${absent} resin suspect target(s) never appear in the telemetry`);
  if (telemetry.lateSamplesDropped > 0) {
    warnings.push(
      `${telemetry.lateSamplesDropped} late sample(s) arrived after their plotted hour was closed`,
    );
  }
  const baselineLate = baselines.reduce((n, b) => n + b.lateSamples, 0);
  if (baselineLate > 0) {
    warnings.push(
      `${baselineLate} late sample(s) were ignored by baselines (their hour/slot was already closed)`,
    );
  }

  const plots = buildPlots(detectors[0], truth, tracked, telemetry.lastTs ?? 0, plotCap);

  let diagnosis: EvalResult["diagnosis"];
  if (opts.diagnosis) {
    // Loaded only when needed: it brings the simulator and the snapshot sink's diagnosis.
    const { evaluateDiagnosis } = await import("./diagnosis.ts");
    const resin = detectors[0]!;
    if (opts.diagnosis.options?.referencePolicy === "sink") {
      if (opts.telemetryPath === "-")
        throw new Error("the sink's diagnosis re-reads the telemetry: give a file, not -");
      const { evaluateSinkDiagnosis } = await import("./diagnosis-sink.ts");
      diagnosis = await evaluateSinkDiagnosis(opts.diagnosis.plan, opts.telemetryPath, truth);
    } else {
      diagnosis = evaluateDiagnosis(
        opts.diagnosis.plan,
        truth,
        resin.truePositives,
        resinDetections,
        opts.diagnosis.options,
      );
    }
    const notDiagnosed = diagnosis.overall.cases - diagnosis.overall.diagnosed;
    if (notDiagnosed > 0) {
      warnings.push(
        `${notDiagnosed} leak(s) found by resin could not be diagnosed: their trace ended before ${diagnosis.options.minProfiles} profiles`,
      );
    }
  }

  return {
    generatedBy: "resin eval",
    minGrowth,
    resinSource,
    suspectEvents: events.length,
    telemetry,
    rules: {
      matching: MATCHING_RULE,
      eligibility: ELIGIBILITY_RULE,
      delay: DELAY_RULE,
      percentiles: PERCENTILE_RULE,
      plots: plotsRule(plotCap),
    },
    truth,
    detectors,
    plots,
    warnings,
    ...(diagnosis ? { diagnosis } : {}),
  };
}

/** The JSON report: every number and the TP/FP/miss lists; plot series are left to the HTML report. */
export function toJsonReport(result: EvalResult): Omit<EvalResult, "plots"> & {
  plotted: { category: string; total: number; shown: number }[];
} {
  const { plots, ...rest } = result;
  return {
    ...rest,
    plotted: plots.map((p) => ({ category: p.category, total: p.total, shown: p.cases.length })),
  };
}
