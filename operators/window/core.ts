import { assignFields, type Fields, fieldsOf } from "../../lib/state.ts";
import type { Telemetry } from "../../schemas/telemetry.ts";
import { WindowConfig, type WindowConfigInput } from "./config.ts";

/** Identity of one process series (CONTRACT §1: host, component, name, pid, startedAt). */
export interface SeriesInfo {
  slot: number;
  host: string;
  component: string;
  name: string;
  pid: number;
  startedAt: number | undefined;
  /** Earliest event time seen for this series. */
  firstTs: number;
  /** Slot of the (host, component) stream it belongs to. */
  stream: number;
  /**
   * Slot of the live series this one replaces: same stream and name, started earlier (a restart).
   * Lets the detector keep the host's history across restarts.
   */
  predecessor: number | undefined;
}

/** What a host said about itself in its latest sample of a window. */
export interface StreamSnapshot {
  stream: number;
  host: string;
  component: string;
  region: string;
  cluster: string;
  version: string;
  /** Median VM count over the window's samples. */
  vms: number | undefined;
  totalBytes: number | undefined;
  usedBytes: number | undefined;
}

/** One closed event-time window: a robust aggregate per process series that had samples in it. */
export interface ClosedWindow {
  start: number;
  end: number;
  /** Series first seen in this window, announced before their first point. */
  newSeries: SeriesInfo[];
  /** Per-point series slot, aggregate bytes (median of the window's samples) and sample count. */
  slots: number[];
  values: number[];
  counts: number[];
  /** Streams that reported in this window, with their latest attributes. */
  streams: StreamSnapshot[];
  /** Series ended at this window's close: idle for too long. Their slots may be reused later. */
  ended: number[];
}

export interface WindowStats {
  accepted: number;
  duplicates: number;
  late: number;
  samples: number;
}

interface Stream {
  slot: number;
  host: string;
  component: string;
  /** Series slots of this stream's live processes; looked up by a short scan (few per stream). */
  slots: number[];
  /** Identity key → slot, built only for streams with many processes (kernel pools). */
  index: Map<string, number> | undefined;
  /** The last few sample timestamps, to drop duplicates. */
  /** Next write position in this stream's row of `recentTs`. */
  recentPos: number;
}

interface OpenWindow {
  start: number;
  values: Map<number, number[]>;
  /** Per stream: its latest sample's attributes within this window, and that sample's ts. */
  streams: Map<number, { ts: number; snapshot: StreamSnapshot; vms: number[] }>;
}

const DEDUP_DEPTH = 8;
/** Streams with more live processes than this get a hash index. */
const INDEX_AFTER = 24;

function identityKey(name: string, pid: number, startedAt: number | undefined): string {
  return `${name}\u0001${pid}\u0001${startedAt ?? ""}`;
}

/**
 * Pure, synchronous core of the event-time windowing: feed messages in arrival order with
 * `push`, collect closed windows from its return value, and `flush` at end of input.
 * A window closes when the watermark (newest event time − allowed lateness) passes its end;
 * samples for closed windows are late (counted, dropped); repeated (host, component, ts)
 * samples are duplicates (counted, dropped). The output depends only on the set of messages
 * as long as none is later than the allowed lateness.
 */
export class WindowCore {
  readonly config: WindowConfig;
  readonly stats: WindowStats = { accepted: 0, duplicates: 0, late: 0, samples: 0 };
  private readonly streams = new Map<string, Stream>();
  private readonly streamList: Stream[] = [];
  /** The last DEDUP_DEPTH sample timestamps of every stream, one row per stream (NaN = empty). */
  private recentTs = new Float64Array(0);
  private readonly series: (SeriesInfo | undefined)[] = [];
  /** Start of the last closed window in which each series had a point. */
  private readonly lastWindow: number[] = [];
  private readonly announced: boolean[] = [];
  private readonly freeSlots: number[] = [];
  private readonly open = new Map<number, OpenWindow>();
  private maxTs = Number.NEGATIVE_INFINITY;
  /** Every window ending at or before this is closed. */
  private closedUpTo = Number.NEGATIVE_INFINITY;
  private liveSeries = 0;

  constructor(config: WindowConfigInput = {}) {
    this.config = WindowConfig.parse(config);
  }

  get trackedSeries(): number {
    return this.liveSeries;
  }

  /**
   * The series in a slot now. The core may be ahead of the windows it has emitted (a batch is
   * read before its windows are passed on), so consumers of closed windows should resolve
   * slots from the windows' own `newSeries`/`ended` (see `announcedSeries`).
   */
  seriesInfo(slot: number): SeriesInfo | undefined {
    return this.series[slot];
  }

