import { assignFields, type Fields, fieldsOf } from "../../lib/state.ts";
import { sortNumbers } from "../../lib/stats.ts";
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
  /**
   * For series whose host's VM count changed within the window (few): slot → the center of only
   * the samples taken at the window's VM count. The center of all samples sits between the
   * levels before and after the change, and the part of the change it misses lands in the next
   * window, where the VM count no longer moves; for memory that follows the VM count, this value
   * puts the whole step in the window where the VM count moved.
   */
  atVms?: Map<number, number>;
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
  /**
   * This stream's live processes, oldest first, as a list threaded through `nextInStream` (−1
   * ends it): looked up by a short scan (few per stream), and no array per stream to keep.
   */
  first: number;
  last: number;
  /** Number of slots in the list. */
  size: number;
  /** Identity key → slot, built only for streams with many processes (kernel pools). */
  index: Map<string, number> | undefined;
  /** Next write position in this stream's row of `recentTs` (its last few sample timestamps, to drop duplicates). */
  recentPos: number;
  /** The host's next stream (see `WindowCore.streams`). */
  nextOfHost: Stream | undefined;
}

interface OpenWindow {
  start: number;
  values: Map<number, number[]>;
  /** Per stream: its latest sample's attributes within this window, and that sample's ts. */
  streams: Map<number, StreamEntry>;
}

/** One stream's samples in one open window. */
interface StreamEntry {
  ts: number;
  snapshot: StreamSnapshot;
  vms: number[];
  /**
   * Only once the VM count changed within the window: per series slot, the VM count of each of
   * its values (in the order of `OpenWindow.values`; NaN when the sample had none).
   */
  vmsOf: Map<number, number[]> | undefined;
}

