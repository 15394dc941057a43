/**
 * Pure functions from the pipeline's results to InfluxDB line protocol (precision ms), one
 * measurement each; see README.md for the reference. VictoriaMetrics keeps numeric fields only
 * (it names them `<measurement>_<field>`), so every piece of information is a tag or a number.
 * A value that is not finite is left out rather than written: a line must never throw.
 */
import { Point, type PointSettings } from "@influxdata/influxdb-client";
import type { SeriesInfo, StreamSnapshot } from "../../operators/window/core.ts";
import type { WindowResult } from "../../pipelines/detect.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import type { AuditRecord } from "../mitigation/audit.ts";
import type { ProcessSeries } from "./config.ts";

export const MEASUREMENT = {
  memory: "resin_memory",
  bucket: "resin_bucket",
  suspect: "resin_suspect",
  pipeline: "resin_pipeline",
  mitigation: "resin_mitigation",
} as const;

/** Timestamps are already epoch milliseconds: written as they are (the sink writes with precision ms). */
const MS: Partial<PointSettings> = {
  convertTime: (value) => (typeof value === "number" ? String(Math.round(value)) : undefined),
};

/**
 * A tag value as line protocol can carry it, or undefined to leave the tag out. Empty values
 * are not allowed; a trailing backslash would escape the separator after it, so it is cut.
 */
export function tagValue(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let end = value.length;
  while (end > 0 && value.charCodeAt(end - 1) === 92) end--;
  return end === 0 ? undefined : value.slice(0, end);
}

function tag(point: Point, name: string, value: string | undefined): void {
  const v = tagValue(value);
  if (v !== undefined) point.tag(name, v);
}

function intField(point: Point, name: string, value: number | undefined): void {
  if (value !== undefined && Number.isFinite(value)) point.intField(name, Math.round(value));
}

function floatField(point: Point, name: string, value: number | undefined): void {
  if (value !== undefined && Number.isFinite(value)) point.floatField(name, value);
}

function line(point: Point, time: number): string | undefined {
  return point.timestamp(time).toLineProtocol(MS);
}

export interface MemoryLineOptions {
  /** Which series to write (default "all"). */
  processSeries?: ProcessSeries;
  /** With "suspects": whether a series is a suspect's (no predicate: none is). */
  isSuspect?: (info: SeriesInfo) => boolean;
}

/**
 * `resin_memory`: one point per process series in the window, its hourly median (the
 * downsampling) and sample count, at the window's start. `seriesInfo` resolves a slot to the
 * series identity (the window announces a series only once, so the caller keeps the mapping);
 * region and cluster come from the window's stream snapshots. Slots without an identity are skipped.
 */
export function memoryLines(
  result: WindowResult,
  seriesInfo: (slot: number) => SeriesInfo | undefined,
  options: MemoryLineOptions = {},
  out: string[] = [],
): string[] {
  const mode = options.processSeries ?? "all";
  if (mode === "none") return out;
  const { window } = result;
  const streams = new Map<number, StreamSnapshot>();
  for (const s of window.streams) streams.set(s.stream, s);
  for (let i = 0; i < window.slots.length; i++) {
    const info = seriesInfo(window.slots[i]!);
    if (info === undefined) continue;
    if (mode === "suspects" && options.isSuspect?.(info) !== true) continue;
    const stream = streams.get(info.stream);
    const point = new Point(MEASUREMENT.memory);
    tag(point, "component", info.component);
    tag(point, "process", info.name);
    tag(point, "host", info.host);
    tag(point, "region", stream?.region);
    tag(point, "cluster", stream?.cluster);
    intField(point, "bytes", window.values[i]);
    intField(point, "samples", window.counts[i]);
    const text = line(point, window.start);
    if (text !== undefined) out.push(text);
  }
  return out;
}

/**
 * `resin_bucket`: every scored bucket of every component at the window's start: hosts at or
 * above the bucket, anomaly score, baseline mean, anomalous 0/1. Buckets that are empty and
 * were empty (0 hosts, baseline 0) are skipped.
 */
export function bucketLines(result: WindowResult, out: string[] = []): string[] {
  for (const s of result.scores) {
    if (s.hosts === 0 && s.baselineMean === 0) continue;
    const point = new Point(MEASUREMENT.bucket);
    tag(point, "component", s.component);
    tag(point, "process", s.process);
    tag(point, "lower_bytes", String(Math.round(s.lowerBytes)));
    intField(point, "hosts", s.hosts);
    floatField(point, "score", s.score);
    floatField(point, "baseline", s.baselineMean);
    intField(point, "anomalous", s.anomalous ? 1 : 0);
    const text = line(point, result.window.start);
    if (text !== undefined) out.push(text);
  }
  return out;
}

