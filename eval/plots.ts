import type { TrackedTarget } from "./series.ts";
import { fitLine } from "./stats.ts";
import {
  type Detection,
  type DetectorResult,
  HOUR_MS,
  keyOf,
  type PlotCase,
  type PlotSection,
  showTarget,
  type TruthEval,
} from "./types.ts";

export const DEFAULT_PLOT_CAP = 60;

export function plotsRule(cap: number): string {
  return (
    `One plot per resin true positive, false positive and eligible miss, at most ${cap} per category (true ` +
    "positives slowest detection first, false positives highest severity first, misses largest growth first). " +
    "Each shows the target's hourly median bytes over the whole run (restarts dashed grey), the least-squares " +
    "trend over the suspect interval [start, end] (over the truth leak from startTs to the next restart or the end " +
    "for misses), the detection (red) and the truth's startTs (green). Baseline cases are listed in the JSON " +
    "output but not plotted: their targets are only known after the single telemetry pass."
  );
}

function trendOver(
  hours: readonly number[],
  medians: readonly number[],
  from: number,
  to: number,
): PlotCase["trend"] {
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < hours.length; i++) {
    const mid = hours[i]! + HOUR_MS / 2;
    if (mid >= from && mid <= to) {
      xs.push(mid);
      ys.push(medians[i]!);
    }
  }
  const fit = fitLine(xs, ys);
  if (!fit) return null;
  return {
    from,
    to,
    yFrom: fit.intercept + fit.slope * from,
    yTo: fit.intercept + fit.slope * to,
    slopePerHour: fit.slope * HOUR_MS,
    r2: fit.r2,
  };
}

function leakEnd(t: TrackedTarget | undefined, startTs: number, fallback: number): number {
  if (!t) return fallback;
  let end = t.lastTs ?? fallback;
  for (const r of t.restarts) if (r > startTs && r < end) end = r;
  return end;
}

function fmtMiB(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** Builds resin's plot sections from the tracked targets of the pass. */
export function buildPlots(
  resin: DetectorResult | undefined,
  truth: readonly TruthEval[],
  tracked: ReadonlyMap<string, TrackedTarget>,
  telemetryEnd: number,
  cap: number,
): PlotSection[] {
  if (!resin) return [];
  const base = (d: { host: string; component: string; process: string }) => {
    const t = tracked.get(keyOf(d));
    const s = t ? t.series() : { hours: [], medians: [] };
    return { t, hours: s.hours, medians: s.medians, restarts: t ? [...t.restarts] : [] };
  };
  const trendFor = (d: Detection, b: ReturnType<typeof base>, fallbackFrom: number | null) => {
    if (d.start !== undefined && d.end !== undefined) return trendOver(b.hours, b.medians, d.start, d.end);
    if (fallbackFrom !== null) {
      return trendOver(b.hours, b.medians, fallbackFrom, leakEnd(b.t, fallbackFrom, telemetryEnd));
    }
    return null;
  };

  const tps = [...resin.truePositives].sort((a, b) => Math.max(...b.delaysH) - Math.max(...a.delaysH));
  const tpCases: PlotCase[] = tps.slice(0, cap).map((d) => {
    const b = base(d);
    const records = d.truth.map((i) => truth[i]!);
    const start = Math.min(...records.map((r) => r.record.startTs));
    const first = records[0]!;
    return {
      category: "tp",
      target: { host: d.host, component: d.component, process: d.process },
      kind: d.kind,
      title: showTarget(d),
      subtitle:
        `true positive · truth ${first.record.pattern}${first.record.cause ? `/${first.record.cause}` : ""} · ` +
        `resin ${d.pattern ?? "?"} · delay ${d.delaysH.map((h) => h.toFixed(1)).join(", ")} h` +
        (d.severity !== undefined ? ` · severity ${d.severity.toFixed(1)}` : ""),
      hours: b.hours,
      medians: b.medians,
      restarts: b.restarts,
      detectedAt: d.detectedAt,
      truthStart: start,
      trend: trendFor(d, b, start),
    };
  });

  const fps = [...resin.falsePositives].sort((a, b) => (b.severity ?? 0) - (a.severity ?? 0));
  const fpCases: PlotCase[] = fps.slice(0, cap).map((d) => {
    const b = base(d);
    return {
      category: "fp",
      target: { host: d.host, component: d.component, process: d.process },
      kind: d.kind,
      title: showTarget(d),
      subtitle:
        `false positive · resin ${d.pattern ?? "?"}` +
        (d.severity !== undefined ? ` · severity ${d.severity.toFixed(1)}` : "") +
        (d.growthBytesPerHour !== undefined ? ` · ${fmtMiB(d.growthBytesPerHour)}/h` : ""),
      hours: b.hours,
      medians: b.medians,
      restarts: b.restarts,
      detectedAt: d.detectedAt,
      truthStart: null,
      trend: trendFor(d, b, null),
    };
  });

  const misses = resin.misses
    .filter((m) => m.eligible)
    .sort((a, b) => (truth[b.truth]!.growthBytes ?? 0) - (truth[a.truth]!.growthBytes ?? 0));
  const missCases: PlotCase[] = misses.slice(0, cap).map((m) => {
    const te = truth[m.truth]!;
    const b = base(m.target);
    const r = te.record;
    const pct =
      te.normalBytes && te.growthBytes !== null
        ? ` (${((100 * te.growthBytes) / te.normalBytes).toFixed(0)}%)`
        : "";
    return {
      category: "miss",
      target: m.target,
      kind: r.kind,
      title: showTarget(m.target),
      subtitle:
        `missed · ${r.pattern}${r.cause ? `/${r.cause}` : ""} · ${fmtMiB(r.ratePerHour)}/h · grew ` +
        `${te.growthBytes === null ? "?" : fmtMiB(te.growthBytes)}${pct}`,
      hours: b.hours,
      medians: b.medians,
      restarts: b.restarts,
      detectedAt: null,
      truthStart: r.startTs,
      trend: trendOver(b.hours, b.medians, r.startTs, leakEnd(b.t, r.startTs, telemetryEnd)),
    };
  });

  return [
    { category: "tp", total: tps.length, cap, cases: tpCases },
    { category: "fp", total: fps.length, cap, cases: fpCases },
    { category: "miss", total: misses.length, cap, cases: missCases },
  ];
}
