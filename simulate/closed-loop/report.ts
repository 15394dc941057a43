/**
 * The closed loop's outcome, for people: a text table (stdout), a JSON document and an HTML page
 * with inline SVG plots (cumulative low-memory VM reboots, allocation errors and leaked memory
 * over time, without and with resin).
 */

import { escapeHtml, formatBytes } from "../../eval/report-html.ts";
import { alignRows } from "../../eval/table.ts";
import { DAY } from "../duration.ts";
import type { ClosedLoopResult, RunResult } from "./loop.ts";

const n = (x: number) => x.toLocaleString("en-US");
const pct = (x: number) => `${(100 * x).toFixed(3)}%`;

export function fmtRatio(r: number | null): string {
  if (r === null) return "– (0 both)";
  if (!Number.isFinite(r)) return "∞ (0 with resin)";
  return `${r.toFixed(1)}×`;
}

/** One row of a headroom sensitivity table. */
export interface SensitivityRow {
  headroom: number;
  without: { rebootsPer100k: number; reboots: number; errorRate: number; errors: number };
  with: { rebootsPer100k: number; reboots: number; errorRate: number; errors: number };
  rebootRatio: number | null;
  errorRatio: number | null;
  restarts: number;
  migrations: number;
  reboots: number;
  budgetViolations: number;
  healthyHostReboots: number;
}

export function sensitivityRow(r: ClosedLoopResult): SensitivityRow {
  const side = (x: RunResult) => ({
    rebootsPer100k: x.lowMemoryVmRebootsPer100kHostDays,
    reboots: x.counters.lowMemoryVmReboots,
    errorRate: x.allocationErrorRate,
    errors: x.counters.placementFailures,
  });
  const d = r.with.doneByAction;
  return {
    headroom: r.world.headroom,
    without: side(r.without),
    with: side(r.with),
    rebootRatio: r.lowMemoryRebootRatio,
    errorRatio: r.allocationErrorRatio,
    restarts: (d?.["restart-process"] ?? 0) + (d?.["restart-service"] ?? 0),
    migrations: d?.["migrate-vms"] ?? 0,
    reboots: (d?.["soft-reboot"] ?? 0) + (d?.reboot ?? 0),
    budgetViolations: r.with.budgets?.violations ?? 0,
    healthyHostReboots: r.with.truth?.rebootsOfHealthyHosts ?? 0,
  };
}

/** First column left-aligned, the rest right-aligned (eval's table layout). */
const table = (rows: string[][]) => alignRows(rows, 1);

