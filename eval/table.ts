import type { DiagnosisMetrics, DiagnosisResult } from "./diagnosis.ts";
import type { SinkDiagnosisExtra } from "./diagnosis-sink.ts";
import type { EvalResult, Metrics } from "./types.ts";

export interface Column {
  header: string;
  cell: (m: Metrics) => string;
}

export const fmtRatio = (v: number | null): string => (v === null ? "–" : v.toFixed(3));
export const fmtHours = (v: number | null): string => (v === null ? "–" : v.toFixed(1));
const fmtCount = (v: number | null): string => (v === null ? "–" : String(v));

export const METRIC_COLUMNS: Column[] = [
  { header: "precision", cell: (m) => fmtRatio(m.precision) },
  { header: "recall(elig)", cell: (m) => fmtRatio(m.recallEligible) },
  { header: "recall(all)", cell: (m) => fmtRatio(m.recallAll) },
  { header: "F1", cell: (m) => fmtRatio(m.f1) },
  { header: "TP", cell: (m) => String(m.tp) },
  { header: "FP", cell: (m) => fmtCount(m.fp) },
  { header: "FN", cell: (m) => String(m.fn) },
  { header: "elig/truth", cell: (m) => `${m.eligibleRecords}/${m.truthRecords}` },
  { header: "delay p50 h", cell: (m) => fmtHours(m.delayP50h) },
  { header: "delay p90 h", cell: (m) => fmtHours(m.delayP90h) },
  { header: "early", cell: (m) => String(m.detectedBeforeStart) },
];

/** Aligns rows of cells: the first `leftCols` columns left-aligned, the rest right-aligned. */
export function alignRows(rows: string[][], leftCols: number): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((c, i) => (i < leftCols ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

function section(
  title: string,
  result: EvalResult,
  pick: (d: EvalResult["detectors"][number]) => Record<string, Metrics>,
  groupHeader: string,
): string {
  const rows: string[][] = [[groupHeader, "detector", ...METRIC_COLUMNS.map((c) => c.header)]];
  const groups = new Set<string>();
  for (const d of result.detectors) for (const g of Object.keys(pick(d))) groups.add(g);
  if (groups.size === 0) return "";
  for (const g of [...groups].sort()) {
    for (const d of result.detectors) {
      const m = pick(d)[g];
      if (!m) continue;
      rows.push([g, d.name, ...METRIC_COLUMNS.map((c) => c.cell(m))]);
    }
  }
  return `${title}\n${alignRows(rows, 2)}\n`;
}

const countRate = (n: number, rate: number | null) => `${n} (${fmtRatio(rate)})`;

export const DIAGNOSIS_COLUMNS: { header: string; cell: (m: DiagnosisMetrics) => string }[] = [
  { header: "leaks", cell: (m) => String(m.cases) },
  { header: "diagnosed", cell: (m) => String(m.diagnosed) },
  { header: "top-1", cell: (m) => countRate(m.top1, m.top1Rate) },
  { header: "top-3", cell: (m) => countRate(m.top3, m.top3Rate) },
  { header: "complete traces", cell: (m) => String(m.complete) },
];

/** Where a case's truth stack ranked, and what ranked above it. */
export function describeMiss(c: DiagnosisResult["cases"][number]): string {
  const target = `${c.host}/${c.component}/${c.process} (${c.truthPattern}, told ${c.estimate.pattern})`;
  if (!c.diagnosed) return `${target}: not diagnosed, ${c.reason ?? c.traceEnd}`;
  const ranked = c.culprits.map((k, i) => `#${i + 1} ${k.frame.fn}`).join(", ");
  const where = c.rank === null ? "not among the culprits" : `ranked #${c.rank}`;
  return `${target}: ${c.truthLeaf.fn} (${c.truthLeaf.file}) ${where}; ${ranked || "no culprit"}`;
}

function diagnosisSection(d: DiagnosisResult): string {
  const rows: string[][] = [["pattern", ...DIAGNOSIS_COLUMNS.map((c) => c.header)]];
  rows.push(["all", ...DIAGNOSIS_COLUMNS.map((c) => c.cell(d.overall))]);
  for (const [p, m] of Object.entries(d.byPattern))
    rows.push([p, ...DIAGNOSIS_COLUMNS.map((c) => c.cell(m))]);
  const misses = d.cases.filter((c) => c.rank !== 1).map((c) => `  ${describeMiss(c)}`);
  const sink = "sink" in d ? (d as { sink: SinkDiagnosisExtra }).sink : undefined;
  const title =
    sink === undefined
      ? "Root-cause diagnosis on simulated heap profiles (resin's true positives of process leaks; by truth pattern)\n"
      : "Root-cause diagnosis through the snapshot sink (its reports on true leaks; by truth pattern)\n" +
        `sink: ${sink.cases} case(s), ${sink.reports} report(s), ${sink.onFalsePositives} on false positives, ` +
        `${sink.failedTraces} trace(s) given up\n`;
  return (
    title +
    `${alignRows(rows, 1)}\n` +
    "top-k: one of the first k culprits has the truth stack's leaf function and file; rates over diagnosed leaks\n" +
    (misses.length > 0 ? `not top-1:\n${misses.join("\n")}\n` : "")
  );
}

/** The stdout report: summary table (resin and each baseline), then per-pattern, per-kind and per-cause breakdowns. */
export function renderTable(result: EvalResult): string {
  const t = result.telemetry;
  const eligible = result.truth.filter((r) => r.eligible).length;
  const head =
    `telemetry ${t.path}: ${t.lines} lines, ${t.badLines} bad (skipped), ${t.samples} process samples` +
    `\ntruth: ${result.truth.length} records, ${eligible} eligible (grew >= ${(result.minGrowth * 100).toFixed(0)}% ` +
    `of normal)` +
    `\nresin: ${result.resinSource === "suspects-file" ? "suspect events from file" : "detector run in-process"}, ` +
    `${result.suspectEvents} events\n`;

  const summary: string[][] = [["detector", ...METRIC_COLUMNS.map((c) => c.header)]];
  for (const d of result.detectors) summary.push([d.name, ...METRIC_COLUMNS.map((c) => c.cell(d.overall))]);

  const parts = [
    head,
    `Overall\n${alignRows(summary, 1)}\n`,
    section(
      "By truth pattern (recall side; precision is undefined per truth pattern)",
      result,
      (d) => d.byPattern,
      "pattern",
    ),
    section("By kind", result, (d) => d.byKind, "kind"),
    section("By cause (recall side)", result, (d) => d.byCause, "cause"),
    result.diagnosis ? diagnosisSection(result.diagnosis) : "",
  ].filter((p) => p !== "");
  parts.push(
    "precision over distinct suspected (host, component, process) targets; recall(elig) over truth records that\n" +
      `grew >= ${(result.minGrowth * 100).toFixed(0)}% of normal (F1 uses it); delays in hours from the truth's startTs, ` +
      "'early' = detected before it.\nFull rules, baselines' definitions and TP/FP/miss lists: --json / --html.\n",
  );
  let out = parts.join("\n");
  if (result.warnings.length > 0) out += `\n${result.warnings.map((w) => `warning: ${w}`).join("\n")}\n`;
  return out;
}
