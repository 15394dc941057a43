import type { BucketEvidence, GrowthPattern, SuspectEvent, SuspectState } from "../../schemas/suspect.ts";
import { KERNEL_COMPONENT } from "../../schemas/telemetry.ts";
import type { Finding } from "../process-detect/core.ts";
import type { SeriesInfo } from "../window/core.ts";
import { LifecycleConfig, type LifecycleConfigInput } from "./config.ts";

interface Tracked {
  id: string;
  info: SeriesInfo;
  start: number;
  lastReport: number;
  severity: number;
  pattern: GrowthPattern;
  growthBytesPerHour: number;
  bucket: BucketEvidence | undefined;
}

/** Health of an open suspect, from the detector: how long since it grew, how far it fell back. */
export type HealthOf = (slot: number, now: number) => { quietHours: number; fallback: number } | undefined;

/**
 * Turns per-window findings into suspect events: `open` on first confirmed evidence, `update`
 * when severity or pattern changes materially (rate-limited), `resolved` when the series stops
 * growing, gives its memory back, or ends (restart, host gone). A resolved target cannot open
 * again for a while, so a noisy target does not flap.
 */
export class SuspectLifecycle {
  readonly config: LifecycleConfig;
  private readonly tracked = new Map<number, Tracked>();
  private readonly resolvedAt = new Map<string, number>();

  /** The length of one window, ms (the detector's hour). */
  private readonly hourMs: number;

  constructor(config: LifecycleConfigInput = {}, windowMs = 3_600_000) {
    this.config = LifecycleConfig.parse(config);
    this.hourMs = windowMs;
  }

  get open(): number {
    return this.tracked.size;
  }

  /**
   * Applies one window's findings. `ended` are series that ended at this window; `setSuspected`
   * tells the detector which series are open; `bucketFor` gives component-level evidence.
   */
  step(
    windowEnd: number,
    findings: readonly Finding[],
    ended: readonly number[],
    health: HealthOf,
    setSuspected: (slot: number, on: boolean, start?: number) => void,
    bucketFor: (f: Finding) => BucketEvidence | undefined = () => undefined,
  ): SuspectEvent[] {
    const cfg = this.config;
    const events: SuspectEvent[] = [];
    for (const f of findings) {
      const t = this.tracked.get(f.slot);
      if (t === undefined) {
        if (!f.flagged) continue;
        const id = suspectId(f.info);
        const resolved = this.resolvedAt.get(id);
        if (resolved !== undefined && f.at - resolved < cfg.reopenAfterHours * this.hourMs) continue;
        const nt: Tracked = {
          id,
          info: f.info,
          start: f.start,
          lastReport: f.at,
          severity: f.severity,
          pattern: f.pattern,
          growthBytesPerHour: f.growthBytesPerHour,
          bucket: bucketFor(f),
        };
        this.tracked.set(f.slot, nt);
        setSuspected(f.slot, true, f.start);
        events.push(toEvent(nt, "open", f.at));
        continue;
      }
      const h = health(f.slot, f.at);
      if (
        h !== undefined &&
        (h.quietHours >= cfg.quietHoursToResolve || h.fallback >= cfg.fallbackToResolve)
      ) {
        events.push(this.resolve(f.slot, t, f.at, setSuspected));
        continue;
      }
      const changed =
        f.pattern !== t.pattern ||
        Math.abs(f.severity - t.severity) >= cfg.severityChange * Math.max(t.severity, 1e-9);
      if (changed && f.at - t.lastReport >= cfg.updateEveryHours * this.hourMs) {
        t.severity = f.severity;
        t.pattern = f.pattern;
        t.growthBytesPerHour = f.growthBytesPerHour;
        t.lastReport = f.at;
        t.bucket = bucketFor(f) ?? t.bucket;
        events.push(toEvent(t, "update", f.at));
      }
    }
    const reported = new Set(findings.map((f) => f.slot));
    for (const slot of ended) {
      const t = this.tracked.get(slot);
      if (t !== undefined) events.push(this.resolve(slot, t, windowEnd, setSuspected));
    }
    // Tracked suspects with no finding this window (no sample) are checked for quiet time too.
    for (const [slot, t] of this.tracked) {
      if (reported.has(slot)) continue;
      const h = health(slot, windowEnd);
      if (h === undefined || h.quietHours >= cfg.quietHoursToResolve)
        events.push(this.resolve(slot, t, windowEnd, setSuspected));
    }
    events.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return events;
  }

  /** Resolves everything still open (end of a bounded input is NOT a resolution: kept open). */
  private resolve(
    slot: number,
    t: Tracked,
    at: number,
    setSuspected: (slot: number, on: boolean, start?: number) => void,
  ): SuspectEvent {
    this.tracked.delete(slot);
    this.resolvedAt.set(t.id, at);
    setSuspected(slot, false);
    return toEvent(t, "resolved", at);
  }
}

export function suspectId(info: SeriesInfo): string {
  return `${info.component}/${info.host}/${info.name}/${info.pid}`;
}

function toEvent(t: Tracked, state: SuspectState, at: number): SuspectEvent {
  const ev: SuspectEvent = {
    v: 1,
    id: t.id,
    state,
    kind: t.info.component === KERNEL_COMPONENT ? "kernel" : "process",
    component: t.info.component,
    host: t.info.host,
    process: t.info.name,
    pid: t.info.pid,
    start: t.start,
    end: at,
    detectedAt: at,
    severity: t.severity,
    pattern: t.pattern,
    growthBytesPerHour: t.growthBytesPerHour,
  };
  if (t.bucket !== undefined) ev.bucket = t.bucket;
  return ev;
}
