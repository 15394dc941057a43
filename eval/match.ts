import type { SuspectEvent } from "../schemas/suspect.ts";
import { percentile } from "./stats.ts";
import {
  type Detection,
  type DetectorResult,
  HOUR_MS,
  keyOf,
  type Metrics,
  type Miss,
  type TruePositive,
  type TruthEval,
  targetKey,
} from "./types.ts";

export const MATCHING_RULE =
  "A suspected target (host, component, process) matches a truth record when all three are equal. Precision " +
  "counts DISTINCT suspected targets (a target with several events or several truth records counts once): TP " +
  "if it matches any truth record, else FP. A target is suspected when it has an `open` or `update` event; " +
  "targets with only `resolved` events are not suspected. Recall counts truth records: over eligible records " +
  "(the headline, used in F1) and over all records. FN = eligible records never matched by a suspected target.";

export const DELAY_RULE =
  "Detection delay = detectedAt of the first `open` event of the matching target (the earliest `update` when " +
  "it has no `open`; a baseline's first firing) − the record's startTs, in hours, over detected eligible records. " +
  "Nothing is clamped: a negative delay means the target was flagged before the recorded leak start (column " +
  "'early': such records, often an unrelated earlier alarm on a target that later leaked).";

/**
 * Reduces suspect events to one detection per target: detectedAt of the earliest `open`
 * event (earliest `update` when there is no `open`); interval, pattern and rate from that
 * event; severity is the maximum over the target's events. Resolved-only targets are dropped.
 */
export function detectionsFromSuspects(events: readonly SuspectEvent[]): Detection[] {
  const first = new Map<string, { open?: SuspectEvent; update?: SuspectEvent; severity: number }>();
  for (const e of events) {
    const key = targetKey(e.host, e.component, e.process);
    let slot = first.get(key);
    if (!slot) {
      slot = { severity: Number.NEGATIVE_INFINITY };
      first.set(key, slot);
    }
    if (e.state === "resolved") continue;
    if (e.severity > slot.severity) slot.severity = e.severity;
    if (e.state === "open") {
      if (!slot.open || e.detectedAt < slot.open.detectedAt) slot.open = e;
    } else if (!slot.update || e.detectedAt < slot.update.detectedAt) {
      slot.update = e;
    }
  }
  const out: Detection[] = [];
  for (const slot of first.values()) {
    const e = slot.open ?? slot.update;
    if (!e) continue;
    out.push({
      host: e.host,
      component: e.component,
      process: e.process,
      kind: e.kind,
      detectedAt: e.detectedAt,
      start: e.start,
      end: e.end,
      pattern: e.pattern,
      severity: slot.severity,
      growthBytesPerHour: e.growthBytesPerHour,
      pid: e.pid,
    });
  }
  return sortDetections(out);
}

export function sortDetections<T extends Detection>(list: T[]): T[] {
  return list.sort(
    (a, b) =>
      a.host.localeCompare(b.host) ||
      a.component.localeCompare(b.component) ||
      a.process.localeCompare(b.process),
  );
}

function ratio(num: number, den: number): number | null {
  return den > 0 ? num / den : null;
}

function f1(p: number | null, r: number | null): number | null {
  if (p === null || r === null) return null;
  return p + r > 0 ? (2 * p * r) / (p + r) : 0;
}

interface Scored {
  /** Suspected targets of the group with whether they matched (null = precision undefined for the group). */
  suspected: { matched: boolean }[] | null;
  truth: { eligible: boolean; detected: boolean; delayH: number | null }[];
  tp: number;
}

function metricsOf(s: Scored): Metrics {
  const eligible = s.truth.filter((t) => t.eligible);
  const detectedEligible = eligible.filter((t) => t.detected).length;
  const detectedAll = s.truth.filter((t) => t.detected).length;
  const delays = eligible.filter((t) => t.detected && t.delayH !== null).map((t) => t.delayH!);
  const precision = s.suspected ? ratio(s.tp, s.suspected.length) : null;
  const recallEligible = ratio(detectedEligible, eligible.length);
  return {
    precision,
    recallEligible,
    recallAll: ratio(detectedAll, s.truth.length),
    f1: f1(precision, recallEligible),
    tp: s.tp,
    fp: s.suspected ? s.suspected.length - s.tp : null,
    fn: eligible.length - detectedEligible,
    suspectedTargets: s.suspected ? s.suspected.length : null,
    truthRecords: s.truth.length,
    eligibleRecords: eligible.length,
    detectedEligible,
    detectedAll,
    delayP50h: percentile(delays, 0.5),
    delayP90h: percentile(delays, 0.9),
    delayCount: delays.length,
    detectedBeforeStart: delays.filter((d) => d < 0).length,
  };
}

