import type { DiagnosisResult } from "./diagnosis.ts";
import { DIAGNOSIS_COLUMNS, fmtHours, fmtRatio, METRIC_COLUMNS } from "./table.ts";
import { DAY_MS, type EvalResult, HOUR_MS, type Metrics, type PlotCase, type PlotSection } from "./types.ts";

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(bytes: number): string {
  let v = Math.abs(bytes);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const sign = bytes < 0 ? "-" : "";
  return `${sign}${v >= 100 || u === 0 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1)} ${UNITS[u]}`;
}

/** Round tick step (1, 2, 5 × 10^k) giving about `count` ticks over `span`. */
function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

function utcLabel(ts: number): string {
  return new Date(ts).toISOString().slice(5, 16).replace("T", " ");
}

const X_STEPS = [1, 2, 3, 6, 12, 24, 48, 72, 168, 336].map((h) => h * HOUR_MS);

const W = 720;
const H = 220;
const M = { left: 70, right: 12, top: 12, bottom: 34 };

/** One inline SVG plot of a case; [t0, t1] is the time axis shared by all plots of the report. */
export function renderPlotSvg(c: PlotCase, t0: number, t1: number): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const ys = [...c.medians];
  if (c.trend) ys.push(c.trend.yFrom, c.trend.yTo);
  let yMin = ys.length > 0 ? Math.min(...ys) : 0;
  let yMax = ys.length > 0 ? Math.max(...ys) : 1;
  if (yMax - yMin < 1) {
    yMax += 1;
    yMin = Math.max(0, yMin - 1);
  }
  const pad = (yMax - yMin) * 0.08;
  yMin = Math.max(0, yMin - pad);
  yMax += pad;
  const span = Math.max(1, t1 - t0);
  const sx = (t: number) => M.left + ((t - t0) / span) * pw;
  const sy = (v: number) => M.top + ph - ((v - yMin) / (yMax - yMin)) * ph;
  const clampX = (x: number) => Math.min(M.left + pw, Math.max(M.left, x));
  const f = (n: number) => n.toFixed(1);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" ` +
      `aria-label="${escapeHtml(c.title)}">`,
  );
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="#fbfbfd" stroke="#ccc"/>`);

  // y ticks
  let unit = 1;
  while (unit * 1024 <= yMax && unit < 1024 ** 4) unit *= 1024;
  const yStep = niceStep((yMax - yMin) / unit, 4) * unit;
  for (let v = Math.ceil(yMin / yStep) * yStep; v <= yMax; v += yStep) {
    const y = f(sy(v));
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    out.push(
      `<text x="${M.left - 4}" y="${y}" font-size="10" text-anchor="end" dominant-baseline="middle">${escapeHtml(formatBytes(v))}</text>`,
    );
  }
  // x ticks: whole days when the run is long, else every few hours
  const xStepMs = X_STEPS.find((st) => span / st <= 8) ?? Math.ceil(span / (8 * 7 * DAY_MS)) * 7 * DAY_MS;
  for (let t = Math.ceil(t0 / xStepMs) * xStepMs; t <= t1; t += xStepMs) {
    const x = f(sx(t));
    out.push(`<line x1="${x}" x2="${x}" y1="${M.top + ph}" y2="${M.top + ph + 4}" stroke="#999"/>`);
    out.push(
      `<text x="${x}" y="${M.top + ph + 15}" font-size="10" text-anchor="middle">${utcLabel(t)}</text>`,
    );
  }

  // restarts
  for (const r of c.restarts) {
    if (r < t0 || r > t1) continue;
    const x = f(sx(r));
    out.push(
      `<line class="restart" x1="${x}" x2="${x}" y1="${M.top}" y2="${M.top + ph}" stroke="#999" stroke-dasharray="3,3"><title>restart ${utcLabel(r)}</title></line>`,
    );
  }
  // hourly medians, broken at gaps of more than two hours
  let path = "";
  let prev = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < c.hours.length; i++) {
    const t = c.hours[i]! + HOUR_MS / 2;
    path += `${t - prev > 2 * HOUR_MS ? "M" : "L"}${f(sx(t))},${f(sy(c.medians[i]!))}`;
    prev = t;
  }
  if (path !== "")
    out.push(`<path class="series" d="${path}" fill="none" stroke="#2060c0" stroke-width="1.3"/>`);
  if (c.trend) {
    const tr = c.trend;
    out.push(
      `<line class="trend" x1="${f(clampX(sx(tr.from)))}" y1="${f(sy(tr.yFrom))}" x2="${f(clampX(sx(tr.to)))}" y2="${f(sy(tr.yTo))}" stroke="#e08000" stroke-width="2"><title>trend ${escapeHtml(formatBytes(tr.slopePerHour))}/h, R² ${tr.r2.toFixed(2)}</title></line>`,
    );
  }
  if (c.truthStart !== null) {
    const x = f(clampX(sx(c.truthStart)));
    out.push(
      `<line class="truth-start" x1="${x}" x2="${x}" y1="${M.top}" y2="${M.top + ph}" stroke="#1a9a40" stroke-width="1.5"><title>truth startTs ${utcLabel(c.truthStart)}</title></line>`,
    );
  }
  if (c.detectedAt !== null) {
    const x = f(clampX(sx(c.detectedAt)));
    out.push(
      `<line class="detected" x1="${x}" x2="${x}" y1="${M.top}" y2="${M.top + ph}" stroke="#d02020" stroke-width="1.5"><title>detected ${utcLabel(c.detectedAt)}</title></line>`,
    );
  }
  if (c.hours.length === 0) {
    out.push(
      `<text x="${M.left + pw / 2}" y="${M.top + ph / 2}" font-size="12" text-anchor="middle" fill="#888">no telemetry for this target</text>`,
    );
  }
  out.push("</svg>");
  return out.join("");
}

function metricsTable(rows: { group?: string; name: string; m: Metrics }[], groupHeader?: string): string {
  const head = [...(groupHeader ? [groupHeader] : []), "detector", ...METRIC_COLUMNS.map((c) => c.header)];
  const body = rows
    .map(
      (r) =>
        `<tr>${groupHeader ? `<td>${escapeHtml(r.group ?? "")}</td>` : ""}<td>${escapeHtml(r.name)}</td>${METRIC_COLUMNS.map((c) => `<td class="num">${escapeHtml(c.cell(r.m))}</td>`).join("")}</tr>`,
    )
    .join("\n");
  return `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