export function renderClosedLoopTable(r: ClosedLoopResult, sensitivity: SensitivityRow[] = []): string {
  const w = r.without;
  const x = r.with;
  const c0 = w.counters;
  const c1 = x.counters;
  const d = x.doneByAction!;
  const det = x.detection!;
  const b = x.budgets!;
  const t = x.truth!;
  const lines: string[] = [];
  lines.push(
    `resin closed loop: scenario ${r.scenario}, seed ${r.seed}, ${n(r.hosts)} hosts, ${r.days} days, ` +
      `headroom ${(100 * r.world.headroom).toFixed(1)}% of host memory; ${r.leaks.total} injected leaks ` +
      `(${r.leaks.process} process, ${r.leaks.kernel} kernel)`,
    "",
  );
  lines.push(
    table([
      ["outcome", "without resin", "with resin", "without ÷ with"],
      [
        "low-memory VM reboots / 100k hosts / day",
        w.lowMemoryVmRebootsPer100kHostDays.toFixed(1),
        x.lowMemoryVmRebootsPer100kHostDays.toFixed(1),
        fmtRatio(r.lowMemoryRebootRatio),
      ],
      ["  low-memory VM reboots (count)", n(c0.lowMemoryVmReboots), n(c1.lowMemoryVmReboots), ""],
      [
        "VM allocation error rate",
        pct(w.allocationErrorRate),
        pct(x.allocationErrorRate),
        fmtRatio(r.allocationErrorRatio),
      ],
      [
        "  allocation errors / placement requests",
        `${n(c0.placementFailures)} / ${n(c0.placementRequests)}`,
        `${n(c1.placementFailures)} / ${n(c1.placementRequests)}`,
        "",
      ],
      ["hosts that ran out of memory", n(w.hostsWithLowMemory), n(x.hostsWithLowMemory), ""],
      ["host processes OOM-killed", n(c0.oomProcessKills), n(c1.oomProcessKills), ""],
    ]),
  );
  lines.push("", "disruption resin caused (commands carried out by the agents)");
  lines.push(
    table([
      ["  action", "count"],
      ["  process restarts (restart-process)", n(d["restart-process"])],
      ["  service restarts (restart-service)", n(d["restart-service"])],
      ["  VM migrations (migrate-vms)", `${n(d["migrate-vms"])} (${n(c1.vmsMigrated)} VMs moved)`],
      ["  soft reboots", n(d["soft-reboot"])],
      ["  reboots", n(d.reboot)],
      ["  VMs rebooted with their host", n(c1.vmRebootsByMitigation)],
      ["  commands refused / unanswered", `${n(c1.commandsRefused)} / ${n(c1.commandsUnanswered)}`],
    ]),
  );
  lines.push("", "safety, measured (not taken from the engine)");
  lines.push(
    table([
      ["  check", "limit", "worst seen", "violations"],
      [
        "  commands per cluster in any hour",
        String(b.maxActionsPerClusterHour),
        `${b.worstActionsInAClusterHour}${b.worstCluster ? ` (${b.worstCluster})` : ""}`,
        String(b.worstActionsInAClusterHour > b.maxActionsPerClusterHour ? 1 : 0),
      ],
      [
        "  hosts rebooting at once per region",
        String(b.maxConcurrentRebootsPerRegion),
        `${b.worstConcurrentRebootsInARegion}${b.worstRegion ? ` (${b.worstRegion})` : ""}`,
        String(b.worstConcurrentRebootsInARegion > b.maxConcurrentRebootsPerRegion ? 1 : 0),
      ],
      [
        "  reboots of hosts that were not leaking",
        "0",
        String(t.rebootsOfHealthyHosts),
        String(t.rebootsOfHealthyHosts),
      ],
      [
        "  migrations/reboots of non-leaking hosts",
        "0",
        String(t.disruptiveOnHealthyHosts),
        String(t.disruptiveOnHealthyHosts),
      ],
      ["  restarts of processes not leaking", "–", String(t.restartsOfHealthyTargets), ""],
    ]),
  );
  const res = x.residual;
  if (res !== undefined)
    lines.push(
      "",
      `customer impact left with resin (VM reboots + allocation errors): ${res.healthyHost} on hosts without a leak, ` +
        `${res.beforeDetection} on leaking hosts before the detector flagged them, ${res.detectedNotActed} flagged but ` +
        `not acted on yet, ${res.afterAction} after resin had acted on the host (the leak came back)`,
    );
  const delay = (h: number | null) => (h === null ? "–" : `${h.toFixed(1)} h`);
  lines.push(
    "",
    `detection in the loop: ${n(det.suspectEvents)} suspect events on ${n(det.targets)} targets ` +
      `(${det.truePositiveTargets} leaking, ${det.falsePositiveTargets} not); ${det.leaksDetected} of ${det.leaks} ` +
      `leaks detected, median delay ${delay(det.medianDelayHours)}, max ${delay(det.maxDelayHours)}`,
  );
  if (sensitivity.length > 0) {
    lines.push("", "headroom sensitivity (same fleet and seed)");
    lines.push(
      table([
        [
          "  headroom",
          "reboots/100k/day w/o",
          "with",
          "ratio",
          "alloc errors w/o",
          "with",
          "ratio",
          "restarts",
          "migr.",
          "reboots",
          "budget viol.",
          "healthy reboots",
        ],
        ...sensitivity.map((s) => [
          `  ${(100 * s.headroom).toFixed(1)}%`,
          `${s.without.rebootsPer100k.toFixed(1)} (${s.without.reboots})`,
          `${s.with.rebootsPer100k.toFixed(1)} (${s.with.reboots})`,
          fmtRatio(s.rebootRatio),
          `${pct(s.without.errorRate)} (${s.without.errors})`,
          `${pct(s.with.errorRate)} (${s.with.errors})`,
          fmtRatio(s.errorRatio),
          n(s.restarts),
          n(s.migrations),
          n(s.reboots),
          String(s.budgetViolations),
          String(s.healthyHostReboots),
        ]),
      ]),
    );
  }
  return `${lines.join("\n")}\n`;
}

/** The JSON document: everything but the detector's and the engine's full event streams. */
export function closedLoopJson(r: ClosedLoopResult, sensitivity: SensitivityRow[] = []): unknown {
  const strip = (x: RunResult) => {
    const { audit, suspects, ...rest } = x;
    return { ...rest, auditRecords: audit?.length, suspectEvents: suspects?.length };
  };
  return {
    ...r,
    without: strip(r.without),
    with: strip(r.with),
    lowMemoryRebootRatio: jsonRatio(r.lowMemoryRebootRatio),
    allocationErrorRatio: jsonRatio(r.allocationErrorRatio),
    sensitivity: sensitivity.map((s) => ({
      ...s,
      rebootRatio: jsonRatio(s.rebootRatio),
      errorRatio: jsonRatio(s.errorRatio),
    })),
  };
}