/** `resin_memory` and `resin_bucket` of one window (suspect events are written on their own). */
export function windowLines(
  result: WindowResult,
  seriesInfo: (slot: number) => SeriesInfo | undefined,
  options: MemoryLineOptions = {},
): string[] {
  return bucketLines(result, memoryLines(result, seriesInfo, options));
}

/** `resin_suspect`: one point per suspect event, at `detectedAt`. */
export function suspectLine(event: SuspectEvent): string | undefined {
  const point = new Point(MEASUREMENT.suspect);
  tag(point, "component", event.component);
  tag(point, "process", event.process);
  tag(point, "host", event.host);
  tag(point, "kind", event.kind);
  tag(point, "state", event.state);
  tag(point, "pattern", event.pattern);
  tag(point, "id", event.id);
  floatField(point, "severity", event.severity);
  intField(point, "growth_bytes_per_hour", event.growthBytesPerHour);
  intField(point, "start_ms", event.start);
  intField(point, "end_ms", event.end);
  intField(point, "pid", event.pid);
  intField(point, "open", event.state === "resolved" ? 0 : 1);
  if (event.bucket !== undefined) {
    intField(point, "bucket_lower_bytes", event.bucket.lowerBytes);
    intField(point, "bucket_hosts", event.bucket.hosts);
    floatField(point, "bucket_score", event.bucket.score);
  }
  return line(point, event.detectedAt);
}

export function suspectLines(events: readonly SuspectEvent[], out: string[] = []): string[] {
  for (const e of events) {
    const text = suspectLine(e);
    if (text !== undefined) out.push(text);
  }
  return out;
}

/** camelCase → snake_case, so `consumerLag` and `consumer_lag` name the same field. */
export function snakeCase(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
}

/**
 * `resin_pipeline`: the pipeline's own counters, one integer field per finite number given
 * (names in snake_case), at `timeMs` (wall clock). Undefined when no counter is finite.
 */
export function pipelineLine(
  counters: Readonly<Record<string, number>>,
  tags: { instance: string; partition: string },
  timeMs: number,
): string | undefined {
  const point = new Point(MEASUREMENT.pipeline);
  tag(point, "instance", tags.instance);
  tag(point, "partition", tags.partition);
  for (const [name, value] of Object.entries(counters))
    if (typeof value === "number") intField(point, snakeCase(name), value);
  return line(point, timeMs);
}

/**
 * `resin_mitigation`: one point per decision of the mitigation engine (sinks/mitigation/audit.ts),
 * at its event time. What and why as tags (the reason text stays in the NATS and file audit:
 * VictoriaMetrics keeps no strings); `decisions` = 1 so that counts are sums.
 */
export function mitigationLine(record: AuditRecord): string | undefined {
  const point = new Point(MEASUREMENT.mitigation);
  tag(point, "component", record.component);
  tag(point, "process", record.process);
  tag(point, "host", record.host);
  tag(point, "kind", record.kind);
  tag(point, "event", record.event);
  tag(point, "action", record.action);
  tag(point, "rule", record.rule);
  tag(point, "outcome", record.result?.outcome);
  tag(point, "code", record.result?.code);
  intField(point, "decisions", 1);
  intField(point, "seq", record.seq);
  intField(point, "rung", record.rung);
  intField(point, "dry_run", record.dryRun ? 1 : 0);
  intField(point, "leak_bytes", record.priority?.leakBytes);
  intField(point, "growth_bytes_per_hour", record.priority?.growthBytesPerHour);
  floatField(point, "free_share", record.priority?.freeShare);
  floatField(point, "hours_to_failure", record.priority?.hoursToFailure);
  return line(point, record.at);
}

/**
 * The process series of open suspects, followed from suspect events, for
 * `processSeries: "suspects"`: `observe` every event, then pass `has` as `isSuspect`.
 */
export class OpenSuspects {
  private readonly open = new Set<string>();

  private static key(component: string, host: string, process: string, pid: number): string {
    return `${component}\u0001${host}\u0001${process}\u0001${pid}`;
  }

  get size(): number {
    return this.open.size;
  }

  observe(event: SuspectEvent): void {
    const key = OpenSuspects.key(event.component, event.host, event.process, event.pid);
    if (event.state === "resolved") this.open.delete(key);
    else this.open.add(key);
  }

  /** The set's contents, for a checkpoint. */
  keys(): string[] {
    return [...this.open];
  }

  /** Puts back what `keys()` returned. */
  restore(keys: readonly string[]): void {
    for (const k of keys) this.open.add(k);
  }

  readonly has = (info: SeriesInfo): boolean =>
    this.open.has(OpenSuspects.key(info.component, info.host, info.name, info.pid));
}
