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
