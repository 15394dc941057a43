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
   * Lets the detector keep the host's history across restarts. Undefined again once that series
   * ended and its slot was released (`releaseEnded`): the slot may then hold another series.
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

/** A stream's latest sample's attributes within a window, that sample's ts, and its VM counts. */
interface StreamEntry {
  ts: number;
  snapshot: StreamSnapshot;
  vms: number[];
  /**
   * −1 until the stream's VM count changes within the window; then the window's sample count
   * at that moment: the stream's samples before it were taken at `firstVms`, those from it on at
   * the count in `OpenWindow.sampleVms`.
   */
  changedAt: number;
  /** The count before the change (not `vms[0]`: `vms` is sorted in place when the window closes). */
  firstVms: number;
}

interface OpenWindow {
  start: number;
  /**
   * The window's process samples in arrival order, `n` of them: series slot and bytes, in
   * typed arrays grown by doubling (an array per series per window, found through a Map per
   * sample, was most of the windowing's time and garbage). Grouped by series when emitted.
   */
  sampleSlots: Int32Array;
  sampleBytes: Float64Array;
  /**
   * Once a stream's VM count changed within the window: the VM count of each sample from then
   * on (NaN when its message had none), for `ClosedWindow.atVms`.
   */
  sampleVms: Float64Array | undefined;
  n: number;
  /**
   * Per stream number, its entry in this window: an array with holes, not a Map (no hashing per
   * message, and already in stream order when emitted).
   */
  streams: (StreamEntry | undefined)[];
}