  /** Series announced in an emitted window and not ended since: what window consumers know. */
  announcedSeries(): SeriesInfo[] {
    const out: SeriesInfo[] = [];
    for (let slot = 0; slot < this.series.length; slot++) {
      const info = this.series[slot];
      if (info !== undefined && this.announced[slot]) out.push(info);
    }
    return out;
  }

  /** Everything this core knows, as plain data for a checkpoint (see lib/state.ts). */
  captureState(): Fields {
    return fieldsOf(this, ["config"]);
  }

  /** Restores `captureState()` output into a fresh core made with the same configuration. */
  restoreState(fields: Fields): void {
    assignFields(this, fields, ["config"]);
  }

  /** Accepts one message; returns the windows this message's event time closed (often none). */
  push(msg: Telemetry, out: ClosedWindow[] = []): ClosedWindow[] {
    const ts = msg.ts;
    const { windowMs } = this.config;
    const start = ts - (ts % windowMs);
    if (start + windowMs <= this.closedUpTo) {
      this.stats.late++;
      return out;
    }
    const stream = this.streamOf(msg);
    if (this.isRecent(stream.slot, ts)) {
      this.stats.duplicates++;
      return out;
    }
    this.recentTs[stream.slot * DEDUP_DEPTH + stream.recentPos] = ts;
    stream.recentPos = (stream.recentPos + 1) % DEDUP_DEPTH;
    this.stats.accepted++;

    let win = this.open.get(start);
    if (win === undefined) {
      win = { start, values: new Map(), streams: new Map() };
      this.open.set(start, win);
    }
    const latest = win.streams.get(stream.slot);
    if (latest === undefined) {
      win.streams.set(stream.slot, {
        ts,
        snapshot: snapshotOf(stream, msg),
        vms: msg.vms === undefined ? [] : [msg.vms],
      });
    } else {
      if (msg.vms !== undefined) latest.vms.push(msg.vms);
      if (ts > latest.ts) {
        latest.ts = ts;
        latest.snapshot = snapshotOf(stream, msg);
      }
    }

    const procs = msg.processes;
    for (let i = 0; i < procs.length; i++) {
      const p = procs[i]!;
      let slot = this.findSeries(stream, p.name, p.pid, p.startedAt);
      if (slot < 0) slot = this.newSeries(stream, p.name, p.pid, p.startedAt, ts);
      else if (ts < this.series[slot]!.firstTs) this.series[slot]!.firstTs = ts;
      const vals = win.values.get(slot);
      if (vals === undefined) win.values.set(slot, [p.bytes]);
      else vals.push(p.bytes);
      this.stats.samples++;
    }

    if (ts > this.maxTs) {
      this.maxTs = ts;
      this.closeUpTo(ts - this.config.allowedLatenessMs, out);
    }
    return out;
  }

  /** Closes every open window (end of input). */
  flush(out: ClosedWindow[] = []): ClosedWindow[] {
    this.closeUpTo(Number.POSITIVE_INFINITY, out);
    return out;
  }

  private closeUpTo(watermark: number, out: ClosedWindow[]): void {
    const { windowMs } = this.config;
    if (this.open.size === 0) return;
    const due: number[] = [];
    for (const start of this.open.keys()) if (start + windowMs <= watermark) due.push(start);
    if (due.length === 0) return;
    due.sort((a, b) => a - b);
    for (const start of due) {
      const win = this.open.get(start)!;
      this.open.delete(start);
      this.closedUpTo = Math.max(this.closedUpTo, start + windowMs);
      out.push(this.emit(win));
    }
  }

  private emit(win: OpenWindow): ClosedWindow {
    const slotsSorted = [...win.values.keys()].sort((a, b) => a - b);
    const slots: number[] = new Array(slotsSorted.length);
    const values: number[] = new Array(slotsSorted.length);
    const counts: number[] = new Array(slotsSorted.length);
    const newSeries: SeriesInfo[] = [];
    for (let i = 0; i < slotsSorted.length; i++) {
      const slot = slotsSorted[i]!;
      const vals = win.values.get(slot)!;
      slots[i] = slot;
      values[i] = robustCenter(vals);
      counts[i] = vals.length;
      this.lastWindow[slot] = win.start;
      if (!this.announced[slot]) {
        this.announced[slot] = true;
        newSeries.push(this.series[slot]!);
      }
    }
    const streams: StreamSnapshot[] = [];
    for (const s of [...win.streams.keys()].sort((a, b) => a - b)) {
      const entry = win.streams.get(s)!;
      // The VM count like the memory: the window's median, so a change mid-window lands in the
      // same window for both.
      if (entry.vms.length > 0) entry.snapshot.vms = robustCenter(entry.vms);
      streams.push(entry.snapshot);
    }
    // A series with no point in the closed windows of the last idleEndMs is over. Decided from
    // closed windows only, so the arrival order of samples does not change the outcome.
    const ended: number[] = [];
    const horizon = win.start + this.config.windowMs - this.config.idleEndMs;
    for (let slot = 0; slot < this.series.length; slot++) {
      const info = this.series[slot];
      if (info === undefined || !this.announced[slot]) continue;
      if (this.lastWindow[slot]! + this.config.windowMs > horizon) continue;
      if (this.hasOpenSamples(slot)) continue;
      ended.push(slot);
      this.endSeries(info);
    }
    return {
      start: win.start,
      end: win.start + this.config.windowMs,
      newSeries,
      slots,
      values,
      counts,
      streams,
      ended,
    };
  }