function breakdown(
  result: EvalResult,
  pick: (d: EvalResult["detectors"][number]) => Record<string, Metrics>,
  header: string,
): string {
  const groups = new Set<string>();
  for (const d of result.detectors) for (const g of Object.keys(pick(d))) groups.add(g);
  if (groups.size === 0) return "";
  const rows: { group: string; name: string; m: Metrics }[] = [];
  for (const g of [...groups].sort()) {
    for (const d of result.detectors) {
      const m = pick(d)[g];
      if (m) rows.push({ group: g, name: d.name, m });
    }
  }
  return metricsTable(rows, header);
}

const TRACE_ENDS: Record<DiagnosisResult["cases"][number]["traceEnd"], string> = {
  complete: "complete",
  "max-duration": "max duration",
  restarted: "process restarted",
  "host-down": "host down",
};

/** Accuracy table, then one row per diagnosed leak: where the truth stack ranked and what ranked first. */
function diagnosisHtml(d: DiagnosisResult): string {
  const row = (group: string, m: DiagnosisResult["overall"]) =>
    `<tr><td>${escapeHtml(group)}</td>${DIAGNOSIS_COLUMNS.map((c) => `<td class="num">${escapeHtml(c.cell(m))}</td>`).join("")}</tr>`;
  const summary = `<table><thead><tr><th>truth pattern</th>${DIAGNOSIS_COLUMNS.map((c) => `<th>${escapeHtml(c.header)}</th>`).join("")}</tr></thead><tbody>
${[row("all", d.overall), ...Object.entries(d.byPattern).map(([p, m]) => row(p, m))].join("\n")}
</tbody></table>`;
  const head = [
    "target",
    "truth",
    "told",
    "profiles",
    "refs",
    "trace",
    "rank",
    "truth leaf",
    "first culprit",
  ];
  const cases = d.cases
    .map((c) => {
      const first = c.culprits[0];
      const cls = c.rank === 1 ? "hit" : "miss";
      const cells = [
        `${c.host}/${c.component}/${c.process}`,
        `${c.truthPattern}${c.cause ? ` ${c.cause}` : ""}`,
        `${c.estimate.pattern} ${formatBytes(c.estimate.growthBytesPerHour)}/h`,
        String(c.profiles),
        String(c.referenceHosts.length),
        TRACE_ENDS[c.traceEnd],
        c.diagnosed ? (c.rank === null ? "–" : `#${c.rank}`) : "not diagnosed",
        `${c.truthLeaf.fn} (${c.truthLeaf.file}:${c.truthLeaf.line})`,
        first ? `${first.frame.fn} — ${first.reason}` : (c.reason ?? ""),
      ];
      return `<tr class="${cls}">${cells.map((x) => `<td>${escapeHtml(x)}</td>`).join("")}</tr>`;
    })
    .join("\n");
  return `<h2>Root-cause diagnosis <small>simulated heap profiles of resin's true positives (process leaks)</small></h2>
${summary}
<table class="cases"><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead><tbody>
${cases}
</tbody></table>`;
}

const SECTION_TITLES: Record<PlotSection["category"], string> = {
  tp: "True positives (resin)",
  fp: "False positives (resin)",
  miss: "Misses: eligible leaks resin did not flag",
};