const DEDUP_DEPTH = 8;
/** Fields of the core that are configuration or a cache, not checkpointed state. */
const NOT_STATE = ["config", "hotWindow", "firstOpenEnd"];
/** `seriesStream` of a slot no series holds. */
const FREE = -1;
/** `lastWindow` of a series not announced yet, and of an ended one. */
const NOT_ANNOUNCED = 0xffff_ffff;
const ENDED = 0xffff_fffe;
/** `pid` of a series whose pid does not fit 32 bits: the pid is in `bigPids`. */
const BIG_PID = 0xffff_ffff;
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
   * found by a short scan; no key string to build per message, and no Map per host. An open
   * addressing hash table of stream numbers (−1: empty), at most three quarters full (about two
   * probes per lookup), keyed by the host of the stream (`streamHost`): 5–11 bytes per host,
   * where a Map<string, number> took ~46.
   */
  private hostTable = new Int32Array(64).fill(-1);
  private hostCount = 0;
  /**
   * Per stream (a host's component), by stream number, in columns like the series (an object
   * per stream was ~100 bytes more). Streams are never forgotten.
   */
  private streamCount = 0;
  private readonly streamHost: string[] = [];
  /** The stream's component, as an id in `componentList` (JSON.parse gives each message its own copy of longer names). */
  private streamComponent = new Int32Array(0);
  private readonly componentList: string[] = [];
  private readonly componentIds = new Map<string, number>();
  /**
   * The stream's first live series, oldest first, the others threaded through `nextInStream`
   * (−1 ends the list): looked up by a short scan (few per stream), no array per stream to keep.
   */
  private streamFirst = new Int32Array(0);
  /** The host's next stream (see `hostTable`), or −1. */
  private nextOfHost = new Int32Array(0);
  /** Identity key → slot, only for streams with many live series (kernel pools). */
  private readonly streamIndex = new Map<number, Map<string, number>>();
  /** The last DEDUP_DEPTH sample timestamps of every stream, one row per stream (NaN = empty). */
  private recentTs = new Float64Array(0);
  /** Next write position in each stream's row of `recentTs`. */
  private recentPos = new Uint8Array(0);
  /**
   * Per series slot, in typed arrays (see `growSlots`): a series' identity is 32 bytes of
   * columns, where a `SeriesInfo` object per series (with its two boxed numbers, and the window
   * core's and the detector's references to it) was ~144. `seriesInfo(slot)` builds the object
   * when asked.
   */
  private slotCapacity = 0;
  /** Number of slots ever used: every slot below it is live, ended or free. */
  private slotCount = 0;
  /** The series' stream (host and component; see `streamOf`), or FREE. */
  private seriesStream = new Int32Array(0);
  /** The series' process name, as an id in `nameList`. */
  private nameOf = new Int32Array(0);
  /** The series' pid, or BIG_PID (then the pid is in `bigPids`; no real system has such pids). */
  private pid = new Uint32Array(0);
  private readonly bigPids = new Map<number, number>();
  /** The process start time the series reported, or NaN when it reported none. */
  private startedAt = new Float64Array(0);
  /** Earliest event time seen for the series. */
  private firstTs = new Float64Array(0);
  /** Slot of the series this one replaced (see `SeriesInfo.predecessor`), or −1. */
  private predecessor = new Int32Array(0);
  /**
   * The last closed window in which each series had a point, as a count of windows after the
   * series' first (that of `firstTs`, fixed once announced): 4 bytes, where the window's start
   * took 8 (a series would need 4 billion windows of life to overflow it). NOT_ANNOUNCED until
   * the series was announced in an emitted window's `newSeries` (it gets its first point in that
   * window), ENDED once it ended (until its slot is released, and while free).
   */
  private lastWindow = new Uint32Array(0);
  /** Next slot of the same stream (see `streamFirst`), −1 at the end. */
  private nextInStream = new Int32Array(0);
  private readonly freeSlots: number[] = [];
  /**
   * Slots of series ended in emitted windows, not yet free: their windows' consumers may still
   * look them up (`seriesInfo`) until the windows are passed on (see `releaseEnded`).
   */
  private readonly endedSlots: number[] = [];
  private readonly open = new Map<number, OpenWindow>();
  /**
   * The open window of the latest message: nearly every message falls in it, and finding it
   * costs two comparisons, where the window start (a float modulo) and the Map lookup were a
   * fifth of `push`. A cache, dropped when it closes.
   */
  private hotWindow: OpenWindow | undefined;
  /** The earliest end of an open window (+Infinity: none): most messages close nothing. A cache. */
  private firstOpenEnd = Number.POSITIVE_INFINITY;
  private maxTs = Number.NEGATIVE_INFINITY;
  /** Every window ending at or before this is closed. */
  private closedUpTo = Number.NEGATIVE_INFINITY;
  private liveSeries = 0;
  /**
   * Process names, each once, with the number of series slots holding it (JSON.parse gives every
   * message its own copy of a name, and a slot refers to its name by id, 4 bytes). A name is
   * forgotten with its last series, so pid-bearing names do not pile up.
   */
  private readonly nameList: string[] = [];
  private readonly nameIds = new Map<string, number>();
  private readonly nameRefs: number[] = [];
  private readonly freeNames: number[] = [];

  constructor(config: WindowConfigInput = {}) {
    this.config = WindowConfig.parse(config);
  }

  get trackedSeries(): number {
    return this.liveSeries;
  }

  /**
   * The identity of the series in a slot, as a new object (not kept by the core: changing it
   * changes nothing), or undefined for a free slot. A slot ended by an emitted window keeps its
   * series until `releaseEnded()`: while the windows are passed on, every slot they mention
   * (points, `newSeries`, `ended`) resolves to the series they mean, although the core may
   * already have read further.
   */
  seriesInfo(slot: number): SeriesInfo | undefined {
    if (slot < 0 || slot >= this.slotCount) return undefined;
    const stream = this.seriesStream[slot]!;
    if (stream === FREE) return undefined;
    const startedAt = this.startedAt[slot]!;
    const predecessor = this.predecessor[slot]!;
    return {
      slot,
      host: this.streamHost[stream]!,
      component: this.componentList[this.streamComponent[stream]!]!,
      name: this.nameList[this.nameOf[slot]!]!,
      pid: this.pidOf(slot),
      startedAt: Number.isNaN(startedAt) ? undefined : startedAt,
      firstTs: this.firstTs[slot]!,
      stream,
      predecessor: predecessor < 0 ? undefined : predecessor,
    };
  }

  /**
   * Call once the windows emitted so far have been passed on (their consumers are done with
   * them): the slots of the series they ended become free for new series. Until then those
   * slots keep resolving (see `seriesInfo`); never calling it only costs slot reuse.
   */
  releaseEnded(): void {
    for (const slot of this.endedSlots) {
      // A successor read while this series was live names it as its predecessor; the slot is about
      // to go to another series, so the successor has none any more (its consumers may not have
      // seen it yet: the core reads ahead of the windows it closes).
      const stream = this.seriesStream[slot]!;
      for (let s = this.streamFirst[stream]!; s >= 0; s = this.nextInStream[s]!)
        if (this.predecessor[s] === slot) this.predecessor[s] = -1;
      this.seriesStream[slot] = FREE;
      this.bigPids.delete(slot);
      this.dropName(this.nameOf[slot]!);
      this.freeSlots.push(slot);
    }
    this.endedSlots.length = 0;
  }

  /** Everything this core knows, as plain data for a checkpoint (see lib/state.ts). */
  captureState(): Fields {
    return fieldsOf(this, NOT_STATE);
  }

  /** Restores `captureState()` output into a fresh core made with the same configuration. */
  restoreState(fields: Fields): void {
    assignFields(this, fields, NOT_STATE);
    this.firstOpenEnd = this.earliestOpenEnd();
  }

  /** Accepts one message; returns the windows this message's event time closed (often none). */
  push(msg: Telemetry, out: ClosedWindow[] = []): ClosedWindow[] {
    const ts = msg.ts;
    const { windowMs } = this.config;
    // The hot window is open, so not late.
    let win = this.hotWindow;
    let start = win?.start ?? 0;
    if (win === undefined || ts < start || ts >= start + windowMs) {
      win = undefined;
      start = ts - (ts % windowMs);
      if (start + windowMs <= this.closedUpTo) {
        this.stats.late++;
        return out;
      }
    }
    const stream = this.streamOf(msg);
    if (this.isRecent(stream, ts)) {
      this.stats.duplicates++;
      return out;
    }
    const pos = this.recentPos[stream]!;
    this.recentTs[stream * DEDUP_DEPTH + pos] = ts;
    this.recentPos[stream] = (pos + 1) % DEDUP_DEPTH;
    this.stats.accepted++;
    if (win === undefined) {
      win = this.open.get(start);
      if (win === undefined) {
        win = {
          start,
          sampleSlots: new Int32Array(1024),
          sampleBytes: new Float64Array(1024),
          sampleVms: undefined,
          n: 0,
          // Indexed by stream number, sized at once: filled by scattered indices from empty, V8
          // would turn it into a dictionary.
          streams: new Array(this.streamCount),
        };
        this.open.set(start, win);
        this.firstOpenEnd = Math.min(this.firstOpenEnd, start + windowMs);
      }
      this.hotWindow = win;
    }

    const latest = win.streams[stream];
    if (latest === undefined) {
      win.streams[stream] = {
        ts,
        snapshot: snapshotOf(
          stream,
          this.streamHost[stream]!,
          this.componentList[this.streamComponent[stream]!]!,
          msg,
        ),
        vms: msg.vms === undefined ? [] : [msg.vms],
        changedAt: -1,
        firstVms: 0,
      };
    } else {
      if (msg.vms !== undefined) {
        if (latest.changedAt < 0 && latest.vms.length > 0 && msg.vms !== latest.vms[0]) {
          latest.changedAt = win.n;
          latest.firstVms = latest.vms[0]!;
          win.sampleVms ??= new Float64Array(win.sampleSlots.length);
        }
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
    if (win.n + procs.length > win.sampleSlots.length) {
      const capacity = Math.max(2 * win.sampleSlots.length, win.n + procs.length);
      win.sampleSlots = grown(win.sampleSlots, new Int32Array(capacity));
      win.sampleBytes = grown(win.sampleBytes, new Float64Array(capacity));
      if (win.sampleVms !== undefined) win.sampleVms = grown(win.sampleVms, new Float64Array(capacity));
    }
    const sampleVms = win.sampleVms;
    const vmsNow = msg.vms ?? Number.NaN;
    // A host lists its processes in the same order in every sample, the order in which the
    // stream's list has them: try the slot after the previous process's first. Only a guess:
    // when it is not the process, the full lookup runs.
    let guess = this.streamFirst[stream]!;
    for (let i = 0; i < procs.length; i++) {
      const p = procs[i]!;
      let slot = guess >= 0 && this.isSeries(guess, p.name, p.pid, p.startedAt) ? guess : -1;
      if (slot < 0) slot = this.findSeries(stream, p.name, p.pid, p.startedAt);
      if (slot < 0) slot = this.newSeries(stream, p.name, p.pid, p.startedAt, ts);
      else if (ts < this.firstTs[slot]!) this.firstTs[slot] = ts;
      guess = this.nextInStream[slot]!;
      win.sampleSlots[win.n] = slot;
      if (sampleVms !== undefined) sampleVms[win.n] = vmsNow;
      win.sampleBytes[win.n++] = p.bytes;
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
    if (watermark < this.firstOpenEnd) return;
    const due: number[] = [];
    for (const start of this.open.keys()) if (start + windowMs <= watermark) due.push(start);
    if (due.length === 0) return;
    due.sort((a, b) => a - b);
    for (const start of due) {
      const win = this.open.get(start)!;
      this.open.delete(start);
      if (win === this.hotWindow) this.hotWindow = undefined;
      this.closedUpTo = Math.max(this.closedUpTo, start + windowMs);
      out.push(this.emit(win));
    }
    this.firstOpenEnd = this.earliestOpenEnd();
  }

  private earliestOpenEnd(): number {
    let end = Number.POSITIVE_INFINITY;
    for (const start of this.open.keys()) end = Math.min(end, start + this.config.windowMs);
    return end;
  }

  private emit(win: OpenWindow): ClosedWindow {
    // The samples grouped by series, in slot order (a counting sort): `at[slot]` counts a
    // series' samples, then becomes the write position of its group in `grouped`.
    const { sampleSlots, sampleBytes, n } = win;
    const at = new Int32Array(this.slotCount);
    const slotList: number[] = [];
    for (let k = 0; k < n; k++) if (at[sampleSlots[k]!]!++ === 0) slotList.push(sampleSlots[k]!);
    const slotsSorted = Int32Array.from(slotList).sort();
    const slots: number[] = new Array(slotsSorted.length);
    const values: number[] = new Array(slotsSorted.length);
    const counts: number[] = new Array(slotsSorted.length);
    let end = 0;
    for (let i = 0; i < slotsSorted.length; i++) {
      const slot = slotsSorted[i]!;
      counts[i] = at[slot]!;
      at[slot] = end;
      end += counts[i]!;
    }
    // The VM count like the memory: the window's median, so a change mid-window lands in the
    // same window for both.
    const streams: StreamSnapshot[] = [];
    for (const entry of win.streams) {
      if (entry === undefined) continue;
      if (entry.vms.length > 0) entry.snapshot.vms = robustCenter(entry.vms);
      streams.push(entry.snapshot);
    }
    const grouped = new Float64Array(n);
    // With a VM count change in the window: each sample's VM count, grouped the same way.
    const sampleVms = win.sampleVms;
    const groupedVms = sampleVms === undefined ? undefined : new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const slot = sampleSlots[k]!;
      const to = at[slot]!++;
      grouped[to] = sampleBytes[k]!;
      if (groupedVms !== undefined) {
        const entry = win.streams[this.seriesStream[slot]!]!;
        groupedVms[to] =
          entry.changedAt < 0 ? Number.NaN : k < entry.changedAt ? entry.firstVms : sampleVms![k]!;
      }
    }
    const newSeries: SeriesInfo[] = [];
    let atVms: Map<number, number> | undefined;
    for (let i = 0; i < slotsSorted.length; i++) {
      const slot = slotsSorted[i]!;
      slots[i] = slot;
      const from = at[slot]! - counts[i]!;
      const entry = groupedVms === undefined ? undefined : win.streams[this.seriesStream[slot]!]!;
      if (entry !== undefined && entry.changedAt >= 0) {
        const center = centerAtVms(grouped, groupedVms!, from, at[slot]!, entry.snapshot.vms);
        if (center !== undefined) {
          atVms ??= new Map();
          atVms.set(slot, center);
        }
      }
      values[i] = medianOf(grouped, from, at[slot]!);
      if (this.lastWindow[slot] === NOT_ANNOUNCED) newSeries.push(this.seriesInfo(slot)!);
      this.lastWindow[slot] = (win.start - this.firstWindowOf(slot)) / this.config.windowMs;
    }
    // A series with no point in the closed windows of the last idleEndMs is over. Decided from
    // closed windows only, so the arrival order of samples does not change the outcome.
    const idle: number[] = [];
    const horizon = win.start + this.config.windowMs - this.config.idleEndMs;
    for (let slot = 0; slot < this.slotCount; slot++) {
      const last = this.lastWindow[slot]!;
      // Not announced yet is not idle; an ended or free slot has nothing to end.
      if (last === NOT_ANNOUNCED || last === ENDED) continue;
      if (this.firstWindowOf(slot) + (last + 1) * this.config.windowMs > horizon) continue;
      idle.push(slot);
    }
    // Unless a later window, still open, has samples of it.
    const ended: number[] = [];
    if (idle.length > 0) {
      const pending = new Uint8Array(this.slotCount);
      for (const open of this.open.values())
        for (let k = 0; k < open.n; k++) pending[open.sampleSlots[k]!] = 1;
      for (const slot of idle) {
        if (pending[slot] === 1) continue;
        ended.push(slot);
        this.endSeries(slot);
      }
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

  private isRecent(stream: number, ts: number): boolean {
    const base = stream * DEDUP_DEPTH;
    for (let k = 0; k < DEDUP_DEPTH; k++) if (this.recentTs[base + k] === ts) return true;
    return false;
  }

  private findSeries(stream: number, name: string, pid: number, startedAt: number | undefined): number {
    const index = this.streamIndex.get(stream);
    if (index !== undefined) return index.get(identityKey(name, pid, startedAt)) ?? -1;
    for (let slot = this.streamFirst[stream]!; slot >= 0; slot = this.nextInStream[slot]!)
      if (this.isSeries(slot, name, pid, startedAt)) return slot;
    return -1;
  }

  /** Whether the live series in `slot` has this identity. */
  private isSeries(slot: number, name: string, pid: number, startedAt: number | undefined): boolean {
    const ownStart = this.startedAt[slot]!;
    return (
      this.pidOf(slot) === pid &&
      (startedAt === undefined ? Number.isNaN(ownStart) : ownStart === startedAt) &&
      this.nameList[this.nameOf[slot]!] === name
    );
  }

  /** `identityKey` of the series in `slot`. */
  private keyOf(slot: number): string {
    const startedAt = this.startedAt[slot]!;
    const name = this.nameList[this.nameOf[slot]!]!;
    return identityKey(name, this.pidOf(slot), Number.isNaN(startedAt) ? undefined : startedAt);
  }

  private pidOf(slot: number): number {
    const pid = this.pid[slot]!;
    return pid === BIG_PID ? this.bigPids.get(slot)! : pid;
  }

  /** Start of the window of the series' first sample. */
  private firstWindowOf(slot: number): number {
    const first = this.firstTs[slot]!;
    return first - (first % this.config.windowMs);
  }

  /** The start time a series is placed by among its stream's: its start, or its first sample. */
  private startOf(slot: number): number {
    const startedAt = this.startedAt[slot]!;
    return Number.isNaN(startedAt) ? this.firstTs[slot]! : startedAt;
  }

  /** Takes an ended series out of its stream; its slot is freed by `releaseEnded`. */
  private endSeries(slot: number): void {
    const stream = this.seriesStream[slot]!;
    this.unlink(stream, slot);
    this.streamIndex.get(stream)?.delete(this.keyOf(slot));
    this.lastWindow[slot] = ENDED;
    this.endedSlots.push(slot);
    this.liveSeries--;
  }

  private newSeries(
    stream: number,
    name: string,
    pid: number,
    startedAt: number | undefined,
    ts: number,
  ): number {
    const slot = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.slotCount++;
    if (slot >= this.slotCapacity) this.growSlots(slot + 1);
    const nameId = this.nameIdOf(name);
    let predecessor = -1;
    let predecessorStart = Number.NEGATIVE_INFINITY;
    const myStart = startedAt ?? ts;
    // One pass over the stream's list: the predecessor, the list's last slot and its length.
    let last = -1;
    let size = 0;
    for (let other = this.streamFirst[stream]!; other >= 0; other = this.nextInStream[other]!) {
      const oStart = this.startOf(other);
      if (this.nameOf[other] === nameId && oStart < myStart && oStart > predecessorStart) {
        predecessor = other;
        predecessorStart = oStart;
      }
      last = other;
      size++;
    }
    this.seriesStream[slot] = stream;
    this.nameOf[slot] = nameId;
    if (pid < BIG_PID) this.pid[slot] = pid;
    else {
      this.pid[slot] = BIG_PID;
      this.bigPids.set(slot, pid);
    }
    this.startedAt[slot] = startedAt ?? Number.NaN;
    this.firstTs[slot] = ts;
    this.predecessor[slot] = predecessor;
    // Appended to the stream's list.
    this.nextInStream[slot] = -1;
    if (last < 0) this.streamFirst[stream] = slot;
    else this.nextInStream[last] = slot;
    const index = this.streamIndex.get(stream);
    if (index !== undefined) index.set(identityKey(name, pid, startedAt), slot);
    else if (size + 1 > INDEX_AFTER) {
      const built = new Map<string, number>();
      for (let s = this.streamFirst[stream]!; s >= 0; s = this.nextInStream[s]!) built.set(this.keyOf(s), s);
      this.streamIndex.set(stream, built);
    }
    this.lastWindow[slot] = NOT_ANNOUNCED;
    this.liveSeries++;
    return slot;
  }

  /** The id of `name` in `nameList`, counting one more slot that holds it. */
  private nameIdOf(name: string): number {
    let id = this.nameIds.get(name);
    if (id === undefined) {
      id = this.freeNames.length > 0 ? this.freeNames.pop()! : this.nameList.length;
      this.nameList[id] = name;
      this.nameRefs[id] = 0;
      this.nameIds.set(name, id);
    }
    this.nameRefs[id]!++;
    return id;
  }

  /** One slot fewer holds name `id`; the last one forgets it. */
  private dropName(id: number): void {
    if (--this.nameRefs[id]! > 0) return;
    this.nameIds.delete(this.nameList[id]!);
    this.nameList[id] = "";
    this.freeNames.push(id);
  }

  /** Removes `slot` from the stream's list, keeping the others in order. */
  private unlink(stream: number, slot: number): void {
    let prev = -1;
    for (let s = this.streamFirst[stream]!; s >= 0; prev = s, s = this.nextInStream[s]!) {
      if (s !== slot) continue;
      const next = this.nextInStream[s]!;
      if (prev < 0) this.streamFirst[stream] = next;
      else this.nextInStream[prev] = next;
      return;
    }
  }

  /** Makes room for series slots below `needed` in the per-slot typed arrays. */
  private growSlots(needed: number): void {
    const capacity = Math.max(needed, 1024, Math.ceil(this.slotCapacity * 1.25));
    this.seriesStream = grown(this.seriesStream, new Int32Array(capacity));
    this.nameOf = grown(this.nameOf, new Int32Array(capacity));
    this.pid = grown(this.pid, new Uint32Array(capacity));
    this.startedAt = grown(this.startedAt, new Float64Array(capacity));
    this.firstTs = grown(this.firstTs, new Float64Array(capacity));
    this.predecessor = grown(this.predecessor, new Int32Array(capacity));
    this.lastWindow = grown(this.lastWindow, new Uint32Array(capacity));
    this.nextInStream = grown(this.nextInStream, new Int32Array(capacity));
    this.slotCapacity = capacity;
  }

  /** The stream (number) of the message's host and component, made on first sight. */
  private streamOf(msg: Telemetry): number {
    const at = this.hostAt(msg.host);
    const first = this.hostTable[at]!;
    let stream = first;
    while (stream >= 0 && this.componentList[this.streamComponent[stream]!] !== msg.component)
      stream = this.nextOfHost[stream]!;
    if (stream >= 0) return stream;
    stream = this.streamCount++;
    if (stream >= this.streamFirst.length) this.growStreams(stream + 1);
    this.streamHost[stream] = msg.host;
    let component = this.componentIds.get(msg.component);
    if (component === undefined) {
      component = this.componentList.length;
      this.componentList.push(msg.component);
      this.componentIds.set(msg.component, component);
    }
    this.streamComponent[stream] = component;
    this.streamFirst[stream] = -1;
    this.nextOfHost[stream] = first;
    this.hostTable[at] = stream;
    if (first < 0 && ++this.hostCount * 4 > this.hostTable.length * 3) this.growHosts();
    return stream;
  }

  /** The position of `host` in `hostTable`, or of the empty entry where it would go. */
  private hostAt(host: string): number {
    const table = this.hostTable;
    const mask = table.length - 1;
    for (let i = hashOf(host) & mask; ; i = (i + 1) & mask) {
      const stream = table[i]!;
      if (stream < 0 || this.streamHost[stream] === host) return i;
    }
  }

  /** Doubles `hostTable`, placing every host again. */
  private growHosts(): void {
    const old = this.hostTable;
    this.hostTable = new Int32Array(old.length * 2).fill(-1);
    for (const stream of old) if (stream >= 0) this.hostTable[this.hostAt(this.streamHost[stream]!)] = stream;
  }

  /** Makes room for streams below `needed` in the per-stream typed arrays. */
  private growStreams(needed: number): void {
    const capacity = Math.max(needed, 64, Math.ceil(this.streamFirst.length * 1.25));
    this.streamComponent = grown(this.streamComponent, new Int32Array(capacity));
    this.streamFirst = grown(this.streamFirst, new Int32Array(capacity));
    this.nextOfHost = grown(this.nextOfHost, new Int32Array(capacity));
    this.recentPos = grown(this.recentPos, new Uint8Array(capacity));
    this.recentTs = grown(this.recentTs, new Float64Array(capacity * DEDUP_DEPTH).fill(Number.NaN));
  }
}

/** FNV-1a over the UTF-16 code units: host names that differ in a digit or two spread well. */
function hashOf(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** `to` with `from` copied to its start. */
function grown<T extends Float64Array | Int32Array | Uint32Array | Uint8Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

function snapshotOf(stream: number, host: string, component: string, msg: Telemetry): StreamSnapshot {
  const attrs = msg.attrs;
  return {
    stream,
    host,
    component,
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

/**
 * The center of the samples `[from..to)` taken at the window's (median) VM count (see
 * `ClosedWindow.atVms`); undefined when none was (the median falls between two counts) or all were.
 */
function centerAtVms(
  values: Float64Array,
  vms: Float64Array,
  from: number,
  to: number,
  windowVms: number | undefined,
): number | undefined {
  const at: number[] = [];
  for (let k = from; k < to; k++) if (vms[k] === windowVms) at.push(values[k]!);
  return at.length === 0 || at.length === to - from ? undefined : robustCenter(at);
}

/**
 * `robustCenter` of `values[from..to)`, sorting them in place: an insertion sort, as a window
 * holds a dozen samples of a series (a subarray and a native sort per series cost more).
 */
function medianOf(values: Float64Array, from: number, to: number): number {
  const n = to - from;
  if (n === 1) return values[from]!;
  if (n === 2) return (values[from]! + values[from + 1]!) / 2;
  if (n > 64) values.subarray(from, to).sort();
  else
    for (let i = from + 1; i < to; i++) {
      const v = values[i]!;
      let j = i - 1;
      for (; j >= from && values[j]! > v; j--) values[j + 1] = values[j]!;
      values[j + 1] = v;
    }
  const mid = from + (n >> 1);
  return n % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}

/** Median (mean of the middle two for even counts): robust to bursts and outliers within a window. */
export function robustCenter(values: number[]): number {
  const n = values.length;
  if (n === 1) return values[0]!;
  if (n === 2) return (values[0]! + values[1]!) / 2;
  // A window of 5-minute samples has 12.
  sortNumbers(values);
  const mid = n >> 1;
  return n % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}
