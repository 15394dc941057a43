import type { GrowthPattern, LeakKind } from "../schemas/suspect.ts";
import { KERNEL_COMPONENT } from "../schemas/telemetry.ts";
import type { TruthRecord } from "../schemas/truth.ts";
import type { DiagnosisResult } from "./diagnosis.ts";

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** What the contract matches on: host, component and process name (or pool tag). */
export interface Target {
  host: string;
  component: string;
  process: string;
}

/**
 * One string per target, "host/component/process". Unambiguous: host and component are
 * subject tokens and cannot contain "/" (the process name may).
 */
export function targetKey(host: string, component: string, process: string): string {
  return `${host}/${component}/${process}`;
}

export function keyOf(t: Target): string {
  return targetKey(t.host, t.component, t.process);
}

export function parseTargetKey(key: string): Target {
  const a = key.indexOf("/");
  const b = key.indexOf("/", a + 1);
  return { host: key.slice(0, a), component: key.slice(a + 1, b), process: key.slice(b + 1) };
}

export function showTarget(t: Target): string {
  return `${t.host}/${t.component}/${t.process}`;
}

/** The kind a target has when nothing else says so: the reserved `kernel` component is kernel memory. */
export function kindOfComponent(component: string): LeakKind {
  return component === KERNEL_COMPONENT ? "kernel" : "process";
}

/** A detector's decision about one target: the first time it flagged it. */
export interface Detection extends Target {
  kind: LeakKind;
  detectedAt: number;
  /** Suspicious interval, when the detector reports one (resin does). */
  start?: number;
  end?: number;
  pattern?: GrowthPattern;
  severity?: number;
  growthBytesPerHour?: number;
  pid?: number;
  /** Free-form evidence from baselines (threshold, prediction, fit). */
  note?: string;
}

/** How the eligibility numbers of one truth record were obtained. */
export type NormalSource = "field" | "telemetry-before-start" | "telemetry-first-6h" | "none";
export type GrowthSource = "field" | "telemetry-rate" | "none";

export interface TruthEval {
  index: number;
  record: TruthRecord;
  key: string;
  eligible: boolean;
  normalBytes: number | null;
  growthBytes: number | null;
  normalSource: NormalSource;
  growthSource: GrowthSource;
  /** For estimated growth: the interval the rate was applied over. */
  growthFrom?: number;
  growthTo?: number;
  /** Why the record is not eligible, when it is not. */
  reason?: string;
}

/** Accuracy numbers of one detector over one group of truth records and suspected targets. */
export interface Metrics {
  /** null when the group has no suspected targets, or when precision is undefined for the grouping (pattern, cause). */
  precision: number | null;
  recallEligible: number | null;
  recallAll: number | null;
  f1: number | null;
  /** Distinct suspected targets that match a truth record. */
  tp: number;
  /** Distinct suspected targets that match none (null where precision is undefined). */
  fp: number | null;
  /** Eligible truth records whose target was never suspected. */
  fn: number;
  suspectedTargets: number | null;
  truthRecords: number;
  eligibleRecords: number;
  detectedEligible: number;
  detectedAll: number;
  /** Over detected eligible truth records, hours (may be negative: detection before the recorded start). */
  delayP50h: number | null;
  delayP90h: number | null;
  delayCount: number;
  /** Detected eligible records whose detection came before the recorded startTs (negative delay). */
  detectedBeforeStart: number;
}

export interface TruePositive extends Detection {
  /** Indices into EvalResult.truth of the records this target matches. */
  truth: number[];
  /** detectedAt − startTs for each matched record, hours. */
  delaysH: number[];
}

export interface Miss {
  truth: number;
  target: Target;
  eligible: boolean;
}

export interface DetectorResult {
  name: string;
  rule: string;
  overall: Metrics;
  byPattern: Record<string, Metrics>;
  byKind: Record<string, Metrics>;
  byCause: Record<string, Metrics>;
  truePositives: TruePositive[];
  falsePositives: Detection[];
  /** Eligible truth records not detected (ineligible undetected records are listed with eligible=false). */
  misses: Miss[];
}

export interface TelemetryStats {
  path: string;
  lines: number;
  badLines: number;
  badLineExamples: { record: number; reason: string }[];
  messages: number;
  samples: number;
  firstTs: number | null;
  lastTs: number | null;
  /** Samples that arrived after the plotted hour they belong to was closed. */
  lateSamplesDropped: number;
}

/** One plotted case: the hourly series of a target plus the marks to draw. */
export interface PlotCase {
  category: "tp" | "fp" | "miss";
  target: Target;
  kind: LeakKind;
  title: string;
  subtitle: string;
  /** Hour start (ms) and median bytes of the target's samples in that hour. */
  hours: number[];
  medians: number[];
  restarts: number[];
  detectedAt: number | null;
  truthStart: number | null;
  /** Trend line drawn over [from, to]; null when fewer than two hourly points fall in the interval. */
  trend: { from: number; to: number; yFrom: number; yTo: number; slopePerHour: number; r2: number } | null;
}

export interface PlotSection {
  category: "tp" | "fp" | "miss";
  total: number;
  cap: number;
  cases: PlotCase[];
}

export interface EvalResult {
  generatedBy: "resin eval";
  minGrowth: number;
  resinSource: "suspects-file" | "in-process-detector";
  suspectEvents: number;
  telemetry: TelemetryStats;
  rules: { matching: string; eligibility: string; delay: string; percentiles: string; plots: string };
  truth: TruthEval[];
  detectors: DetectorResult[];
  /** Plots of resin's cases (baseline cases are listed, not plotted: their targets are unknown before the pass). */
  plots: PlotSection[];
  warnings: string[];
  /** Root-cause accuracy on simulated heap profiles, when asked for (evaluate's `diagnosis`). */
  diagnosis?: DiagnosisResult;
}