const DEDUP_DEPTH = 8;
/** Distinct process names kept for sharing (see `WindowCore.names`). */
const MAX_SHARED_NAMES = 65_536;
/** Fields of the core that are configuration or a cache, not checkpointed state. */
const NOT_STATE = ["config", "names"];
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
  /**
   * host → its first stream, the others chained through `nextOfHost`: a host has a few streams,
   * found by a short scan; no key string to build and hash per message, and no Map per host.
   */
  private readonly streams = new Map<string, Stream>();
  private readonly streamList: Stream[] = [];
  /** The last DEDUP_DEPTH sample timestamps of every stream, one row per stream (NaN = empty). */
  private recentTs = new Float64Array(0);
  private readonly series: (SeriesInfo | undefined)[] = [];
  /** Per series slot, in typed arrays (a few bytes per series, not a tagged value each; see `growSlots`). */
  private slotCapacity = 0;
  /** Start of the last closed window in which each series had a point. */
  private lastWindow = new Float64Array(0);
  /** 1 once the series was announced in an emitted window's `newSeries`. */
  private announced = new Uint8Array(0);
  /** Next slot of the same stream (see `Stream.first`), −1 at the end. */
  private nextInStream = new Int32Array(0);
  private readonly freeSlots: number[] = [];
  private readonly open = new Map<number, OpenWindow>();
  private maxTs = Number.NEGATIVE_INFINITY;
  /** Every window ending at or before this is closed. */
  private closedUpTo = Number.NEGATIVE_INFINITY;
  private liveSeries = 0;
  /**
   * One string per process name for all series: JSON.parse gives every message its own copy of
   * names longer than 10 characters, and a series would otherwise keep the copy of its first
   * sample (~32 B per series). A cache, not state: cleared when it grows large (pid-bearing
   * names), which only costs sharing.
   */
  private readonly names = new Map<string, string>();

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
      if (info !== undefined && this.announced[slot] === 1) out.push(info);
    }
    return out;
  }

  /** Everything this core knows, as plain data for a checkpoint (see lib/state.ts). */
  captureState(): Fields {
    return fieldsOf(this, NOT_STATE);
  }

  /** Restores `captureState()` output into a fresh core made with the same configuration. */
  restoreState(fields: Fields): void {
    assignFields(this, fields, NOT_STATE);
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
    let latest = win.streams.get(stream.slot);
    if (latest === undefined) {
      latest = {
        ts,
        snapshot: snapshotOf(stream, msg),
        vms: msg.vms === undefined ? [] : [msg.vms],
        vmsOf: undefined,
      };
      win.streams.set(stream.slot, latest);
    } else {
      if (msg.vms !== undefined) {
        if (latest.vmsOf === undefined && latest.vms.length > 0 && msg.vms !== latest.vms[0])
          latest.vmsOf = this.tagVms(win, stream, latest.vms[0]!);
        latest.vms.push(msg.vms);
      }
      if (ts > latest.ts) {
        latest.ts = ts;
        // In place: the window is still open, nothing else holds its snapshot yet (a new object
        // per message was ~100 MB of garbage per 1M messages).
        updateSnapshot(latest.snapshot, msg);
      }
    }

    const procs = msg.processes;
    // A host lists its processes in the same order in every sample, the order in which the
    // stream's list has them: try the slot after the previous process's first. Only a guess:
    // when it is not the process, the full lookup runs.
    let guess = stream.first;
    for (let i = 0; i < procs.length; i++) {
      const p = procs[i]!;
      let slot = guess >= 0 && this.isSeries(guess, p.name, p.pid, p.startedAt) ? guess : -1;
      if (slot < 0) slot = this.findSeries(stream, p.name, p.pid, p.startedAt);
      if (slot < 0) slot = this.newSeries(stream, p.name, p.pid, p.startedAt, ts);
      else if (ts < this.series[slot]!.firstTs) this.series[slot]!.firstTs = ts;
      guess = this.nextInStream[slot]!;
      const vals = win.values.get(slot);
      if (vals === undefined) win.values.set(slot, [p.bytes]);
      else vals.push(p.bytes);
      if (latest.vmsOf !== undefined) {
        const tags = latest.vmsOf.get(slot);
        if (tags === undefined) latest.vmsOf.set(slot, [msg.vms ?? Number.NaN]);
        else tags.push(msg.vms ?? Number.NaN);
      }
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
    let atVms: Map<number, number> | undefined;
    // The VM count like the memory: the window's median, so a change mid-window lands in the
    // same window for both.
    for (const entry of win.streams.values())
      if (entry.vms.length > 0) entry.snapshot.vms = robustCenter(entry.vms);
    for (let i = 0; i < slotsSorted.length; i++) {
      const slot = slotsSorted[i]!;
      const vals = win.values.get(slot)!;
      slots[i] = slot;
      const entry = win.streams.get(this.series[slot]!.stream)!;
      if (entry.vmsOf !== undefined) {
        const at = centerAtVms(vals, entry.vmsOf.get(slot)!, entry.snapshot.vms);
        if (at !== undefined) {
          atVms ??= new Map();
          atVms.set(slot, at);
        }
      }
      values[i] = robustCenter(vals);
      counts[i] = vals.length;
      this.lastWindow[slot] = win.start;
      if (this.announced[slot] === 0) {
        this.announced[slot] = 1;
        newSeries.push(this.series[slot]!);
      }
    }
    const streams: StreamSnapshot[] = [];
    for (const s of [...win.streams.keys()].sort((a, b) => a - b)) {
      streams.push(win.streams.get(s)!.snapshot);
    }
    // A series with no point in the closed windows of the last idleEndMs is over. Decided from
    // closed windows only, so the arrival order of samples does not change the outcome.
    const ended: number[] = [];
    const horizon = win.start + this.config.windowMs - this.config.idleEndMs;
    for (let slot = 0; slot < this.series.length; slot++) {
      const info = this.series[slot];
      if (info === undefined || this.announced[slot] === 0) continue;
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
      ...(atVms === undefined ? {} : { atVms }),
    };
  }

  /**
   * The VM count of a stream changed within a window: from now on each value records the VM
   * count of its sample, and every value so far had the window's first count.
   */
  private tagVms(win: OpenWindow, stream: Stream, first: number): Map<number, number[]> {
    const tags = new Map<number, number[]>();
    for (let slot = stream.first; slot >= 0; slot = this.nextInStream[slot]!) {
      const vals = win.values.get(slot);
      if (vals !== undefined) tags.set(slot, new Array<number>(vals.length).fill(first));
    }
    return tags;
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
    for (let slot = stream.first; slot >= 0; slot = this.nextInStream[slot]!)
      if (this.isSeries(slot, name, pid, startedAt)) return slot;
    return -1;
  }

  /** Whether the live series in `slot` has this identity. */
  private isSeries(slot: number, name: string, pid: number, startedAt: number | undefined): boolean {
    const info = this.series[slot]!;
    return info.pid === pid && info.name === name && info.startedAt === startedAt;
  }

  private endSeries(info: SeriesInfo): void {
    const stream = this.streamList[info.stream]!;
    this.unlink(stream, info.slot);
    stream.index?.delete(identityKey(info.name, info.pid, info.startedAt));
    this.series[info.slot] = undefined;
    this.announced[info.slot] = 0;
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
    if (slot >= this.slotCapacity) this.growSlots(slot + 1);
    let predecessor: number | undefined;
    let predecessorStart = Number.NEGATIVE_INFINITY;
    const myStart = startedAt ?? ts;
    for (let other = stream.first; other >= 0; other = this.nextInStream[other]!) {
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
      name: this.shared(name),
      pid,
      startedAt,
      firstTs: ts,
      stream: stream.slot,
      predecessor,
    };
    this.append(stream, slot);
    if (stream.index !== undefined) stream.index.set(identityKey(name, pid, startedAt), slot);
    else if (stream.size > INDEX_AFTER) {
      stream.index = new Map();
      for (let s = stream.first; s >= 0; s = this.nextInStream[s]!) {
        const si = this.series[s]!;
        stream.index.set(identityKey(si.name, si.pid, si.startedAt), s);
      }
    }
    this.lastWindow[slot] = Number.POSITIVE_INFINITY;
    this.announced[slot] = 0;
    this.liveSeries++;
    return slot;
  }

  private shared(name: string): string {
    const known = this.names.get(name);
    if (known !== undefined) return known;
    if (this.names.size >= MAX_SHARED_NAMES) this.names.clear();
    this.names.set(name, name);
    return name;
  }

  /** Appends `slot` to the stream's list of live series. */
  private append(stream: Stream, slot: number): void {
    this.nextInStream[slot] = -1;
    if (stream.last < 0) stream.first = slot;
    else this.nextInStream[stream.last] = slot;
    stream.last = slot;
    stream.size++;
  }

  /** Removes `slot` from the stream's list, keeping the others in order. */
  private unlink(stream: Stream, slot: number): void {
    let prev = -1;
    for (let s = stream.first; s >= 0; prev = s, s = this.nextInStream[s]!) {
      if (s !== slot) continue;
      const next = this.nextInStream[s]!;
      if (prev < 0) stream.first = next;
      else this.nextInStream[prev] = next;
      if (stream.last === slot) stream.last = prev;
      stream.size--;
      return;
    }
  }

  /** Makes room for series slots below `needed` in the per-slot typed arrays. */
  private growSlots(needed: number): void {
    const capacity = Math.max(needed, 1024, Math.ceil(this.slotCapacity * 1.25));
    const lastWindow = new Float64Array(capacity);
    lastWindow.set(this.lastWindow);
    this.lastWindow = lastWindow;
    const announced = new Uint8Array(capacity);
    announced.set(this.announced);
    this.announced = announced;
    const next = new Int32Array(capacity);
    next.set(this.nextInStream);
    this.nextInStream = next;
    this.slotCapacity = capacity;
  }

  private streamOf(msg: Telemetry): Stream {
    const first = this.streams.get(msg.host);
    let stream = first;
    while (stream !== undefined && stream.component !== msg.component) stream = stream.nextOfHost;
    if (stream === undefined) {
      const slot = this.streamList.length;
      stream = {
        slot,
        host: msg.host,
        component: msg.component,
        first: -1,
        last: -1,
        size: 0,
        index: undefined,
        recentPos: 0,
        nextOfHost: first,
      };
      this.streams.set(msg.host, stream);
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

/** Makes `snapshot` what `snapshotOf` would give for `msg` (same stream). */
function updateSnapshot(snapshot: StreamSnapshot, msg: Telemetry): void {
  const attrs = msg.attrs;
  snapshot.region = attrs?.region ?? "";
  snapshot.cluster = attrs?.cluster ?? "";
  snapshot.version = attrs?.version ?? "";
  snapshot.vms = msg.vms;
  snapshot.totalBytes = msg.hostMemory?.totalBytes;
  snapshot.usedBytes = msg.hostMemory?.usedBytes;
}

/** Median (mean of the middle two for even counts): robust to bursts and outliers within a window. */
/**
 * The center of the samples taken at the window's (median) VM count (see `ClosedWindow.atVms`);
 * undefined when none was (the median falls between two counts) or all were.
 */
function centerAtVms(values: number[], vms: number[], windowVms: number | undefined): number | undefined {
  const at: number[] = [];
  for (let k = 0; k < values.length; k++) if (vms[k] === windowVms) at.push(values[k]!);
  return at.length === 0 || at.length === values.length ? undefined : robustCenter(at);
}

export function robustCenter(values: number[]): number {
  const n = values.length;
  if (n === 1) return values[0]!;
  if (n === 2) return (values[0]! + values[1]!) / 2;
  // A window of 5-minute samples has 12.
  sortNumbers(values);
  const mid = n >> 1;
  return n % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}
