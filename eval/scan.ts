import { openInput, readLineBatches } from "../lib/ndjson.ts";
import { decodeLine } from "../operators/decode/core.ts";
import { type Baseline, SeriesRegistry } from "./baselines/common.ts";
import type { TrackedTarget } from "./series.ts";
import { type TelemetryStats, targetKey } from "./types.ts";

const MAX_BAD_EXAMPLES = 5;

export interface ScanInput {
  path: string;
  /** Targets whose series, restarts and normal size the evaluation needs (suspects and truth). */
  tracked: ReadonlyMap<string, TrackedTarget>;
  baselines: readonly Baseline[];
  /** Called every ~100k lines with the number of lines read so far. */
  onProgress?: (lines: number) => void;
}

/**
 * One streaming pass over a telemetry NDJSON file: validates every line (bad lines are skipped
 * and counted), feeds every process sample to the baselines and the samples of tracked
 * targets to their trackers. Memory: baseline state per live process series plus the tracked
 * targets; the file itself is never held.
 */
export async function scanTelemetry(input: ScanInput): Promise<TelemetryStats> {
  const stats: TelemetryStats = {
    path: input.path,
    lines: 0,
    badLines: 0,
    badLineExamples: [],
    messages: 0,
    samples: 0,
    firstTs: null,
    lastTs: null,
    lateSamplesDropped: 0,
  };
  const bad = (reason: string) => {
    stats.badLines++;
    if (stats.badLineExamples.length < MAX_BAD_EXAMPLES) {
      stats.badLineExamples.push({
        record: stats.lines,
        reason: reason.length > 200 ? `${reason.slice(0, 197)}...` : reason,
      });
    }
  };
  let nextProgress = 100_000;
  let firstTs = Number.POSITIVE_INFINITY;
  let lastTs = Number.NEGATIVE_INFINITY;
  const nb = input.baselines.length;
  const registry = new SeriesRegistry(input.baselines);

  for await (const batch of readLineBatches(openInput(input.path))) {
    for (const line of batch) {
      stats.lines++;
      // The detector's decoder: a fast structural check, zod only to explain a reject.
      const decoded = decodeLine(line);
      if (!decoded.ok) {
        bad(decoded.dead.reason);
        continue;
      }
      const msg = decoded.value;
      stats.messages++;
      const ts = msg.ts;
      if (ts < firstTs) firstTs = ts;
      if (ts > lastTs) lastTs = ts;
      const hostFree = msg.hostMemory ? msg.hostMemory.totalBytes - msg.hostMemory.usedBytes : undefined;
      for (const p of msg.processes) {
        stats.samples++;
        const tk = targetKey(msg.host, msg.component, p.name);
        const tracked = input.tracked.get(tk);
        if (tracked) tracked.add(ts, p.bytes, p.pid, p.startedAt);
        if (nb === 0) continue;
        const series = registry.get(msg.host, msg.component, p.name, p.pid, p.startedAt, tk);
        registry.feed(series, ts, p.bytes, hostFree);
      }
    }
    if (input.onProgress && stats.lines >= nextProgress) {
      input.onProgress(stats.lines);
      nextProgress = stats.lines + 100_000;
    }
  }
  registry.finish();
  for (const t of input.tracked.values()) {
    t.finish();
    stats.lateSamplesDropped += t.lateDropped;
  }
  if (Number.isFinite(firstTs)) stats.firstTs = firstTs;
  if (Number.isFinite(lastTs)) stats.lastTs = lastTs;
  return stats;
}