/** Self-contained HTML report: summary tables, rules, and one inline SVG per plotted case. */
export function renderHtml(result: EvalResult): string {
  const t0 = result.telemetry.firstTs ?? 0;
  const t1 = result.telemetry.lastTs ?? t0 + HOUR_MS;
  const resin = result.detectors.find((d) => d.name === "resin");
  const summary = metricsTable(result.detectors.map((d) => ({ name: d.name, m: d.overall })));
  const eligible = result.truth.filter((r) => r.eligible).length;
  const tel = result.telemetry;

  const sections = result.plots
    .map((s) => {
      const shown = s.cases.length;
      const note =
        s.total > shown
          ? `showing ${shown} of ${s.total} (capped at ${s.cap})`
          : `${s.total} case${s.total === 1 ? "" : "s"}`;
      const figures = s.cases
        .map(
          (c) =>
            `<figure class="case ${c.category}"><figcaption><b>${escapeHtml(c.title)}</b> <span class="kind">${escapeHtml(c.kind)}</span><br>${escapeHtml(c.subtitle)}</figcaption>${renderPlotSvg(c, t0, t1)}</figure>`,
        )
        .join("\n");
      return `<section><h2>${SECTION_TITLES[s.category]} <small>${escapeHtml(note)}</small></h2>\n${figures || "<p>none</p>"}</section>`;
    })
    .join("\n");

  const rules = [
    ["Matching", result.rules.matching],
    ["Eligibility", result.rules.eligibility],
    ["Detection delay", result.rules.delay],
    ["Percentiles", result.rules.percentiles],
    ...result.detectors.map((d) => [`Detector: ${d.name}`, d.rule] as [string, string]),
    ["Plots", result.rules.plots],
    ...(result.diagnosis ? [["Root-cause diagnosis", result.diagnosis.rule] as [string, string]] : []),
  ]
    .map(([k, v]) => `<dt>${escapeHtml(k!)}</dt><dd>${escapeHtml(v!)}</dd>`)
    .join("\n");

  const warnings =
    result.warnings.length > 0
      ? `<ul class="warn">${result.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join("")}</ul>`
      : "";
  const headline = resin
    ? `resin: precision ${fmtRatio(resin.overall.precision)}, recall ${fmtRatio(resin.overall.recallEligible)} (eligible), F1 ${fmtRatio(resin.overall.f1)}, delay p50 ${fmtHours(resin.overall.delayP50h)} h`
    : "";
  const d = result.diagnosis?.overall;
  const rootCause = d
    ? `; root cause: top-1 ${fmtRatio(d.top1Rate)}, top-3 ${fmtRatio(d.top3Rate)} of ${d.diagnosed} diagnosed leaks`
    : "";

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>resin eval</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 20px}th,td{border:1px solid #ddd;padding:3px 8px;font-size:13px}
th{background:#f3f3f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
dt{font-weight:600;margin-top:8px}dd{margin-left:16px;font-size:13px}
figure.case{display:inline-block;margin:8px 8px 16px 0;vertical-align:top}
figcaption{font-size:12px;margin-bottom:2px;max-width:720px}
figure.tp figcaption b{color:#1a7a30}figure.fp figcaption b{color:#b02020}figure.miss figcaption b{color:#a06000}
.kind{color:#666;font-size:11px}small{font-weight:normal;color:#666}.warn{color:#a05000}
.legend span{margin-right:14px;font-size:12px}
table.cases td{font-size:12px}tr.miss td{background:#fff4e6}
</style></head><body>
<h1>resin eval</h1>
<p>${escapeHtml(headline + rootCause)}</p>
<p>Telemetry <code>${escapeHtml(tel.path)}</code>: ${tel.lines} lines (${tel.badLines} bad, skipped), ${tel.samples} process samples${tel.firstTs !== null ? `, ${escapeHtml(new Date(tel.firstTs).toISOString())} – ${escapeHtml(new Date(t1).toISOString())}` : ""}.
Truth: ${result.truth.length} records, ${eligible} eligible at min-growth ${(result.minGrowth * 100).toFixed(0)}%.
Resin: ${result.resinSource === "suspects-file" ? "suspect events read from a file" : "detector run in-process"} (${result.suspectEvents} events).</p>
${warnings}
<h2>Summary</h2>
${summary}
<h2>By truth pattern <small>recall side: a false positive has no truth pattern</small></h2>
${breakdown(result, (d) => d.byPattern, "pattern")}
<h2>By kind</h2>
${breakdown(result, (d) => d.byKind, "kind")}
${Object.keys(resin?.byCause ?? {}).length > 0 ? `<h2>By cause <small>recall side</small></h2>\n${breakdown(result, (d) => d.byCause, "cause")}` : ""}
${result.diagnosis ? diagnosisHtml(result.diagnosis) : ""}
<h2>Rules</h2>
<dl>
${rules}
</dl>
<p class="legend"><span style="color:#2060c0">━ hourly median bytes</span><span style="color:#999">┆ restart</span><span style="color:#e08000">━ fitted trend</span><span style="color:#d02020">│ detected</span><span style="color:#1a9a40">│ truth startTs</span></p>
${sections}
</body></html>
`;
}