/** JSON has no Infinity: "inf" says resin brought a nonzero count to zero. */
function jsonRatio(r: number | null): number | string | null {
  return r !== null && !Number.isFinite(r) ? "inf" : r;
}

// --- HTML ----------------------------------------------------------------------------------------

const W = 760;
const H = 260;
const M = { left: 80, right: 150, top: 16, bottom: 36 };

interface Line {
  label: string;
  color: string;
  ts: number[];
  ys: number[];
}

function linePlot(title: string, lines: Line[], fmt: (v: number) => string): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const all = lines.flatMap((l) => l.ts);
  const t0 = all.length > 0 ? Math.min(...all) : 0;
  const t1 = all.length > 0 ? Math.max(...all) : 1;
  const yMax = Math.max(1, ...lines.flatMap((l) => l.ys));
  const x = (t: number) => M.left + ((t - t0) / Math.max(1, t1 - t0)) * pw;
  const y = (v: number) => M.top + ph - (v / yMax) * ph;
  const parts: string[] = [];
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#ccc"/>`);
  for (let k = 0; k <= 4; k++) {
    const v = (yMax * k) / 4;
    parts.push(
      `<line x1="${M.left}" x2="${M.left + pw}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/>`,
      `<text x="${M.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="11">${escapeHtml(fmt(v))}</text>`,
    );
  }
  const days = Math.round((t1 - t0) / DAY);
  const step = days > 20 ? 5 : days > 6 ? 2 : 1;
  for (let dd = 0; dd <= days; dd += step) {
    const tx = x(t0 + dd * DAY);
    parts.push(
      `<text x="${tx.toFixed(1)}" y="${M.top + ph + 16}" text-anchor="middle" font-size="11">day ${dd}</text>`,
    );
  }
  lines.forEach((l, i) => {
    const pts = l.ys.map((v, j) => `${x(l.ts[j]!).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    parts.push(`<polyline fill="none" stroke="${l.color}" stroke-width="2" points="${pts}"/>`);
    const ly = M.top + 14 + i * 18;
    parts.push(
      `<line x1="${M.left + pw + 10}" x2="${M.left + pw + 30}" y1="${ly - 4}" y2="${ly - 4}" stroke="${l.color}" stroke-width="2"/>`,
      `<text x="${M.left + pw + 34}" y="${ly}" font-size="12">${escapeHtml(l.label)}</text>`,
    );
  });
  return (
    `<h3>${escapeHtml(title)}</h3>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">${parts.join("")}</svg>`
  );
}

export function renderClosedLoopHtml(r: ClosedLoopResult, sensitivity: SensitivityRow[] = []): string {
  const tl0 = r.without.timeline;
  const tl1 = r.with.timeline;
  const both = (pick: (tl: typeof tl0) => number[]): Line[] => [
    { label: "without resin", color: "#c0392b", ts: tl0.t, ys: pick(tl0) },
    { label: "with resin", color: "#2471a3", ts: tl1.t, ys: pick(tl1) },
  ];
  const plots = [
    linePlot(
      "Cumulative low-memory VM reboots",
      both((tl) => tl.lowMemoryVmReboots),
      (v) => v.toFixed(0),
    ),
    linePlot(
      "Cumulative VM allocation errors",
      both((tl) => tl.placementFailures),
      (v) => v.toFixed(0),
    ),
    linePlot(
      "Memory held by the injected leaks, fleet total",
      both((tl) => tl.leakedBytes),
      formatBytes,
    ),
  ];
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>resin closed loop — ${escapeHtml(r.scenario)} seed ${r.seed}</title>
<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}</style>
</head><body>
<h1>resin closed loop</h1>
<p>The same fleet (scenario ${escapeHtml(r.scenario)}, seed ${r.seed}, ${n(r.hosts)} hosts, ${r.days} days) run twice:
left alone, and with resin's detector and mitigation engine in the loop. The ground truth only scores the result.
World model and assumptions: simulate/README.md, "Closed loop".</p>
<pre>${escapeHtml(renderClosedLoopTable(r, sensitivity))}</pre>
${plots.join("\n")}
</body></html>
`;
}