/**
 * Scores one detector's detections against the judged truth records: overall, per truth
 * pattern and cause (recall side only: a false positive has no truth pattern or cause) and
 * per kind (both sides: a false positive's kind is the detector's, a true positive's the truth's).
 */
export function scoreDetector(
  name: string,
  rule: string,
  detections: readonly Detection[],
  truth: readonly TruthEval[],
): DetectorResult {
  const byTarget = new Map<string, Detection>();
  for (const d of detections) {
    const k = keyOf(d);
    const prev = byTarget.get(k);
    if (!prev || d.detectedAt < prev.detectedAt) byTarget.set(k, d);
  }
  const truthByKey = new Map<string, TruthEval[]>();
  for (const t of truth) {
    const list = truthByKey.get(t.key);
    if (list) list.push(t);
    else truthByKey.set(t.key, [t]);
  }

  const truePositives: TruePositive[] = [];
  const falsePositives: Detection[] = [];
  for (const [k, d] of byTarget) {
    const matched = truthByKey.get(k);
    if (matched) {
      truePositives.push({
        ...d,
        truth: matched.map((t) => t.index),
        delaysH: matched.map((t) => (d.detectedAt - t.record.startTs) / HOUR_MS),
      });
    } else {
      falsePositives.push(d);
    }
  }
  const misses: Miss[] = [];
  const truthRows = truth.map((t) => {
    const d = byTarget.get(t.key);
    if (!d) {
      misses.push({
        truth: t.index,
        target: { host: t.record.host, component: t.record.component, process: t.record.process },
        eligible: t.eligible,
      });
    }
    return {
      t,
      eligible: t.eligible,
      detected: d !== undefined,
      delayH: d ? (d.detectedAt - t.record.startTs) / HOUR_MS : null,
    };
  });

  const overall = metricsOf({
    suspected: [...byTarget.keys()].map((k) => ({ matched: truthByKey.has(k) })),
    truth: truthRows,
    tp: truePositives.length,
  });

  const groupRecall = (pick: (t: TruthEval) => string | undefined): Record<string, Metrics> => {
    const groups = new Map<string, typeof truthRows>();
    for (const row of truthRows) {
      const g = pick(row.t);
      if (g === undefined) continue;
      const list = groups.get(g);
      if (list) list.push(row);
      else groups.set(g, [row]);
    }
    const out: Record<string, Metrics> = {};
    for (const g of [...groups.keys()].sort()) {
      const rows = groups.get(g)!;
      const tpTargets = new Set(rows.filter((r) => r.detected).map((r) => r.t.key));
      out[g] = metricsOf({ suspected: null, truth: rows, tp: tpTargets.size });
    }
    return out;
  };

  const byKind: Record<string, Metrics> = {};
  for (const kind of ["process", "kernel"] as const) {
    const rows = truthRows.filter((r) => r.t.record.kind === kind);
    const suspected: { matched: boolean }[] = [];
    let tp = 0;
    for (const [k, d] of byTarget) {
      const matched = truthByKey.get(k);
      const targetKind = matched ? matched[0]!.record.kind : d.kind;
      if (targetKind !== kind) continue;
      suspected.push({ matched: matched !== undefined });
      if (matched) tp++;
    }
    if (rows.length === 0 && suspected.length === 0) continue;
    byKind[kind] = metricsOf({ suspected, truth: rows, tp });
  }

  return {
    name,
    rule,
    overall,
    byPattern: groupRecall((t) => t.record.pattern),
    byKind,
    byCause: groupRecall((t) => t.record.cause),
    truePositives: sortDetections(truePositives),
    falsePositives: sortDetections(falsePositives),
    misses,
  };
}