  private hasOpenSamples(slot: number): boolean {
    for (const win of this.open.values()) if (win.values.has(slot)) return true;
    return false;
  }

  private isRecent(stream: number, ts: number): boolean {
    const base = stream * DEDUP_DEPTH;
    for (let k = 0; k < DEDUP_DEPTH; k++) if (this.recentTs[base + k] === ts) return true;
    return false;
  }

  private findSeries(stream: Stream, name: string, pid: number, startedAt: number | undefined): number {
    if (stream.index !== undefined) return stream.index.get(identityKey(name, pid, startedAt)) ?? -1;
    const slots = stream.slots;
    for (let i = 0; i < slots.length; i++) {
      const info = this.series[slots[i]!]!;
      if (info.pid === pid && info.name === name && info.startedAt === startedAt) return slots[i]!;
    }
    return -1;
  }

  private endSeries(info: SeriesInfo): void {
    const stream = this.streamList[info.stream]!;
    const at = stream.slots.indexOf(info.slot);
    if (at >= 0) stream.slots.splice(at, 1);
    stream.index?.delete(identityKey(info.name, info.pid, info.startedAt));
    this.series[info.slot] = undefined;
    this.announced[info.slot] = false;
    this.freeSlots.push(info.slot);
    this.liveSeries--;
  }

  private newSeries(
    stream: Stream,
    name: string,
    pid: number,
    startedAt: number | undefined,
    ts: number,
  ): number {
    const slot = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.series.length;
    let predecessor: number | undefined;
    let predecessorStart = Number.NEGATIVE_INFINITY;
    const myStart = startedAt ?? ts;
    for (const other of stream.slots) {
      const o = this.series[other]!;
      const oStart = o.startedAt ?? o.firstTs;
      if (o.name === name && oStart < myStart && oStart > predecessorStart) {
        predecessor = other;
        predecessorStart = oStart;
      }
    }
    this.series[slot] = {
      slot,
      host: stream.host,
      component: stream.component,
      name,
      pid,
      startedAt,
      firstTs: ts,
      stream: stream.slot,
      predecessor,
    };
    stream.slots.push(slot);
    if (stream.index !== undefined) stream.index.set(identityKey(name, pid, startedAt), slot);
    else if (stream.slots.length > INDEX_AFTER) {
      stream.index = new Map();
      for (const s of stream.slots) {
        const si = this.series[s]!;
        stream.index.set(identityKey(si.name, si.pid, si.startedAt), s);
      }
    }
    this.lastWindow[slot] = Number.POSITIVE_INFINITY;
    this.announced[slot] = false;
    this.liveSeries++;
    return slot;
  }

  private streamOf(msg: Telemetry): Stream {
    const key = `${msg.host}\u0001${msg.component}`;
    let stream = this.streams.get(key);
    if (stream === undefined) {
      const slot = this.streamList.length;
      stream = {
        slot,
        host: msg.host,
        component: msg.component,
        slots: [],
        index: undefined,
        recentPos: 0,
      };
      this.streams.set(key, stream);
      this.streamList.push(stream);
      const rows = this.recentTs.length / DEDUP_DEPTH;
      if (slot >= rows) {
        const grown = new Float64Array(Math.max(64, Math.ceil(rows * 1.25) + 1) * DEDUP_DEPTH).fill(
          Number.NaN,
        );
        grown.set(this.recentTs);
        this.recentTs = grown;
      }
    }
    return stream;
  }
}

function snapshotOf(stream: Stream, msg: Telemetry): StreamSnapshot {
  const attrs = msg.attrs;
  return {
    stream: stream.slot,
    host: stream.host,
    component: stream.component,
    region: attrs?.region ?? "",
    cluster: attrs?.cluster ?? "",
    version: attrs?.version ?? "",
    vms: msg.vms,
    totalBytes: msg.hostMemory?.totalBytes,
    usedBytes: msg.hostMemory?.usedBytes,
  };
}

/** Median (mean of the middle two for even counts): robust to bursts and outliers within a window. */
export function robustCenter(values: number[]): number {
  const n = values.length;
  if (n === 1) return values[0]!;
  if (n === 2) return (values[0]! + values[1]!) / 2;
  values.sort((a, b) => a - b);
  const mid = n >> 1;
  return n % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}
