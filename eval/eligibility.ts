import type { TruthRecord } from "../schemas/truth.ts";
import type { TrackedTarget, TruthWatch } from "./series.ts";
import { type GrowthSource, HOUR_MS, type NormalSource, type TruthEval } from "./types.ts";

export const ELIGIBILITY_RULE =
  "A truth record is eligible (counts in recall) when its leak grew by at least min-growth × the process's " +
  "normal size by the end of the telemetry. normal = the record's normalBytes when present, else the median " +
  "of the target's (host, component, process) samples before startTs, else (target first seen at/after startTs) " +
  "the median of its first 6 h of samples. growth = the record's grownBytes when present, else ratePerHour × " +
  "hours from max(startTs, the last restart of the target after startTs) to the target's last sample; a restart " +
  "is a process identity (pid, startedAt) not seen before for the target, dated at its startedAt (or first " +
  "sample). Records whose target never appears in the telemetry and that lack the fields cannot be judged and " +
  "are not eligible (they still count in recall over all records). Medians over long histories use a " +
  "deterministic, bounded subsample.";

/** Telemetry facts about one truth record's target, as gathered by the streaming pass. */
export interface TargetFacts {
  target: TrackedTarget | undefined;
  watch: TruthWatch | undefined;
}

/** Judges one truth record; `minGrowth` is a fraction of the normal size (0.10 = 10%). */
export function judgeEligibility(
  index: number,
  key: string,
  record: TruthRecord,
  facts: TargetFacts,
  minGrowth: number,
): TruthEval {
  const t = facts.target && facts.target.samples > 0 ? facts.target : undefined;

  let normalBytes: number | null = null;
  let normalSource: NormalSource = "none";
  if (record.normalBytes !== undefined) {
    normalBytes = record.normalBytes;
    normalSource = "field";
  } else if (t) {
    const pre = facts.watch && facts.watch.pre.count > 0 ? facts.watch.pre.median() : null;
    if (pre !== null) {
      normalBytes = pre;
      normalSource = "telemetry-before-start";
    } else {
      normalBytes = t.first6h.median();
      normalSource = normalBytes === null ? "none" : "telemetry-first-6h";
    }
  }

  let growthBytes: number | null = null;
  let growthSource: GrowthSource = "none";
  let growthFrom: number | undefined;
  let growthTo: number | undefined;
  if (record.grownBytes !== undefined) {
    growthBytes = record.grownBytes;
    growthSource = "field";
  } else if (t && t.lastTs !== null) {
    let from = record.startTs;
    for (const r of t.restarts) if (r > from) from = r;
    growthFrom = from;
    growthTo = t.lastTs;
    growthBytes = (record.ratePerHour * Math.max(0, t.lastTs - from)) / HOUR_MS;
    growthSource = "telemetry-rate";
  }

  const out: TruthEval = {
    index,
    record,
    key,
    eligible: false,
    normalBytes,
    growthBytes,
    normalSource,
    growthSource,
  };
  if (growthFrom !== undefined) out.growthFrom = growthFrom;
  if (growthTo !== undefined) out.growthTo = growthTo;
  if (normalBytes === null || growthBytes === null) {
    out.reason = "target not in telemetry and the record lacks normalBytes/grownBytes";
    return out;
  }
  out.eligible = growthBytes >= minGrowth * normalBytes && growthBytes > 0;
  if (!out.eligible) {
    const pct = normalBytes > 0 ? ((100 * growthBytes) / normalBytes).toFixed(1) : "0";
    out.reason = `grew ${pct}% of normal, below ${(100 * minGrowth).toFixed(0)}%`;
  }
  return out;
}
