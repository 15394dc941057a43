import { SimpleLinearRegression } from "ml-regression";
import { median, sdFromFalls } from "../../lib/stats.ts";
import type { GrowthPattern } from "../../schemas/suspect.ts";
import { classifyGrowth } from "../pattern/core.ts";
import type { ClosedWindow, SeriesInfo, StreamSnapshot } from "../window/core.ts";
import { type CohortGrowth, type CohortMember, cohortGrowthStart } from "./cohort.ts";
import { DetectConfig, type DetectConfigInput } from "./config.ts";
import { GroupTrends } from "./group.ts";

/** The identity of a series slot (see `ProcessDetectCore.seriesInfo`). */
export type SeriesLookup = (slot: number) => SeriesInfo | undefined;

/** Levels older than ring index `since` are lowered by `drop` (see `restartShift`). */
interface RestartShift {
  since: number;
  drop: number;
}
const NO_SHIFT: RestartShift = { since: Number.POSITIVE_INFINITY, drop: 0 };
/** A version cohort's key is its coarse group times this plus its version id (2^21 versions each). */
const COHORT_KEY = 2_097_152;

/** What one window's pass collects across series. */
interface WindowAcc {
  w: ClosedWindow;
  /** The window's stream snapshots by stream number (see `streamsByNumber`). */
  streams: (StreamSnapshot | undefined)[];
  /** The id of each stream's version of its component (see `versionIds`), by stream number. */
  versions: Int32Array;
  findings: Finding[];
  noiseSeen: Map<number, number[]>;
  wanderSeen: Map<number, number[]>;
  sig24Seen: Map<number, number[]>;
  dodSeen: Map<number, number[]>;
  /** The long climbs of the series that have one to judge (see `climbOf`). */
  climbs: Map<number, number[]>;
  perVmSeen: Map<number, number[]>;
  /** Members of version cohorts that failed their own tests, to be judged by their cohort's. */
  members: { i: number; z: number; levelNoise: number }[];
}

/** What the detector concluded about one series in one window (before the lifecycle turns it into events). */
export interface Finding {
  slot: number;
  info: SeriesInfo;
  /** Window end: the event time of the decision. */
  at: number;
  /** Start of the suspicious interval. */
  start: number;
  severity: number;
  pattern: GrowthPattern;
  growthBytesPerHour: number;
  bytes: number;
  /** True when the evidence is confirmed now; false for a suspect already open (status only). */
  flagged: boolean;
}

interface Verdict {
  start: number;
  severity: number;
  pattern: GrowthPattern;
  slopePerHour: number;
}

/** Times need float64; levels and scales are fine in float32 (1e-7 relative). */
const TIME_COLS = ["lastMs", "resetMs"] as const;
const FLOAT_COLS = [
  "lastY",
  "z",
  "base",
  "anchor",
  "noise",
  "slope",
  "lastVms",
  "sig24",
  "sig24s",
  "perVm",
  "vmOffset",
] as const;
/**
 * `fine`: the series' fine peer group (its coarse group is `fineOf[fine]`); `version`: its host's
 * version of the component in its latest window (see `versionIds`; 0: none yet).
 */
const INT_COLS = ["fine", "version"] as const;
/** Levels in the ring (ringHours is at most 256, so 16 bits hold it); `ringPos` (< 256) has 8. */
const RING_COLS = ["ringLen"] as const;
/**
 * Day levels (the median of a calendar day's levels) older than the ring, stored as ring levels
 * are (`DAY_NONE`: none): `dayA` the day before yesterday, `dayB` the day before that (see
 * `longClimb`).
 */
const DAY_COLS = ["dayA", "dayB"] as const;
/**
 * One byte each: `confirms`, verdict bits of the latest windows (`confirmSpan` and
 * `confirmWindows` are at most 8); `perVmN`, the VM changes the series learned its memory per
 * VM from (saturating); `vmsA` and `vmsB`, the host's VM count at the ends of yesterday and of
 * the day before (`VMS_NONE`: unknown; more than 254 VMs count as 254; see `longClimb`).
 */
const BYTE_COLS = ["confirms", "perVmN", "vmsA", "vmsB"] as const;
type Columns = Record<(typeof TIME_COLS)[number], Float64Array> &
  Record<(typeof FLOAT_COLS)[number], Float32Array> &
  Record<(typeof INT_COLS)[number], Int32Array> &
  Record<(typeof RING_COLS)[number], Uint16Array> &
  Record<(typeof DAY_COLS)[number], Int16Array> &
  Record<(typeof BYTE_COLS)[number], Uint8Array> & {
    /** Position of the newest level in the series' ring. */
    ringPos: Uint8Array;
    suspected: Uint8Array;
    /**
     * 1: continues the history of a predecessor that was suspected when it was restarted; 2: of
     * an earlier life that was (a leaking lineage, restarted since for another reason).
     */
    heir: Uint8Array;
    /** Windows after a VM change still to be stitched (see `vmStitch`). */
    settle: Uint8Array;
    /** 1: the series began with a version change (its process restarted into a new version). */
    upgraded: Uint8Array;
  };

/**
 * Ring levels are stored in int16: the level in steps of 2e-4 (log scale; ±3.27, i.e. up to 26×
 * growth) shifted left by one, and in the low bit whether the window was stitched (see
 * `vmStitch`).
 */
const RING_SCALE = 5e3;
const RING_LIMIT = 16383;

/** The level (relative to the series' anchor) of a stored ring entry. */
function levelOf(stored: number): number {
  return (stored >> 1) / RING_SCALE;
}

/** A ring entry for level `rel` (relative to the anchor), stitched or not. */
function ringEntry(rel: number, stitched: boolean): number {
  const steps = Math.max(-RING_LIMIT, Math.min(RING_LIMIT, Math.round(rel * RING_SCALE)));
  return steps * 2 + (stitched ? 1 : 0);
}

/** A day slot that holds no day. */
const DAY_NONE = -32768;
/** A VM count slot that holds no count. */
const VMS_NONE = 255;

/** Columns a successor continues from (see `continueFrom`). */
const CARRIED = [
  "ringPos",
  "ringLen",
  "z",
  "base",
  "anchor",
  "noise",
  "sig24",
  "sig24s",
  "lastY",
  "lastVms",
  "perVm",
  "perVmN",
  "vmOffset",
  "version",
  "dayA",
  "dayB",
  "vmsA",
  "vmsB",
] as const;

/**
 * The history a series leaves to the one that continues it (see `continueFrom`); kept as such for
 * a series that ended without a successor (its host went silent for longer than a series may
 * idle), so that a process that comes back on that host continues from it.
 */
interface History {
  /** The series' ring region, as stored (positions as in `ringPos`). */
  ring: Int16Array;
  values: Record<(typeof CARRIED)[number], number>;
  lastMs: number;
  suspected: number;
  heir: number;
}

/** Kept only for the few series that are suspected. */
interface OpenSuspect {
  start: number;
  baseZ: number;
  maxZ: number;
  lastGrowthMs: number;
}

/**
 * RESIN's process-level detection, made robust for fleets with hard negatives, as a pure core
 * over closed hourly windows.
 *
 * Each series keeps a log-scale level: against its peers' common mode (the median deviation of
 * the same component in the same region from their own baselines, shrunk by how little they
 * agree: diurnal load and fleet-wide config changes cancel), net of VM changes in components
 * that follow the VM count, and carried across restarts (the predecessor's history, drop
 * included). It also keeps robust noise and day-over-day scales and a ring of recent levels.
 * The suspicious interval starts where growth began (lowest level with a drift allowance),
 * never before the last restart or VM step, so it moves with the data as in RESIN. A series is
 * flagged when the interval's growth is significant against its own noise, large enough, close
 * to linear, not one step (and jumps have held), above the same hour yesterday and the day
 * before, and, when young, not a decelerating warm-up; twice in a row. State is columnar
 * (typed arrays indexed by series slot).
 */
export class ProcessDetectCore {
  readonly config: DetectConfig;
  private capacity = 0;
  private cols!: Columns;
  private ring = new Int16Array(0);
  private readonly open = new Map<number, OpenSuspect>();
  /** Histories of series that ended with no successor, by host, component and name. */
  private readonly orphans = new Map<string, History>();
  /** Slots whose history a restarted series took over in the current windows (not orphans when they end). */
  private readonly succeeded = new Set<number>();
  private readonly fineIds = new Map<string, number>();
  private readonly coarseIds = new Map<string, number>();
  /** Current common mode of each fine peer group: the median deviation of its members from their baselines. */
  private readonly fineM: number[] = [];
  private readonly fineOf: number[] = [];
  private readonly coarseNoise: number[] = [];
  /**
   * The 24 h ranges of healthy series' levels, per component, sorted: a high quantile of them is
   * the wander a leak must beat (see `wanderBar`).
   */
  private readonly coarseWander: (Float32Array | undefined)[] = [];
  /** Start of the first window this detector processed (its "first day", see `firstDayWander`). */
  private firstMs = -1;
  private readonly coarseSig24: number[] = [];
  /**
   * The least day-over-day wobble "above yesterday" holds a series to, per component: the spread
   * of this window's day-over-day falls across its hosts, times `peerDayFloor`, raised for a
   * component on many series (see `peerDayRefSeries`).
   */
  private readonly coarseDayFloor: number[] = [];
  /** By coarse group: the climb a long climb must beat (see `longClimb`). */
  private readonly coarseClimb: number[] = [];
  /** Memory per VM (log scale) of components whose memory follows the VM count of the host. */
  private readonly coarsePerVm: (number | undefined)[] = [];
  /** The component's memory per VM over the windows that had VM changes: decayed sums of host-weighted medians, and of hosts. */
  private readonly coarsePerVmSum: number[] = [];
  private readonly coarsePerVmWeight: number[] = [];
  /** How much the component's hosts differ in memory per VM (variance, log scale). */
  private readonly coarsePerVmVar: number[] = [];
  /** Whole peer groups whose common mode grows like a leak (e.g. a leaking version on a whole region). */
  readonly groups: GroupTrends;
  /**
   * Version cohorts (component and process, version; see `cohorts`) by key: the verdicts of their
   * last windows (newest in the lowest bit) and, when the newest passed, hours back to where
   * their growth began and their growth since (0 otherwise). A cohort is dropped once none of
   * its recent windows passed.
   */
  private readonly cohortState = new Map<number, { passes: number; start: number; growth: number }>();
  /**
   * Version cohorts (by key) judged in recent windows: the most hosts one had, and when it first
   * had that many (see `cohortSettleHours`). Dropped in a window in which none of its hosts reports.
   */
  private readonly cohortJoins = new Map<number, { most: number; since: number }>();
  /** Small ids of the version strings seen (from 1), for the `version` column. */
  private readonly versionIds = new Map<string, number>();
  /** Each stream's version id in the latest window it reported in, by stream number. */
  private readonly streamVersions: number[] = [];
  private readonly noiseDecay: number;
  private readonly baseDecay: number;
  private readonly scratchT: number[] = [];
  private readonly scratchZ: number[] = [];
  private readonly scratchS: number[] = [];

  /**
   * Identity of a series slot, from the window core (`WindowCore.seriesInfo`): the detector keeps
   * no identity of its own (an object per series was most of the state beyond its columns).
   */
  private readonly seriesInfo: SeriesLookup;

  /** Called with the reason whenever a candidate interval is rejected (debugging aid). */
  trace: ((info: SeriesInfo, windowStart: number, reason: string) => void) | undefined;
  /** While the interval tests run on a series' lows (see `judgeFloor`): their day-over-day wobble. */
  private floorDaySigma: number | undefined = undefined;

  /**
   * The length of one window, ms: the detector's "hour". Replay and live use hourly windows;
   * a test or a demo may scale time down (seconds-long windows), and every "…Hours" setting
   * then counts windows.
   */
  private readonly hourMs: number;

  constructor(seriesInfo: SeriesLookup, config: DetectConfigInput = {}, windowMs = 3_600_000) {
    this.config = DetectConfig.parse(config);
    this.seriesInfo = seriesInfo;
    this.hourMs = windowMs;
    this.noiseDecay = 1 - 0.5 ** (1 / this.config.noiseHalfLife);
    this.baseDecay = 1 - 0.5 ** (1 / this.config.baselineHalfLife);
    const cfg = this.config;
    this.groups = new GroupTrends({
      historyHours: 96,
      hourMs: windowMs,
      sigmas: cfg.sigmas,
      minGrowth: 2 * cfg.minRelGrowth,
      minR2: cfg.minR2,
      maxStepShare: cfg.maxStepShare,
      seasonalSigmas: cfg.seasonalSigmas,
      pace: cfg.youngPace,
      confirmWindows: cfg.groupConfirmWindows,
    });
    this.grow(1024);
  }

  /** Identity of a series in the window being processed. */
  infoOf(slot: number): SeriesInfo | undefined {
    return this.seriesInfo(slot);
  }

  /** Marks a series as suspected (kept out of peer baselines) or not; the lifecycle calls it. */
  setSuspected(slot: number, suspected: boolean, start = 0): void {
    const c = this.cols;
    c.suspected[slot] = suspected ? 1 : 0;
    if (suspected) {
      const back = Math.min(Math.round((c.lastMs[slot]! - start) / this.hourMs), c.ringLen[slot]! - 1);
      const baseZ = this.ringAt(slot, Math.max(0, back));
      this.open.set(slot, {
        start,
        baseZ,
        maxZ: this.peakLevel(slot),
        lastGrowthMs: c.lastMs[slot]! + this.hourMs,
      });
    } else {
      this.open.delete(slot);
      // A resolved series starts over: its old growth is not evidence for a new suspect.
      c.resetMs[slot] = c.lastMs[slot]!;
    }
  }

  /**
   * The median of the series' last three levels, the newest being `now` (the ring's, unless the
   * caller has it unrounded; just `now` while the ring is shorter); `peak`: never above `now`
   * either (a burst that just ended is not a level the series held).
   */
  private heldLevel(slot: number, peak: boolean, now = this.ringAt(slot, 0)): number {
    if (this.cols.ringLen[slot]! < 3) return now;
    const held = median3(now, this.ringAt(slot, 1), this.ringAt(slot, 2));
    return peak ? Math.min(now, held) : held;
  }

  /** The level an open suspect's peak is read from: its last five hours' median, never above now. */
  private peakLevel(slot: number): number {
    if (this.cols.ringLen[slot]! < 5) return this.heldLevel(slot, true);
    return Math.min(this.ringAt(slot, 0), this.spanMedian(slot, 0, 5, NO_SHIFT));
  }

  /** Hours since an open suspect last grew, and how far its level fell back (share of its growth). */
  suspectHealth(slot: number, now: number): { quietHours: number; fallback: number } | undefined {
    const s = this.open.get(slot);
    if (s === undefined) return undefined;
    const grown = s.maxZ - s.baseZ;
    // A fall within the series' noise (a sawtooth's trough) is no memory given back.
    const fall = s.maxZ - this.heldLevel(slot, false);
    const noise = 3 * Math.max(this.cols.noise[slot]!, this.config.noiseFloor);
    const fallback = grown > 0 && fall > noise ? fall / grown : 0;
    return { quietHours: (now - s.lastGrowthMs) / this.hourMs, fallback };
  }

  /** Processes one closed window; returns a finding for each series flagged now or already open. */
  process(w: ClosedWindow): Finding[] {
    const c = this.cols;
    const cfg = this.config;
    if (this.firstMs < 0) this.firstMs = w.start;
    const streams = streamsByNumber(w.streams);
    // Room for the window's new series at once: a fleet's first window announces nearly all of
    // them, and growing slot by slot would overshoot by up to a quarter.
    let needed = 0;
    for (const info of w.newSeries) needed = Math.max(needed, info.slot + 1);
    if (needed > this.capacity) this.grow(Math.max(needed, Math.ceil(this.capacity * 1.25)));
    for (const info of w.newSeries) this.addSeries(info, streams[info.stream]);

    // Pass 1: the common mode of each peer group (component, process, region; the component
    // across regions when a region has too few): the median of its members' deviations from their
    // own baselines, in log scale. Levels, not hourly changes: the median of changes drifts on
    // skewed shapes (a GC sawtooth rises slowly and drops at once). Restarted processes count as
    // they are: when most of a group restarted together (a rolling deploy), the common mode
    // carries their shared warm-up instead of going blind.
    const n = w.slots.length;
    const ys = new Float64Array(n);
    const peers = new PeerMedians(this.fineOf);
    for (let i = 0; i < n; i++) {
      const slot = w.slots[i]!;
      // Memory that follows the VM count is read at the window's VM count (see `atVms`).
      const atVms = w.atVms?.get(slot);
      const bytes =
        atVms !== undefined && this.followsVms(this.fineOf[c.fine[slot]!]!) ? atVms : w.values[i]!;
      const y = Math.log(Math.max(bytes, 1));
      ys[i] = y;
      if (c.lastMs[slot]! < 0 || c.suspected[slot] === 1) continue;
      // Nor do the hosts of a version that leaks: the peers' common behaviour is the healthy one.
      if (this.cohortState.size > 0 && this.inLeakingCohort(slot, w.start)) continue;
      peers.add(c.fine[slot]!, y - c.vmOffset[slot]! - c.base[slot]!);
    }
    const own = new Set<number>();
    // Shrunk toward zero hard where hosts follow their own VM counts, by one standard error
    // elsewhere (see `PeerMedians.medians`).
    const sigmasOf = (coarse: number) => (this.followsVms(coarse) ? cfg.commonModeSigmas : 1);
    for (const [g, m] of peers.medians(cfg.minPeers, sigmasOf, own)) this.fineM[g] = m;
    if (cfg.groupTrends) {
      for (let g = 0; g < this.fineOf.length; g++) {
        const verdict = this.groups.observe(g, w.start, own.has(g) ? this.fineM[g] : undefined);
        if (verdict === undefined) continue;
        this.fineM[g] = verdict.used;
        if (verdict.backfill !== undefined) this.backfill(g, w.start, verdict.backfill);
      }
    }

    // Pass 2: per-series level and decision. A restarted series continues its predecessor's
    // history, so it goes after every other series (the predecessor may report in this window
    // too): the result does not depend on the order series were first seen.
    const versions = new Int32Array(streams.length);
    for (const s of w.streams) versions[s.stream] = this.versionId(s.version);
    const acc: WindowAcc = {
      w,
      streams,
      versions,
      findings: [],
      noiseSeen: new Map(),
      wanderSeen: new Map(),
      sig24Seen: new Map(),
      dodSeen: new Map(),
      climbs: new Map(),
      perVmSeen: new Map(),
      members: [],
    };
    const deferred: number[] = [];
    for (let i = 0; i < n; i++) {
      const slot = w.slots[i]!;
      if (c.lastMs[slot]! < 0 && this.seriesInfo(slot)!.predecessor !== undefined) deferred.push(i);
      else this.step(acc, i, ys[i]!);
    }
    for (const i of deferred) this.step(acc, i, ys[i]!);
    const findings = acc.findings;
    for (const [g, values] of acc.noiseSeen) this.coarseNoise[g] = median(values);
    // A component follows its VM count when its hosts agree on a memory per VM (pooled: one
    // host's few VM changes under noise prove nothing, the fleet's do).
    for (const [g, values] of acc.perVmSeen) {
      // Averaged over windows, weighted by their hosts (each window's hosts with VM changes are
      // a few, and their median swings): a component does not stop following its VM count for a
      // window, nor start following it on a few hosts' chance agreement.
      const sum = 0.9 * (this.coarsePerVmSum[g] ?? 0) + values.length * coherentMedian(values, 3);
      const weight = 0.9 * (this.coarsePerVmWeight[g] ?? 0) + values.length;
      this.coarsePerVmSum[g] = sum;
      this.coarsePerVmWeight[g] = weight;
      if (weight < 3 * cfg.minPeers) continue;
      const perVm = sum / weight;
      // ... and when a VM moves it by at least half an hour's noise: below that, which VMs
      // came or went is lost in the noise, and a few hosts' estimates agree by chance.
      const material = Math.max(cfg.minPerVm, 0.5 * (this.coarseNoise[g] ?? 0));
      this.coarsePerVm[g] = perVm > material ? perVm : undefined;
      // How much its hosts differ: from a window with enough of them (else as last seen).
      if (values.length >= cfg.minPeers || this.coarsePerVmVar[g] === undefined) {
        const spread = 1.4826 * median(values.map((v) => Math.abs(v - perVm)));
        this.coarsePerVmVar[g] = Math.max(spread * spread, cfg.noiseFloor * cfg.noiseFloor);
      }
    }
    for (const [g, values] of acc.sig24Seen) this.coarseSig24[g] = median(values);
    // From the falls only, as each series' own: a version that leaks on many hosts at once, or a
    // whole group's leak, must not raise the bar its hosts are held to.
    for (const [g, values] of acc.dodSeen) {
      if (values.length < cfg.minPeers) continue;
      // The widest of n healthy wobbles grows as sqrt(2 ln n) of the typical one: a bar set for a
      // group of `peerDayRefSeries` series is raised by that growth for a larger group (n: the
      // series with a day-over-day change this window, falls or not).
      this.coarseDayFloor[g] =
        cfg.peerDayFloor * this.peerSpread(acc.sig24Seen.get(g)!.length) * sdFromFalls(values);
    }
    for (const [g, climbs] of acc.climbs) {
      if (climbs.length < cfg.minPeers) continue;
      // Over days the peers' common mode drifts: healthy climbs centre on their median, not on
      // zero. Their spread from the lower half, as the falls elsewhere: leaks are in the upper.
      const centre = median(climbs);
      const below: number[] = [];
      for (const s of climbs) if (s < centre) below.push(centre - s);
      if (below.length < cfg.minPeers) continue;
      // Beyond the centre by `minRelGrowth` at least: peers that climb as one (their common mode
      // drifts over days in a small group) leave no spread to stand on.
      const floor = Math.max(0, centre);
      this.coarseClimb[g] = Math.max(
        floor + cfg.climbSigmas * this.peerSpread(climbs.length) * sdFromFalls(below),
        floor + cfg.minRelGrowth,
      );
    }
    for (const [g, values] of acc.wanderSeen)
      this.coarseWander[g] = values.length >= cfg.minPeers ? Float32Array.from(values).sort() : undefined;
    if (cfg.cohorts) this.judgeCohorts(w);
    this.judgeMembers(acc);
    for (const s of w.streams) this.streamVersions[s.stream] = versions[s.stream]!;
    return findings;
  }

  /** Updates one series with its value in the window and judges it. */
  private step(acc: WindowAcc, i: number, y: number): void {
    const c = this.cols;
    const cfg = this.config;
    const w = acc.w;
    const slot = w.slots[i]!;
    const info = this.seriesInfo(slot)!;
    const vms = acc.streams[info.stream]?.vms ?? -1;
    const g = c.fine[slot]!;
    const coarse = this.fineOf[g]!;
    const ageHours = this.ageHoursOf(info, w.start);
    const version = acc.versions[info.stream] ?? 0;
    if (c.lastMs[slot]! < 0) {
      // A series that continues another's history began with a version change when the version
      // before it differs: its stream's in the window before (a restart: the predecessor may have
      // reported in this window already, under the new version), or its own (a return after silence).
      let before: number;
      if (this.inherit(slot, info.predecessor, w.start)) before = this.streamVersions[info.stream] ?? 0;
      else if (this.adopt(slot, info, w.start)) before = c.version[slot]!;
      else {
        c.version[slot] = version;
        const z0 = y - this.fineM[g]!;
        c.lastY[slot] = y;
        c.lastMs[slot] = w.start;
        c.lastVms[slot] = vms;
        c.resetMs[slot] = w.start;
        c.z[slot] = z0;
        c.base[slot] = z0;
        c.anchor[slot] = z0;
        this.pushRing(slot, z0, 1);
        return;
      }
      c.upgraded[slot] = before !== 0 && version !== 0 && before !== version ? 1 : 0;
    }
    c.version[slot] = version;
    const gapHours = Math.max(1, Math.round((w.start - c.lastMs[slot]!) / this.hourMs));
    if (cfg.longClimb) this.rollDays(slot, w.start);
    // The level: log memory against the peers' common mode, net of what VM changes did to it.
    let z = y - c.vmOffset[slot]! - this.fineM[g]!;
    const prevVms = c.lastVms[slot]!;
    const dv = vms >= 0 && prevVms >= 0 ? vms - prevVms : 0;
    let vmStep = 0;
    let stitched = false;
    if (dv === 0 && c.settle[slot]! > 0) {
      // Memory settling after VMs came or went (caches, slabs) goes to the VMs too.
      c.settle[slot]! -= 1;
      z -= this.stitchOut(slot, z - c.z[slot]!, 0);
      stitched = true;
    }
    if (dv !== 0) {
      const change = z - c.z[slot]!;
      vmStep = change;
      // Learn this series' memory per VM (log scale) from the windows where its VM count moved.
      if (gapHours === 1 && c.suspected[slot] !== 1 && c.resetMs[slot]! < w.start) {
        const n = c.perVmN[slot]!;
        const step = 1 / Math.min(n + 1, 8);
        c.perVm[slot]! += step * (change / dv - c.perVm[slot]!);
        c.perVmN[slot] = Math.min(255, n + 1);
        if (n + 1 >= 3) pushTo(acc.perVmSeen, coarse, c.perVm[slot]!);
      }
      // Tenant-following memory: in a component that follows its VM count, take out what the VM
      // change did (VMs and memory are both window medians, so they land in the same window): the
      // host's own memory per VM, weighed against the component's (see `perVmOf`).
      // A staircase of VM arrivals then does not add up to a leak.
      const perVm = this.perVmOf(slot);
      if (perVm !== undefined && cfg.vmStitch) {
        // Whatever the memory did in this window goes to the VMs: the level holds across the
        // change, and the interval runs on (a host whose VMs change every few hours would
        // otherwise never build an interval long enough to show a leak). Each stitch takes an
        // hour's noise out with it, which the interval's bar accounts for (see `judgeInterval`).
        // Not beyond what the VMs can explain, though (see `stitchOut`).
        z -= this.stitchOut(slot, change, perVm * dv);
        vmStep = 0;
        stitched = true;
        c.settle[slot] = cfg.vmSettleHours;
      } else if (perVm !== undefined) {
        // Without stitching: take out the memory per VM, and restart the interval once memory
        // has settled (caches, slabs) after VMs came or went.
        c.vmOffset[slot]! += perVm * dv;
        z -= perVm * dv;
        if (c.suspected[slot] !== 1) c.resetMs[slot] = w.start + cfg.vmSettleHours * this.hourMs;
      }
    }
    const e = z - c.z[slot]!;
    c.lastY[slot] = y;
    c.lastMs[slot] = w.start;
    c.lastVms[slot] = vms;
    c.z[slot] = z;
    // While the whole group leaks, baselines hold: the group's deviation keeps showing its growth.
    if (!this.groups.isLeaking(g)) c.base[slot]! += this.baseDecay * (z - c.base[slot]!);

    const noiseE = Math.max(c.noise[slot]!, cfg.noiseFloor);
    // A running mean while the series is new, an exponential average after.
    const decay = Math.max(this.noiseDecay, 1 / (c.ringLen[slot]! + 1));
    // Noise: deviation from the recent trend, clipped so a leak or a jump cannot inflate it fast.
    // The restart's own step is not noise.
    if (!stitched && (c.resetMs[slot]! < w.start || dv !== 0)) {
      const dev = Math.min(Math.abs(e - c.slope[slot]! * gapHours) / Math.sqrt(gapHours), 3 * noiseE);
      c.noise[slot] = noiseE + decay * (dev - noiseE);
    }
    pushTo(acc.noiseSeen, coarse, c.noise[slot]!);
    // In a component that follows the VM count, a level step in the window where the VM count
    // moved the same way restarts the interval, whatever part of it the memory per VM did not
    // account for. Elsewhere a step with a VM arrival is not the VM's memory: it may be a leak
    // that VM operations drive.
    if (
      dv !== 0 &&
      Math.sign(vmStep) === Math.sign(dv) &&
      Math.abs(vmStep) > 2 * noiseE &&
      c.suspected[slot] !== 1 &&
      this.followsVms(coarse)
    ) {
      c.resetMs[slot] = w.start;
    }
    this.pushRing(slot, z, gapHours, stitched);
    // The series' long climb in this window: for its peers' bar, and for its own verdict.
    const climb = cfg.longClimb ? this.climbOf(slot, w.start, ageHours) : undefined;
    if (c.ringLen[slot]! > 24 && c.suspected[slot] !== 1) {
      // Rounded to float32, as the other per-series scales are stored.
      const wander = Math.fround(this.dailyRangeOf(slot));
      pushTo(acc.wanderSeen, coarse, wander);
      // Day-over-day change: what the same hour yesterday says. A healthy series repeats its
      // day (diurnal load, its own phase and amplitude), so this stays near its typical size.
      // Learned from the falls only: healthy wobble is symmetric, a leak only ever rises, and a
      // scale learned from rises would grow with the very leak it should expose.
      // A day that spans a restart is not wobble: the restart's drop would inflate it.
      const sig = Math.max(c.sig24[slot]!, cfg.noiseFloor);
      const dayChange = z - this.ringAt(slot, 24);
      const spansRestart = cfg.restartShift && c.heir[slot] === 1 && ageHours < 24;
      if (dayChange <= 0 && !spansRestart)
        c.sig24[slot] = sig + decay * (Math.min(-dayChange, 3 * sig) - sig);
      const span = cfg.seasonalSpan;
      if (span > 1 && c.ringLen[slot]! > 24 + span) {
        const sigS = Math.max(c.sig24s[slot]!, cfg.noiseFloor);
        const spanChange =
          this.spanMedian(slot, 0, span, NO_SHIFT) - this.spanMedian(slot, 24, span, NO_SHIFT);
        // Yesterday's span reaches `span` hours further back than the same hour yesterday.
        const spanSpansRestart = cfg.restartShift && c.heir[slot] !== 0 && ageHours < 24 + span;
        if (spanChange <= 0 && !spanSpansRestart)
          c.sig24s[slot] = sigS + decay * (Math.min(-spanChange, 3 * sigS) - sigS);
      }
      pushTo(acc.sig24Seen, coarse, c.sig24[slot]!);
      if (climb !== undefined && !climb.short) pushTo(acc.climbs, coarse, climb.s);
      if (dayChange < 0 && !spansRestart) pushTo(acc.dodSeen, coarse, -dayChange);
    }

    const openState = this.open.get(slot);
    const levelNoise = noiseE / Math.SQRT2;
    // An open suspect's peak is read through the last five hours' median, its fall back through
    // the last three's: a burst (of up to two hours) is not growth, and its end is not the leak
    // giving memory back.
    if (openState !== undefined) {
      const held = this.peakLevel(slot);
      if (held > openState.maxZ) {
        if (held > openState.maxZ + levelNoise) openState.lastGrowthMs = w.start + this.hourMs;
        openState.maxZ = held;
      }
    }
    const verdict = this.judge(slot, w.start, z, levelNoise, ageHours, climb);
    // A member of a version cohort, failing its own tests, waits for the cohorts' verdict on this
    // very window (see `process`).
    if (verdict === undefined && cfg.cohorts && c.upgraded[slot] === 1) {
      acc.members.push({ i, z, levelNoise });
      return;
    }
    this.conclude(acc, i, info, verdict, false, z, levelNoise);
  }

  /**
   * Judges the members of a version cohort that grows like a leak, after the cohorts were judged
   * on this window. A member needs less evidence of its own: the cohort's windows have confirmed
   * it already.
   */
  private judgeMembers(acc: WindowAcc): void {
    for (const { i, z, levelNoise } of acc.members) {
      const slot = acc.w.slots[i]!;
      const info = this.seriesInfo(slot)!;
      const cohort = this.leakingCohortOf(slot, info, acc.w.start);
      const verdict =
        cohort === undefined
          ? undefined
          : this.judgeMember(slot, acc.w.start, z, levelNoise, cohort.start + 1, cohort.growth);
      this.conclude(acc, i, info, verdict, verdict !== undefined, z, levelNoise);
    }
  }

  /** Records a series' verdict in this window and turns it into a finding when it counts. */
  private conclude(
    acc: WindowAcc,
    i: number,
    info: SeriesInfo,
    verdict: Verdict | undefined,
    byCohort: boolean,
    z: number,
    levelNoise: number,
  ): void {
    const c = this.cols;
    const cfg = this.config;
    const w = acc.w;
    const slot = w.slots[i]!;
    const openState = this.open.get(slot);
    c.slope[slot] = verdict?.slopePerHour ?? c.slope[slot]! * 0.5;
    // The verdicts of the series' last `confirmSpan` windows, newest in the lowest bit.
    const span = Math.max(cfg.confirmSpan, cfg.confirmWindows);
    c.confirms[slot] = ((c.confirms[slot]! << 1) | (verdict === undefined ? 0 : 1)) & ((1 << span) - 1);
    const agree = verdict === undefined ? 0 : bitCount(c.confirms[slot]!);
    const flagged = verdict !== undefined && (byCohort || agree >= cfg.confirmWindows);
    // A window that passes says so: a candidate interval rejected before the one that passed
    // must not be its last word.
    if (verdict !== undefined && this.trace !== undefined) {
      const of = cfg.confirmWindows;
      this.trace(
        info,
        w.start,
        byCohort ? "passes (its cohort leaks)" : `passes (${Math.min(agree, of)} of ${of} windows)`,
      );
    }
    if (!flagged && openState === undefined) return;
    const evidence = verdict ?? this.describe(slot, openState!.start, z, levelNoise);
    const bytes = w.values[i]!;
    acc.findings.push({
      slot,
      info,
      at: w.end,
      start: openState?.start ?? evidence.start,
      severity: evidence.severity,
      pattern: evidence.pattern,
      // The detector's "hour" is a window; the rate goes out per clock hour (contract §2).
      growthBytesPerHour: Math.round((evidence.slopePerHour * bytes * 3_600_000) / this.hourMs),
      bytes,
      flagged,
    });
  }

  /**
   * Moves what a VM change (or the settling after it) did to the level into the series' VM
   * offset, and returns it: `change`, but no further from `expected` (what the host's memory per
   * VM says) than half of it and three hours' noise. A burst that ends, or a leak that jumps, in
   * the same window stays in the level.
   */
  private stitchOut(slot: number, change: number, expected: number): number {
    const c = this.cols;
    const room = 3 * Math.max(c.noise[slot]!, this.config.noiseFloor) + 0.5 * Math.abs(expected);
    const absorbed = expected + Math.max(-room, Math.min(room, change - expected));
    c.vmOffset[slot]! += absorbed;
    return absorbed;
  }

  /** Whether component `g` follows the VM count, or may: its hosts have not shown enough VM changes yet. */
  private followsVms(g: number): boolean {
    return this.coarsePerVmVar[g] === undefined || this.coarsePerVm[g] !== undefined;
  }

  /**
   * The memory per VM (log scale) to take out of this series' level when its VM count moves, or
   * undefined when its component does not follow the VM count: the host's own estimate and the
   * component's, each weighted by how sure it is. The host's by its level noise over the steps it
   * has seen; the component's by how much its hosts differ (memory per VM is additive in bytes,
   * so in log scale it differs with each host's size).
   */
  private perVmOf(slot: number): number | undefined {
    const c = this.cols;
    const g = this.fineOf[c.fine[slot]!]!;
    const component = this.coarsePerVm[g];
    if (component === undefined) return undefined;
    const n = c.perVmN[slot]!;
    if (n === 0) return component;
    const noise = Math.max(c.noise[slot]!, this.config.noiseFloor);
    const ownVar = (noise * noise) / n;
    const componentVar = this.coarsePerVmVar[g]!;
    return (c.perVm[slot]! * componentVar + component * ownVar) / (componentVar + ownVar);
  }

  /**
   * Adds to the level history of group `g`'s members what the group's common mode took away from
   * it while the whole group was growing (`delta[k]`: k + 1 hours before `now`).
   */
  private backfill(g: number, now: number, delta: readonly number[]): void {
    const c = this.cols;
    for (let slot = 0; slot < this.capacity; slot++) {
      // lastMs < 0: no level yet, or no series (removed, or a slot never used).
      if (c.fine[slot] !== g || c.lastMs[slot]! < 0) continue;
      const offset = Math.round((now - c.lastMs[slot]!) / this.hourMs) - 1;
      if (offset < 0 || offset >= delta.length) continue;
      c.z[slot]! += delta[offset]!;
      const r = this.config.ringHours;
      for (let back = 0; back < c.ringLen[slot]! && back + offset < delta.length; back++) {
        const idx = slot * r + ((c.ringPos[slot]! - back + r * 4) % r);
        const stored = this.ring[idx]!;
        this.ring[idx] = ringEntry(levelOf(stored) + delta[back + offset]!, (stored & 1) === 1);
      }
    }
  }

  /** Forgets the series that ended at a window; call after everything else used the window. */
  release(w: ClosedWindow): void {
    const c = this.cols;
    const r = this.config.ringHours;
    for (const slot of w.ended) {
      // A series that ends with no one continuing it, e.g. every process of a host that went
      // silent for longer than a series may idle, is kept for a process that comes back there.
      const info = this.seriesInfo(slot);
      if (!this.succeeded.delete(slot) && info !== undefined && c.lastMs[slot]! >= 0)
        this.orphans.set(orphanKey(info), this.historyOf(slot));
      this.removeSeries(slot);
    }
    // Past the ring, an orphan has no history left to give.
    for (const [key, o] of this.orphans) if (w.start - o.lastMs > r * this.hourMs) this.orphans.delete(key);
  }

  /** Continues a new series with no predecessor from the orphan of its host, component and name, if any. */
  private adopt(slot: number, info: SeriesInfo, now: number): boolean {
    if (this.orphans.size === 0) return false;
    const key = orphanKey(info);
    const o = this.orphans.get(key);
    if (o === undefined) return false;
    this.orphans.delete(key);
    if (now - o.lastMs > this.config.ringHours * this.hourMs) return false;
    this.continueFrom(slot, o, now);
    return true;
  }

  /** What series `slot` knows, for a series that continues it. */
  private historyOf(slot: number): History {
    const c = this.cols;
    const r = this.config.ringHours;
    const values = {} as History["values"];
    for (const k of CARRIED) values[k] = c[k][slot]!;
    return {
      ring: this.ring.slice(slot * r, slot * r + r),
      values,
      lastMs: c.lastMs[slot]!,
      suspected: c.suspected[slot]!,
      heir: c.heir[slot]!,
    };
  }

  /**
   * Series `slot` continues history `h` from `now` on: its levels, scales and VM offset; its
   * interval cannot reach back past `now`; it is an heir if `h`'s series was suspected (1) or was
   * an heir itself (2).
   */
  private continueFrom(slot: number, h: History, now: number): void {
    const c = this.cols;
    this.ring.set(h.ring, slot * this.config.ringHours);
    for (const k of CARRIED) c[k][slot] = h.values[k];
    c.lastMs[slot] = h.lastMs;
    c.resetMs[slot] = now;
    c.heir[slot] = h.suspected === 1 ? 1 : h.heir !== 0 ? 2 : 0;
  }

  /** Drops the newest ring entry (it is about to be written again for the same window). */
  private dropNewestLevel(slot: number): void {
    const c = this.cols;
    const r = this.config.ringHours;
    c.ringPos[slot] = (c.ringPos[slot]! - 1 + r) % r;
    c.ringLen[slot] = Math.max(0, c.ringLen[slot]! - 1);
  }

  /** Whether the series' recent levels look like a leak; undefined if not. */
  private judge(
    slot: number,
    now: number,
    z: number,
    levelNoise: number,
    ageHours: number,
    climb: Climb | undefined,
  ): Verdict | undefined {
    const c = this.cols;
    const cfg = this.config;
    // The interval may reach back to the last reset, within the ring.
    const maxBack = Math.min(c.ringLen[slot]! - 1, Math.floor((now - c.resetMs[slot]!) / this.hourMs));
    if (maxBack < cfg.minHours) return this.reject(slot, now, "too soon after a restart or VM change");
    // History no older than the process: it is new to the detector (see `newWarmupHours`).
    if (ageHours < cfg.newWarmupHours && c.ringLen[slot]! - 1 <= ageHours + 1)
      return this.reject(slot, now, "new and warming up");
    // Two candidate starts: the lowest level where older levels must be lower by a drift
    // allowance in proportion to the noise (a noise dip long before a leak does not stretch the
    // interval back to it), and with a small fixed allowance (a slow leak in a noisy series,
    // e.g. under a GC sawtooth, needs a long interval to stand out).
    const verdict = this.judgeStarts(slot, now, z, levelNoise, ageHours, maxBack);
    if (verdict !== undefined) return verdict;
    const { first, second } = startsScratch;
    // A leak on top of the warm-up of a restart: the lowest level is the restart, and the warm-up
    // makes the interval look like it is slowing down. Try the interval after the warm-up period
    // too, still held to the pace a warm-up cannot keep.
    const afterWarmup = Math.floor(ageHours - cfg.warmupHours);
    if (afterWarmup >= cfg.youngMinHours && afterWarmup < Math.min(first, second) && afterWarmup <= maxBack) {
      const v = this.judgeInterval(slot, now, z, levelNoise, ageHours, afterWarmup, true);
      if (v !== undefined) return v;
    } else if (cfg.youngHalving && ageHours - first < cfg.warmupHours) {
      for (let h = Math.floor(first / 2); h >= cfg.youngMinHours; h = Math.floor(h / 2)) {
        const v = this.judgeInterval(slot, now, z, levelNoise, ageHours, h, true);
        if (v !== undefined) return v;
      }
    }
    if (cfg.floorHours > 0) {
      const v = this.judgeFloor(slot, now, levelNoise, ageHours, maxBack);
      if (v !== undefined) return v;
    }
    return cfg.longClimb ? this.judgeClimb(slot, now, z, levelNoise, ageHours, climb) : undefined;
  }

  /**
   * The two candidate intervals (see `judge`), the first start's, then the second's if it
   * differs: the verdict of the first that passes. Both starts are left in `startsScratch` (the
   * second only when the first failed).
   */
  private judgeStarts(
    slot: number,
    now: number,
    z: number,
    levelNoise: number,
    ageHours: number,
    maxBack: number,
  ): Verdict | undefined {
    const cfg = this.config;
    const first = this.startAt(slot, z, maxBack, Math.max(levelNoise * cfg.driftAllowance, 1e-4));
    startsScratch.first = first;
    const verdict = this.judgeInterval(slot, now, z, levelNoise, ageHours, first);
    if (verdict !== undefined) return verdict;
    const second = this.startAt(slot, z, maxBack, cfg.minDriftPerHour);
    startsScratch.second = second;
    return second === first ? undefined : this.judgeInterval(slot, now, z, levelNoise, ageHours, second);
  }

  /**
   * The interval tests again on the series' lows (see `floorHours`): each level replaced, in
   * place in the ring, by the lowest of it and the `floorHours − 1` before it (not reaching back
   * past the last reset), for as long as the tests run. Undefined also when the series is no
   * sawtooth: its lows are not much steadier than its hours.
   *
   * The lows' noise is read from their falls over `floorHours` (a low is one per window of that
   * length), their day-over-day wobble from their falls over 24 hours (with too few of those,
   * see below). The lows climb in steps, one per cycle of the sawtooth, so the hold after jumps
   * (meant for bursts, which lows do not see) does not apply. The verdict's pattern and severity
   * are read from the lows too.
   */
  private judgeFloor(
    slot: number,
    now: number,
    levelNoise: number,
    ageHours: number,
    maxBack: number,
  ): Verdict | undefined {
    const c = this.cols;
    const cfg = this.config;
    const span = cfg.floorHours;
    const len = c.ringLen[slot]!;
    // The lows' noise is at least the noise floor: a series with less hourly noise than that
    // many times it cannot qualify (most do not; this runs for every series that failed).
    if (maxBack < cfg.minHours + span || cfg.floorNoiseShare * levelNoise < cfg.noiseFloor) return undefined;
    const { levels, lows, falls } = floorScratch;
    levels.length = 0;
    lows.length = 0;
    for (let back = 0; back < len; back++) levels.push(this.ringAt(slot, back));
    for (let back = 0; back < len; back++) {
      const oldest = Math.min(back <= maxBack ? maxBack : len - 1, back + span - 1);
      let low = levels[back]!;
      for (let k = back + 1; k <= oldest; k++) if (levels[k]! < low) low = levels[k]!;
      lows.push(low);
    }
    const spanFalls = fallsSd(lows, span, maxBack, falls, cfg.wanderMinFalls);
    if (spanFalls === undefined) return undefined;
    const lowNoise = Math.max(spanFalls / Math.SQRT2, cfg.noiseFloor);
    if (lowNoise > cfg.floorNoiseShare * levelNoise) return undefined;
    // Too few falls over a day: with a whole day of lows since the last reset, they rose on the
    // day nearly everywhere (a leak that has risen for most of a day), and their noise says what
    // is wobble; with less (a restart in the day), the hours' own day-over-day bar, as the lows'
    // noise over six hours would let a daily curve by.
    const lowDay = Math.max(
      fallsSd(lows, 24, maxBack, falls, cfg.wanderMinFalls) ??
        (maxBack >= 24 + span ? lowNoise * Math.SQRT2 : this.daySigma(slot)),
      cfg.noiseFloor,
    );

    this.floorDaySigma = lowDay;
    try {
      return this.withLevels(slot, lows, () =>
        this.judgeStarts(slot, now, this.ringAt(slot, 0), lowNoise, ageHours, maxBack),
      );
    } finally {
      this.floorDaySigma = undefined;
    }
  }

  /**
   * `fn`'s result with the series' newest levels replaced by `levels` (newest first), in place in
   * the ring (stitch marks kept), for as long as `fn` runs: the ring's tests then read them.
   */
  private withLevels<T>(slot: number, levels: readonly number[], fn: () => T): T {
    const r = this.config.ringHours;
    const saved = floorScratch.ring;
    saved.set(this.ring.subarray(slot * r, slot * r + r));
    const anchor = this.cols.anchor[slot]!;
    for (let back = 0; back < levels.length; back++) {
      const pos = this.ringPos(slot, back);
      this.ring[pos] = ringEntry(levels[back]! - anchor, (this.ring[pos]! & 1) === 1);
    }
    try {
      return fn();
    } finally {
      this.ring.set(saved.subarray(0, r), slot * r);
    }
  }

  /**
   * A long climb (see `longClimb`): flagged when the series climbed day after day since the day
   * three days back, further than its peers' healthy series climb in as long, and further than
   * it wanders itself, with no VMs come or gone that could have made the climb. Its interval
   * starts as far back as the ring reaches. `climb`: the series' `climbOf` in this window.
   */
  private judgeClimb(
    slot: number,
    now: number,
    z: number,
    levelNoise: number,
    ageHours: number,
    climb: Climb | undefined,
  ): Verdict | undefined {
    const cfg = this.config;
    if (climb === undefined) {
      // For `resin explain`: said once the series has its older days (a detector that has not
      // watched it for four days yet has nothing to say).
      const c = this.cols;
      if (c.dayA[slot] !== DAY_NONE && c.dayB[slot] !== DAY_NONE)
        return this.reject(slot, now, "no long climb: restarted or reset in four days");
      return undefined;
    }
    const coarse = this.fineOf[this.cols.fine[slot]!]!;
    const bar = this.coarseClimb[coarse];
    if (bar === undefined || climb.s < bar) return this.reject(slot, now, "long climb too small");
    // In a component that follows (or may follow) the VM count, a climb over days in which the
    // host's VMs came or went may be the VMs': over days, what the stitching took out or left in
    // adds up (a kernel pool that held while its host's VMs left climbs net of them), and
    // memory per VM is not learned in a component whose hosts rarely see VMs come or go. Moved:
    // a VM count now other than at the end of the day before yesterday, or a stitched window
    // in the ring.
    const reach = this.cols.ringLen[slot]! - 1;
    if (this.followsVms(coarse) && (climb.vmsMoved || this.stitchesIn(slot, reach) > 0))
      return this.reject(slot, now, "long climb with VM changes");
    // Day after day at a pace (see `climbStepShare`). The steps are read only now: most series
    // fail on the bar, and each step is another median over a day of levels.
    this.climbSteps(slot, now, climb);
    const small = Math.min(climb.d1, climb.d2, climb.d3);
    if (small < cfg.climbStepShare * Math.max(climb.d1, climb.d2, climb.d3))
      return this.reject(slot, now, "long climb not day after day");
    if (cfg.wanderSigmas > 0) {
      const wander = this.ownWander(slot, reach, ageHours);
      if (wander !== undefined && climb.s < cfg.wanderSigmas * wander)
        return this.reject(slot, now, "long climb within its own wander");
    }
    return this.describe(slot, now - reach * this.hourMs, z, levelNoise);
  }

  /**
   * The long climb of a series at window `now`, or undefined when it has no clean one to judge:
   * the climb `s` of its last 24 hours' level over the calendar day three days back (its daily
   * steps are filled in by `climbSteps`); `vmsMoved`: the host's VM count now differs from its
   * count at the end of the day before yesterday (or either is unknown). Clean: both older days
   * kept, and no restart (nor an unstitched VM change) since the oldest began; else, with
   * `climbAfterRestart`, `short`: two days from the day before yesterday (`s` over it), if it
   * began six hours after the restart.
   */
  private climbOf(slot: number, now: number, ageHours: number): Climb | undefined {
    const c = this.cols;
    const a = c.dayA[slot]!;
    const b = c.dayB[slot]!;
    if (a === DAY_NONE) return undefined;
    const dayMs = 24 * this.hourMs;
    const today = Math.floor(now / dayMs) * dayMs;
    const oldest = today - 3 * dayMs;
    const reset = Math.max(c.resetMs[slot]!, now - ageHours * this.hourMs);
    // After a restart (or a reset) in those days, two days from the day before yesterday, if it
    // began six hours after it (past most of a warm-up).
    const short = b === DAY_NONE || reset > oldest;
    if (short && (!this.config.climbAfterRestart || reset > today - 2 * dayMs - 6 * this.hourMs))
      return undefined;
    // Yesterday: its levels are `into + 1` to `into + 24` back (`into`: windows into today).
    const into = Math.round((now - today) / this.hourMs);
    if (c.ringLen[slot]! - 1 < into + 24) return undefined;
    const anchor = c.anchor[slot]!;
    const last = this.medianOfLevels(slot, 0, 23, NO_SHIFT);
    const out = climbScratch;
    out.short = short;
    out.last = last;
    out.s = last - (anchor + (short ? a : b) / RING_SCALE);
    const vmsB = c.vmsB[slot]!;
    const vms = c.lastVms[slot]!;
    out.vmsMoved = vmsB === VMS_NONE || vms < 0 || Math.min(254, Math.round(vms)) !== vmsB;
    return out;
  }

  /**
   * Fills in the three daily steps of the series' `climb` (its `climbOf` in window `now`): `d1`,
   * the day before yesterday over that day; `d2`, yesterday over the day before; `d3`, the last
   * 24 hours over the 24 before them, which a step more than a day old is in both of. A `short`
   * climb has two days: `d1` = `d2`.
   */
  private climbSteps(slot: number, now: number, climb: Climb): void {
    const c = this.cols;
    const dayMs = 24 * this.hourMs;
    const today = Math.floor(now / dayMs) * dayMs;
    // Yesterday: its levels are `into + 1` to `into + 24` back (`into`: windows into today).
    const into = Math.round((now - today) / this.hourMs);
    const dayA = c.anchor[slot]! + c.dayA[slot]! / RING_SCALE;
    const yesterday = this.medianOfLevels(slot, into + 1, into + 24, NO_SHIFT);
    climb.d2 = yesterday - dayA;
    climb.d1 = climb.short ? climb.d2 : dayA - (c.anchor[slot]! + c.dayB[slot]! / RING_SCALE);
    climb.d3 = climb.last - this.medianOfLevels(slot, 24, 47, NO_SHIFT);
  }

  /**
   * At a series' first window of a day (24 windows from midnight UTC), keeps the levels of the
   * two days before yesterday: the ring is about to lose them (see `longClimb`). Called before
   * the window's level is in the ring, so that the ring holds all of the older of them.
   */
  private rollDays(slot: number, now: number): void {
    const c = this.cols;
    const dayMs = 24 * this.hourMs;
    const last = c.lastMs[slot]!;
    const day = Math.floor(now / dayMs);
    const lastDay = Math.floor(last / dayMs);
    if (day === lastDay) return;
    const beforeYesterday = this.storedDayLevel(slot, last, (day - 2) * dayMs);
    const consecutive = lastDay === day - 1;
    c.dayB[slot] = consecutive ? c.dayA[slot]! : this.storedDayLevel(slot, last, (day - 3) * dayMs);
    c.dayA[slot] = beforeYesterday;
    c.vmsB[slot] = consecutive ? c.vmsA[slot]! : VMS_NONE;
    const vms = c.lastVms[slot]!;
    c.vmsA[slot] = vms < 0 ? VMS_NONE : Math.min(254, Math.round(vms));
  }

  /**
   * The level of the day that starts at `dayStart` (its levels' median), stored as `dayA` is,
   * from the ring whose newest level is of window `newest`; DAY_NONE when the ring holds fewer
   * than half of the day.
   */
  private storedDayLevel(slot: number, newest: number, dayStart: number): number {
    const hourMs = this.hourMs;
    const from = Math.max(0, Math.round((newest - (dayStart + 23 * hourMs)) / hourMs));
    const to = Math.min(this.cols.ringLen[slot]! - 1, Math.round((newest - dayStart) / hourMs));
    if (to - from + 1 < 12) return DAY_NONE;
    const rel = this.medianOfLevels(slot, from, to, NO_SHIFT) - this.cols.anchor[slot]!;
    return Math.max(-32767, Math.min(32767, Math.round(rel * RING_SCALE)));
  }

  /**
   * How much wider than the typical healthy series the widest of `n` is, relative to a group of
   * `peerDayRefSeries`: sqrt(ln n / ln ref) for n above it, else 1 (the widest of n healthy
   * series wobbles about sqrt(2 ln n) of the typical one).
   */
  private peerSpread(n: number): number {
    const ref = this.config.peerDayRefSeries;
    return ref > 1 && n > ref ? Math.sqrt(Math.log(n) / Math.log(ref)) : 1;
  }

  /**
   * A series' day-over-day wobble as the "above yesterday" check reads it: its own, learned from
   * its falls, but at least its peers' floor (see `coarseDayFloor`).
   */
  private daySigma(slot: number): number {
    if (this.floorDaySigma !== undefined) return this.floorDaySigma;
    const c = this.cols;
    const own = Math.max(c.sig24[slot]!, this.config.noiseFloor);
    const floor = this.coarseDayFloor[this.fineOf[c.fine[slot]!]!];
    return floor === undefined ? own : Math.max(own, floor);
  }

  /** The id of a version string (see `versionIds`). */
  private versionId(version: string): number {
    let id = this.versionIds.get(version);
    if (id === undefined) {
      id = this.versionIds.size + 1;
      this.versionIds.set(version, id);
    }
    return id;
  }

  /** Windows ("hours") since the series' process started (since it was first seen, without a start time). */
  private ageHoursOf(info: SeriesInfo, now: number): number {
    return (now - (info.startedAt ?? info.firstTs)) / this.hourMs;
  }

  /**
   * A series' version cohort (see `cohorts`), or undefined when it is in none: it is a member
   * when its process restarted into a new version of the component within the ring's reach.
   */
  private cohortOf(slot: number, info: SeriesInfo, now: number): number | undefined {
    const c = this.cols;
    if (c.upgraded[slot] !== 1) return undefined;
    if (this.ageHoursOf(info, now) >= this.config.ringHours) return undefined;
    return this.versionKey(slot);
  }

  /** The key of a series' component (coarse group) and version (see `COHORT_KEY`). */
  private versionKey(slot: number): number {
    return this.fineOf[this.cols.fine[slot]!]! * COHORT_KEY + this.cols.version[slot]!;
  }

  /** The state of a series' version cohort when the cohort leaks: it passed in its last window and in enough recent ones. */
  private leakingCohortOf(
    slot: number,
    info: SeriesInfo,
    now: number,
  ): { start: number; growth: number } | undefined {
    const key = this.cohortOf(slot, info, now);
    const cohort = key === undefined ? undefined : this.cohortState.get(key);
    if (cohort === undefined || (cohort.passes & 1) === 0) return undefined;
    return bitCount(cohort.passes) >= this.config.confirmWindows ? cohort : undefined;
  }

  private inLeakingCohort(slot: number, now: number): boolean {
    // Most series are in no cohort: no identity lookup for them (this runs for every series).
    if (this.cols.upgraded[slot] !== 1) return false;
    const info = this.seriesInfo(slot);
    return info !== undefined && this.leakingCohortOf(slot, info, now) !== undefined;
  }

  /**
   * Judges the version cohorts of this window (see `cohorts`): the series whose process restarted
   * into a new version of the component within the ring's reach, grouped by component, process
   * and version, each with the ring's history (its predecessors' included).
   */
  private judgeCohorts(w: ClosedWindow): void {
    const c = this.cols;
    const cfg = this.config;
    // Day-over-day changes reach back 24 hours and 2 more for the smoothing.
    const reach = (slot: number) => Math.min(c.ringLen[slot]! - 27, 21);
    const groups = new Map<number, number[]>();
    for (const slot of w.slots) {
      if (c.lastMs[slot] !== w.start || c.upgraded[slot] !== 1 || reach(slot) < cfg.minHours) continue;
      const key = this.cohortOf(slot, this.seriesInfo(slot)!, w.start);
      if (key === undefined) continue;
      const members = groups.get(key);
      if (members === undefined) groups.set(key, [slot]);
      else members.push(slot);
    }
    const judged = new Set<number>();
    const common = this.tooCommon(w, groups);
    for (const [key, slots] of groups) {
      if (slots.length < cfg.minCohort) continue;
      // A version on (nearly) all of its component's hosts is what their common mode follows: the
      // levels it is judged on are read against it, and its growth is the groups' (`cohortMaxShare`).
      if (common.has(key)) continue;
      judged.add(key);
      // Not while hosts are still joining (a deploy in progress): no pass, and nothing to judge.
      let joins = this.cohortJoins.get(key);
      if (joins === undefined || slots.length > joins.most) {
        joins = { most: slots.length, since: w.start };
        this.cohortJoins.set(key, joins);
      }
      const settled = w.start - joins.since >= cfg.cohortSettleHours * this.hourMs;
      let hours = Number.POSITIVE_INFINITY;
      for (const slot of slots) hours = Math.min(hours, reach(slot));
      const found = settled ? this.cohortGrowthOf(slots, hours, w.start) : undefined;
      const prev = this.cohortState.get(key);
      const passes = (((prev?.passes ?? 0) << 1) | (found === undefined ? 0 : 1)) & 7;
      // Start and growth are read only while the newest window passed (see `leakingCohortOf`).
      if (passes === 0) this.cohortState.delete(key);
      else this.cohortState.set(key, { passes, start: found?.start ?? 0, growth: found?.growth ?? 0 });
    }
    for (const key of this.cohortJoins.keys()) if (!groups.has(key)) this.cohortJoins.delete(key);
    for (const [key, state] of this.cohortState) {
      if (judged.has(key)) continue;
      state.passes = (state.passes << 1) & 7;
      if (state.passes === 0) this.cohortState.delete(key);
    }
  }

  /**
   * The cohorts (of those big enough to be judged) whose version runs on more than
   * `cohortMaxShare` of their component's series reporting in this window. Most windows have no
   * cohort to judge: no pass over the window then.
   */
  private tooCommon(w: ClosedWindow, cohorts: Map<number, number[]>): Set<number> {
    const cfg = this.config;
    const running = new Map<number, number>();
    const reporting = new Map<number, number>();
    for (const [key, slots] of cohorts) {
      if (slots.length < cfg.minCohort) continue;
      running.set(key, 0);
      reporting.set(Math.floor(key / COHORT_KEY), 0);
    }
    const common = new Set<number>();
    if (running.size === 0) return common;
    for (const slot of w.slots) {
      if (this.cols.lastMs[slot] !== w.start) continue;
      const key = this.versionKey(slot);
      const coarse = Math.floor(key / COHORT_KEY);
      const seen = reporting.get(coarse);
      if (seen === undefined) continue;
      reporting.set(coarse, seen + 1);
      const n = running.get(key);
      if (n !== undefined) running.set(key, n + 1);
    }
    for (const [key, n] of running)
      if (n > cfg.cohortMaxShare * reporting.get(Math.floor(key / COHORT_KEY))!) common.add(key);
    return common;
  }

  /**
   * A member of a version cohort that grows like a leak (see `cohorts`): flagged when its own
   * level grew, since the cohort's growth began `hours` back (or its restart, if later), by more
   * than twice its noise and `minRelGrowth`, by a third to three times the cohort's growth, and
   * stands above the same hours yesterday.
   */
  private judgeMember(
    slot: number,
    now: number,
    z: number,
    levelNoise: number,
    hours: number,
    cohortGrowth: number,
  ): Verdict | undefined {
    const c = this.cols;
    const cfg = this.config;
    const back = Math.min(hours, c.ringLen[slot]! - 1, Math.floor((now - c.resetMs[slot]!) / this.hourMs));
    if (back < cfg.minHours || c.ringLen[slot]! - 1 < 26)
      return this.reject(slot, now, "cohort leaks; too soon");
    // The level without a burst or a sawtooth top: the last three hours' median, never above now.
    const level = this.heldLevel(slot, true, z);
    const growth = level - this.smoothAt(slot, back);
    // Hosts of a version leak at paces that differ with their load, but not tenfold. Growth far
    // below the cohort's is a host the leak spares (its workload does not reach the leaking
    // code), or noise; far beyond it, something else on top (a burst), which would end and
    // resolve the suspect. The host's own evidence decides then.
    const small = Math.max(2 * levelNoise, cfg.minRelGrowth, cohortGrowth / 3);
    const ownGrowth = growth >= small;
    if (!ownGrowth && !this.growsAgainstYesterday(slot, level, back, small))
      return this.reject(slot, now, "cohort leaks; own growth too small");
    if (growth > 3 * cohortGrowth + 2 * levelNoise)
      return this.reject(slot, now, "cohort leaks; own growth beyond the cohort's");
    if (level - this.smoothAt(slot, 24) < Math.max(c.sig24[slot]!, cfg.noiseFloor))
      return this.reject(slot, now, "cohort leaks; not above yesterday");
    const start = now - back * this.hourMs;
    return ownGrowth
      ? this.describe(slot, start, z, levelNoise)
      : this.describeAgainstYesterday(slot, start, back, levelNoise);
  }

  /**
   * `describe` for a series whose growth shows against the day before, not in its levels (see
   * `memberDayOverDay`): its pattern, pace and severity read from its last `back` levels, each
   * lowered by how far the same hour yesterday stood above yesterday's level at the interval's
   * start (both smoothed), in place in the ring while `describe` reads them. Read from the levels
   * themselves, a leak that its daily curve hides opened with no growth and the least severity.
   */
  private describeAgainstYesterday(slot: number, start: number, back: number, levelNoise: number): Verdict {
    const { levels } = floorScratch;
    levels.length = 0;
    const base = this.smoothAt(slot, back + 24);
    for (let b = 0; b <= back; b++) levels.push(this.ringAt(slot, b) - (this.smoothAt(slot, b + 24) - base));
    return this.withLevels(slot, levels, () => this.describe(slot, start, levels[0]!, levelNoise));
  }

  /**
   * Whether the series' day-over-day change grew over the last `back` windows (`level` now) by
   * `bar` and twice its day-over-day wobble (see `memberDayOverDay`): a daily curve of its own,
   * deeper or at another hour than its peers', is left in its level net of their common mode,
   * and can hide a leak's first hours there; against the same hours of the day before it
   * cancels. Not when the ring does not reach a day behind `back`.
   */
  private growsAgainstYesterday(slot: number, level: number, back: number, bar: number): boolean {
    const c = this.cols;
    if (!this.config.memberDayOverDay || c.ringLen[slot]! - 1 < back + 26) return false;
    const dayGrowth =
      level - this.smoothAt(slot, 24) - (this.smoothAt(slot, back) - this.smoothAt(slot, back + 24));
    return dayGrowth >= Math.max(bar, 2 * c.sig24[slot]!);
  }

  /**
   * How far the series' level falls over `hours` windows, as a standard deviation (see
   * `wanderSigmas`): from the falls among all its changes over that many windows in its ring,
   * within its own life (undefined when no lag down to 1 has `wanderMinFalls` of them). Falls only: a
   * leak only ever rises, so its own growth does not raise the bar it must clear, while a series
   * that wanders (load, caches, a slow random walk back and forth) falls as often as it rises.
   */
  private ownWander(slot: number, hours: number, ageHours: number): number | undefined {
    const reach = Math.min(this.cols.ringLen[slot]! - 1, Math.floor(ageHours));
    if (reach < 1) return undefined;
    // Levels oldest first, through a 5-hour running median (as the interval's fit sees them).
    const raw = wanderScratch.raw;
    raw.length = 0;
    for (let back = reach; back >= 0; back--) raw.push(this.ringAt(slot, back));
    return this.wanderOf(runningMedian5(raw, wanderScratch.smooth), hours, reach);
  }

  /**
   * Whether an interval within its own wander (its fit grew `fitGrowth`; `bar`: its growth bar)
   * outgrows it against the day before (see `wanderDayOverDay`). The series' day-over-day change
   * (`dayChangeAt`), through a 5-hour running median, is fitted from its lowest point within the
   * series' life in the ring (which holds a day of such changes less 3 hours), at least
   * `minHours` back. The growth both readings agree on (the smaller: a day-over-day change also
   * rises where the same hours of the day before fell, a dip or a burst's end, not only where
   * the level rose) must clear `bar`, `minRelGrowth` and `wanderSigmas` of how far that change
   * wanders over as many hours (see `ownWander`; too few falls, as in a leak's first day, when it
   * only rises, leave `dayWander`), and no hour, nor two rising in a row (see `risesTwice`), may
   * carry more than `maxStepShare` of its growth.
   */
  private outgrowsWanderAgainstYesterday(
    slot: number,
    ageHours: number,
    fitGrowth: number,
    bar: number,
  ): boolean {
    const cfg = this.config;
    const minHours = cfg.minHours;
    const reach = Math.min(this.cols.ringLen[slot]! - 27, Math.floor(ageHours));
    if (reach < minHours) return false;
    const raw = wanderScratch.raw;
    raw.length = 0;
    for (let back = reach; back >= 0; back--) raw.push(this.dayChangeAt(slot, back));
    const smooth = runningMedian5(raw, wanderScratch.smooth);
    let low = 0;
    for (let k = 1; k <= reach - minHours; k++) if (smooth[k]! < smooth[low]!) low = k;
    const { ts, zs } = dayFitScratch;
    ts.length = 0;
    zs.length = 0;
    let maxStep = 0;
    for (let k = low; k <= reach; k++) {
      ts.push(k);
      zs.push(smooth[k]!);
      if (k > low) maxStep = Math.max(maxStep, raw[risesTwice(raw, k) ? k + 1 : k]! - raw[k - 1]!);
    }
    const hours = reach - low;
    const growth = new SimpleLinearRegression(ts, zs).slope * hours;
    const agreed = Math.min(fitGrowth, growth);
    const wander = Math.max(this.wanderOf(smooth, hours, reach) ?? 0, this.dayWander(slot));
    return (
      agreed >= bar &&
      agreed >= cfg.minRelGrowth &&
      agreed >= cfg.wanderSigmas * wander &&
      maxStep <= cfg.maxStepShare * growth
    );
  }

  /** The series' level `back` hours back less the smoothed level of the same hour the day before. */
  private dayChangeAt(slot: number, back: number): number {
    return this.ringAt(slot, back) - this.smoothAt(slot, back + 24);
  }

  /**
   * How far a series' day-over-day change falls over many hours, as a standard deviation, from its
   * day-over-day wobble (`daySigma`, a mean fall: 0.8 of a standard deviation): √2 of that
   * change's spread, as two of its values hours apart are.
   */
  private dayWander(slot: number): number {
    return (Math.SQRT2 * this.daySigma(slot)) / 0.798;
  }

  /** `ownWander` over `levels` (oldest first, `reach + 1` of them, smoothed). */
  private wanderOf(levels: readonly number[], hours: number, reach: number): number | undefined {
    const falls = wanderScratch.falls;
    // A series wanders at least as far in more hours as in fewer, while a long lag in a short
    // history has few falls, and few falls may all be small: the widest of the lags `hours`,
    // half of it, a quarter and so on, each from enough falls.
    let widest: number | undefined;
    for (let lag = Math.min(hours, reach); lag >= 1; lag = Math.floor(lag / 2)) {
      falls.length = 0;
      for (let k = lag; k < levels.length; k++) {
        const d = levels[k]! - levels[k - lag]!;
        if (d < 0) falls.push(-d);
      }
      if (falls.length < this.config.wanderMinFalls) continue;
      const sd = sdFromFalls(falls);
      if (widest === undefined || sd > widest) widest = sd;
    }
    return widest;
  }

  /** Where a cohort's growth began and how much it grew (see `cohortGrowthStart`), over `hours` of its members' history. */
  private cohortGrowthOf(slots: readonly number[], hours: number, now: number): CohortGrowth | undefined {
    const c = this.cols;
    const cfg = this.config;
    const members: CohortMember[] = slots.map((slot) => {
      const z = new Float64Array(hours + 1);
      const d = new Float64Array(hours + 1);
      for (let b = 0; b <= hours; b++) {
        z[b] = this.ringAt(slot, b);
        d[b] = this.dayChangeAt(slot, b);
      }
      const noise = Math.max(c.noise[slot]!, cfg.noiseFloor) / Math.SQRT2;
      const age = Math.floor(this.ageHoursOf(this.seriesInfo(slot)!, now));
      return { z, d, noise, sig24: Math.max(c.sig24[slot]!, cfg.noiseFloor), age };
    });
    return cohortGrowthStart(members, {
      sigmas: cfg.cohortSigmas,
      minRelGrowth: cfg.minRelGrowth,
      minHours: cfg.minHours,
      maxStepShare: cfg.maxStepShare,
      pace: cfg.youngPace,
      minMembers: cfg.minCohort,
    });
  }

  /** Why a series was not flagged, reported to `trace` (a debugging aid). */
  private reject(slot: number, now: number, reason: string): undefined {
    this.trace?.(this.seriesInfo(slot)!, now, this.floorDaySigma === undefined ? reason : `lows: ${reason}`);
    return undefined;
  }

  /**
   * Hours back to the start of the interval: the minimum of level + drift × hours back. Across
   * stitched windows (see `vmStitch`), the rise to now is weighed against its own noise, which
   * grows with the stitches in between: the most significant rise, not the longest.
   */
  private startAt(slot: number, z: number, maxBack: number, drift: number): number {
    let minBack = 0;
    let best = 0;
    // Walks the ring by position (see `olderPos`): this runs for every series in every window.
    const anchor = this.cols.anchor[slot]!;
    const base = slot * this.config.ringHours;
    const cost = this.config.stitchVariance;
    let pos = this.ringPos(slot, 0);
    let stitches = 0;
    let scale = 1;
    for (let back = 1; back <= maxBack; back++) {
      // The entry at `back - 1` says whether the change into it was stitched.
      if ((this.ring[pos]! & 1) === 1) {
        stitches++;
        scale = 1 / Math.sqrt(1 + cost * stitches);
      }
      pos = this.olderPos(pos, base);
      const rise = (z - (anchor + levelOf(this.ring[pos]!) + drift * back)) * scale;
      if (rise > best) {
        best = rise;
        minBack = back;
      }
    }
    return minBack;
  }

  private judgeInterval(
    slot: number,
    now: number,
    z: number,
    levelNoise: number,
    ageHours: number,
    hours: number,
    keepPace = false,
  ): Verdict | undefined {
    const c = this.cols;
    const cfg = this.config;
    const minZ = this.ringAt(slot, hours);
    const growth = z - minZ;
    // Each stitched window in the interval took an hour's change out, noise and all: the growth's
    // noise grows with their number (an hour's change has the variance of two levels).
    // (Most series fail on the plain bar already: the ring is walked for stitches only after.)
    let bar = cfg.sigmas * levelNoise;
    if (hours >= cfg.minHours && growth >= bar && cfg.vmStitch)
      bar *= Math.sqrt(1 + cfg.stitchVariance * this.stitchesIn(slot, hours));
    if (hours < cfg.minHours || growth < bar || growth < cfg.minRelGrowth)
      return this.reject(slot, now, "short or small growth");
    if (cfg.minGrowthBytes > 0 && Math.exp(c.lastY[slot]!) * -Math.expm1(-growth) < cfg.minGrowthBytes)
      return this.reject(slot, now, "growth below minGrowthBytes");

    // Linear fit over the interval, the largest single rise, and jumps.
    const ts = this.scratchT;
    const zs = this.scratchZ;
    ts.length = 0;
    zs.length = 0;
    let maxInc = 0;
    let secondInc = 0;
    let lastJumpBack = -1;
    let prev = minZ;
    const jumpAt = cfg.jumpSigmas * levelNoise * Math.SQRT2 * 1.25;
    const anchor = c.anchor[slot]!;
    const base = slot * cfg.ringHours;
    let pos = this.ringPos(slot, hours);
    for (let back = hours; back >= 0; back--, pos = this.newerPos(pos, base)) {
      const v = anchor + levelOf(this.ring[pos]!);
      ts.push(hours - back);
      zs.push(v);
      const inc = v - prev;
      if (inc > maxInc) {
        secondInc = maxInc;
        maxInc = inc;
      } else if (inc > secondInc) secondInc = inc;
      if (inc > jumpAt) lastJumpBack = back;
      prev = v;
    }
    // The fit sees the levels through a 5-hour running median: a burst of an hour or two is not
    // part of the trend (a stair's steps are, a running median keeps edges).
    const smooth = cfg.despikeFit ? runningMedian5(zs, this.scratchS) : zs;
    const fit = new SimpleLinearRegression(ts, smooth);
    const fitGrowth = fit.slope * hours;
    if (fitGrowth < bar || fitGrowth < cfg.minRelGrowth)
      return this.reject(slot, now, "fit growth too small");
    if (this.floorDaySigma !== undefined && fitGrowth < cfg.floorMinGrowth)
      return this.reject(slot, now, "growth below floorMinGrowth");
    if (r2(ts, smooth, fit.slope, fit.intercept) < cfg.minR2)
      return this.reject(slot, now, "not linear (R²)");
    // Growth mostly from one hour is a step, unless a second jump of its kind came too (a spike
    // leak's): the wander next to a tenant's step can add a small jump of its own. A burst's rise
    // is no step (`heldSteps`; read only here: a held rise is never more than the raw one).
    if (maxInc > cfg.maxStepShare * growth) {
      const steps = cfg.heldSteps ? heldRises(zs) : { first: maxInc, second: secondInc };
      if (
        steps.first > cfg.maxStepShare * growth &&
        (steps.second <= jumpAt || steps.second < cfg.secondJumpShare * steps.first)
      )
        return this.reject(slot, now, "one step");
    }
    // Growth made of a few jumps must hold for a while: a burst gives its memory back within
    // hours, a spike leak keeps it. A climb of a jump every hour is no burst (`jumpClimb`), but a
    // warm-up's refill climbs as fast and slows later (left to the young pace test below).
    if (
      this.floorDaySigma === undefined &&
      maxInc + secondInc >= 0.5 * growth &&
      lastJumpBack >= 0 &&
      lastJumpBack < cfg.jumpHoldHours &&
      !(
        cfg.jumpClimb &&
        !keepPace &&
        ageHours - hours >= cfg.warmupHours &&
        climbsByJumps(zs, jumpAt, cfg.secondJumpShare * maxInc)
      )
    ) {
      return this.reject(slot, now, "jump not held yet");
    }
    // The growth the wander tests see: without a lone step (see `loneStepNet`).
    let judged = fitGrowth;
    let risen = Math.min(growth, fitGrowth);
    if (cfg.loneStepNet) {
      // On the levels the fit sees: a burst is no step, it gives its memory back.
      const step = loneStep(smooth, jumpAt, cfg.secondJumpShare);
      if (step !== undefined) {
        for (let k = step.from + 1; k < smooth.length; k++)
          smooth[k] = k < step.to ? smooth[step.from]! : smooth[k]! - step.size;
        judged = new SimpleLinearRegression(ts, smooth).slope * hours;
        risen = Math.min(growth - step.size, judged);
      }
    }
    if (cfg.wanderSigmas > 0) {
      const wander = this.ownWander(slot, hours, ageHours);
      if (
        wander !== undefined &&
        judged < cfg.wanderSigmas * wander &&
        !(cfg.wanderDayOverDay && this.outgrowsWanderAgainstYesterday(slot, ageHours, judged, bar))
      )
        return this.reject(slot, now, "within its own wander");
    }

    // Break out above the levels of the day before the interval (diurnal peaks, sawtooth tops,
    // bursts). Without a day of history, beat the wander that healthy peers show in a day.
    const history = c.ringLen[slot]! - 1 - hours;
    const shift = this.restartShift(slot, ageHours);
    if (c.ringLen[slot]! - 1 >= 24) {
      // Higher than the same hour yesterday by more than the series' own day-over-day wobble.
      // Both ends without bursts: the last three hours' median (never above now) against the
      // smoothed same hour yesterday.
      const dayOverDay = cfg.burstRobust
        ? this.heldLevel(slot, true, z) - this.smoothAt(slot, 24, shift)
        : z - this.shiftedAt(slot, 24, shift);
      const span = cfg.seasonalSpan;
      if (dayOverDay < cfg.seasonalSigmas * this.daySigma(slot)) {
        const spanOk =
          span > 1 &&
          c.heir[slot] !== 0 &&
          c.ringLen[slot]! > 24 + span &&
          Math.min(z, this.spanMedian(slot, 0, span, NO_SHIFT)) - this.spanMedian(slot, 24, span, shift) >=
            cfg.seasonalSigmas * Math.max(c.sig24s[slot]!, cfg.noiseFloor);
        if (!spanOk) return this.reject(slot, now, "not above yesterday");
      }
    }
    if (history >= cfg.breakoutHours) {
      // The third-highest level, not the highest: a burst or two in that day must not raise the bar.
      let top1 = Number.NEGATIVE_INFINITY;
      let top2 = Number.NEGATIVE_INFINITY;
      let top3 = Number.NEGATIVE_INFINITY;
      for (let back = hours + 1; back <= hours + cfg.breakoutHours; back++) {
        const v = cfg.burstRobust ? this.smoothAt(slot, back, shift) : this.shiftedAt(slot, back, shift);
        if (v > top1) {
          top3 = top2;
          top2 = top1;
          top1 = v;
        } else if (v > top2) {
          top3 = top2;
          top2 = v;
        } else if (v > top3) top3 = v;
      }
      if (z <= top3 + 2 * levelNoise) return this.reject(slot, now, "not above the day before");
    } else {
      // The growth as the fit reads it, if less: the rise from the interval's lowest level to now
      // has its start picked at a low of the series' wander, while the peers' daily ranges were
      // not picked so.
      const wander = this.wanderBar(slot);
      const firstDay = now - this.firstMs < 24 * this.hourMs;
      if (risen < (wander ?? (firstDay ? cfg.firstDayWander : cfg.unknownWander)) + 2 * levelNoise)
        return this.reject(slot, now, "below peers' daily wander");
    }

    // A warm-up flattens out: for young series, the second half must keep most of the first half's pace.
    if (ageHours - hours < cfg.warmupHours || keepPace) {
      if (hours < cfg.youngMinHours) return this.reject(slot, now, "young and short");
      const half = Math.floor(hours / 2);
      const first = this.ringAt(slot, hours - half) - minZ;
      const second = z - this.ringAt(slot, hours - half);
      if (second < cfg.youngPace * first) return this.reject(slot, now, "young and slowing (warm-up)");
    }
    return this.describe(slot, now - hours * this.hourMs, z, levelNoise, fit.slope);
  }

  private describe(slot: number, start: number, z: number, levelNoise: number, slope?: number): Verdict {
    const c = this.cols;
    const hours = Math.min(Math.round((c.lastMs[slot]! - start) / this.hourMs), c.ringLen[slot]! - 1);
    const levels: number[] = [];
    for (let back = hours; back >= 0; back--) levels.push(this.ringAt(slot, back));
    const shape = classifyGrowth(levels, Math.max(c.noise[slot]!, this.config.noiseFloor));
    const growth = z - (levels[0] ?? z);
    let increasing = 0;
    for (let k = 1; k < levels.length; k++) if (levels[k]! > levels[k - 1]!) increasing++;
    // RESIN's severity terms: growth against noise, share of increasing hours, duration, size of the growth.
    const severity =
      Math.min(growth / levelNoise, 100) / 5 +
      increasing / Math.max(1, levels.length - 1) +
      hours / 720 +
      sigmoid(growth * 10 - 1);
    const perHour = shape.pattern === "steady" && slope !== undefined ? slope : shape.slopePerHour;
    return {
      start,
      severity: Math.round(severity * 100) / 100,
      pattern: shape.pattern,
      slopePerHour: Math.max(0, shape.pattern === "steady" ? perHour : growth / Math.max(1, hours)),
    };
  }

  /**
   * A restarted process continues its predecessor's level history (same host, component and
   * name): the host's diurnal shape and noise do not change with a restart. The level carries on
   * from where the predecessor was, and the interval cannot reach back past the restart.
   */
  private inherit(slot: number, predecessor: number | undefined, now: number): boolean {
    // A predecessor that has ended is no predecessor any more (the window core forgets it when it
    // releases the slot; its history is then an orphan, see `adopt`), and one no longer tracked
    // here has lastMs −1 (see `removeSeries`).
    if (predecessor === undefined) return false;
    const c = this.cols;
    const r = this.config.ringHours;
    const lastMs = c.lastMs[predecessor]!;
    if (lastMs < 0 || now - lastMs > r * this.hourMs) return false;
    this.continueFrom(slot, this.historyOf(predecessor), now);
    c.settle[slot] = c.settle[predecessor]!;
    this.succeeded.add(predecessor);
    if (lastMs === now) {
      // The predecessor already reported in this window: continue from its value as if an hour before.
      c.lastMs[slot] = now - this.hourMs;
      this.dropNewestLevel(slot);
    }
    return true;
  }

  /**
   * The level `back` hours back through a 5-hour running median (fewer at the ring's ends): a
   * burst of an hour or two is not the level the series was at.
   */
  private smoothAt(slot: number, back: number, shift: RestartShift = NO_SHIFT): number {
    return this.medianOfLevels(slot, Math.max(0, back - 2), back + 2, shift);
  }

  /** The median of `span` levels from `back` hours back and older (as far as the ring reaches). */
  private spanMedian(slot: number, back: number, span: number, shift: RestartShift): number {
    return this.medianOfLevels(slot, back, back + span - 1, shift);
  }

  /**
   * The median of the (shifted) levels `from` to `to` hours back, `to` clipped to the ring.
   * Sorted as they are read (a stable insertion sort, as `sortNumbers` sorts a few values) in a
   * reused typed array: a JS array emptied per call (`length = 0` frees its storage) was ~40 MB
   * of garbage per 1M messages. Levels are finite unless the anchor is NaN, and then all are.
   */
  private medianOfLevels(slot: number, from: number, to: number, shift: RestartShift): number {
    const last = Math.min(to, this.cols.ringLen[slot]! - 1);
    const win = levelScratch;
    const anchor = this.cols.anchor[slot]!;
    const base = slot * this.config.ringHours;
    let pos = this.ringPos(slot, from);
    let n = 0;
    for (let b = from; b <= last; b++, pos = this.olderPos(pos, base), n++) {
      // As `shiftedAt`, by ring position.
      const v = anchor + levelOf(this.ring[pos]!) - (b > shift.since ? shift.drop : 0);
      let i = n - 1;
      for (; i >= 0 && win[i]! > v; i--) win[i + 1] = win[i]!;
      win[i + 1] = v;
    }
    const mid = n >> 1;
    return n % 2 === 1 ? win[mid]! : (win[mid - 1]! + win[mid]!) / 2;
  }

  /** The level `back` hours back, lowered by the restart's drop when it is from before the restart. */
  private shiftedAt(slot: number, back: number, shift: RestartShift): number {
    return this.ringAt(slot, back) - (back > shift.since ? shift.drop : 0);
  }

  /**
   * What the last restart gave back, when the ring still holds levels from before it (a restarted
   * series continues its predecessor's history): `since` is the ring index of the first level of
   * the new life, `drop` the fall from the predecessor's last level to the new life's lowest.
   */
  private restartShift(slot: number, ageHours: number): RestartShift {
    // Only after the restart of a process resin flagged (e.g. resin restarted it): what the
    // restart gave back was then mostly the leak. After an ordinary restart the drop is also the
    // caches and warm-up the new life builds up again, and lowering the day before by it would
    // make every warm-up look like growth.
    if (!this.config.restartShift || this.cols.heir[slot] !== 1) return NO_SHIFT;
    const since = Math.floor(ageHours);
    if (since < 0 || since + 1 > this.cols.ringLen[slot]! - 1) return NO_SHIFT;
    let low = Number.POSITIVE_INFINITY;
    for (let b = 0; b <= since; b++) low = Math.min(low, this.ringAt(slot, b));
    const drop = this.ringAt(slot, since + 1) - low;
    return drop > 0 ? { since, drop } : NO_SHIFT;
  }

  /**
   * The peers' daily range a series' growth must beat (`wanderQuantile` of its component's), or
   * undefined while too few peers have a day of history. The series' own range counts among
   * them once it has a day of history, and a leak's range is its growth: in a small group the
   * high quantile would be the leak itself, and a leak would have to outgrow its own growth. So
   * the value nearest to its own range now (counted the window before) is left out.
   */
  private wanderBar(slot: number): number | undefined {
    const q = this.config.wanderQuantile;
    const c = this.cols;
    const sorted = this.coarseWander[this.fineOf[c.fine[slot]!]!];
    if (sorted === undefined) return undefined;
    if (c.ringLen[slot]! <= 25 || c.suspected[slot] === 1)
      return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    const own = this.dailyRangeOf(slot);
    // The index of the value nearest to `own`.
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]! < own) lo = mid + 1;
      else hi = mid;
    }
    const skip = lo > 0 && (lo === sorted.length || own - sorted[lo - 1]! < sorted[lo]! - own) ? lo - 1 : lo;
    const k = Math.min(sorted.length - 2, Math.floor(q * (sorted.length - 1)));
    return sorted[k < skip ? k : k + 1];
  }

  /**
   * The range of a series' level over the last day, as its peers' daily wander counts it: with
   * `burstRobust`, the range of its 5-hour running median, so bursts that come several times a
   * day (`monitor-agent`'s peers burst to +80% for an hour or two) do not count as wander.
   * Trimming only the two highest and lowest hours, as before, left such a component a bar of
   * 34%.
   */
  private dailyRangeOf(slot: number): number {
    if (!this.config.burstRobust) return this.rangeOf(slot, 0, 24);
    // The day that ended two hours ago: the median at each hour from five full hours around it
    // (at the newest hours a median of three or four is still the burst that is going on).
    const last = Math.min(28, this.cols.ringLen[slot]! - 1);
    const raw = rangeScratch.raw;
    raw.length = last + 1;
    const anchor = this.cols.anchor[slot]!;
    const base = slot * this.config.ringHours;
    let pos = this.ringPos(slot, 0);
    for (let back = 0; back <= last; back++, pos = this.olderPos(pos, base))
      raw[back] = anchor + levelOf(this.ring[pos]!);
    const smooth = runningMedian5(raw, rangeScratch.smooth);
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (let back = 2; back <= Math.min(26, last - 2); back++) {
      const v = smooth[back]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return hi - lo;
  }

  /** max − min of the ring over `hours` hours, starting `from` hours back. */
  private rangeOf(slot: number, from: number, hours: number): number {
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (let back = from; back <= from + hours; back++) {
      const v = this.ringAt(slot, back);
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return hi - lo;
  }

  /**
   * Appends a level; missing hours in between repeat it, so a ring index is hours back.
   * `stitched`: the change into this window went to the VMs (marked on the newest entry only).
   */
  private pushRing(slot: number, z: number, gapHours: number, stitched = false): void {
    const c = this.cols;
    const r = this.config.ringHours;
    const base = slot * r;
    const n = Math.min(gapHours, r);
    for (let k = 0; k < n; k++) {
      c.ringPos[slot] = (c.ringPos[slot]! + 1) % r;
      this.ring[base + c.ringPos[slot]!] = ringEntry(z - c.anchor[slot]!, stitched && k === n - 1);
      if (c.ringLen[slot]! < r) c.ringLen[slot]! += 1;
    }
  }

  /** Stitched windows among the newest `hours` levels (the changes into them went to the VMs). */
  private stitchesIn(slot: number, hours: number): number {
    const base = slot * this.config.ringHours;
    let pos = this.ringPos(slot, 0);
    let n = 0;
    for (let back = 0; back < hours; back++, pos = this.olderPos(pos, base)) n += this.ring[pos]! & 1;
    return n;
  }

  /** The level `back` hours before the newest (0 = newest). */
  private ringAt(slot: number, back: number): number {
    return this.cols.anchor[slot]! + levelOf(this.ring[this.ringPos(slot, back)]!);
  }

  /**
   * Index in `ring` of the level `back` hours before the newest. Loops over many hours step
   * from it with `olderPos` / `newerPos` instead of a modulo per level (the level is then
   * `anchor + levelOf(ring[pos])`, computed exactly as `ringAt` does).
   */
  private ringPos(slot: number, back: number): number {
    const r = this.config.ringHours;
    return slot * r + ((this.cols.ringPos[slot]! - back + r * 4) % r);
  }

  /** The ring index one hour older than `pos`, in the ring that starts at `base`. */
  private olderPos(pos: number, base: number): number {
    return pos === base ? base + this.config.ringHours - 1 : pos - 1;
  }

  /** The ring index one hour newer than `pos`, in the ring that starts at `base`. */
  private newerPos(pos: number, base: number): number {
    return pos === base + this.config.ringHours - 1 ? base : pos + 1;
  }

  private addSeries(info: SeriesInfo, stream: StreamSnapshot | undefined): void {
    const slot = info.slot;
    const coarseKey = `${info.component}\u0001${info.name}`;
    let coarse = this.coarseIds.get(coarseKey);
    if (coarse === undefined) {
      coarse = this.coarseIds.size;
      this.coarseIds.set(coarseKey, coarse);
    }
    const fineKey = `${coarseKey}\u0001${stream?.region ?? ""}`;
    let fine = this.fineIds.get(fineKey);
    if (fine === undefined) {
      fine = this.fineIds.size;
      this.fineIds.set(fineKey, fine);
      this.fineM.push(0);
      this.fineOf.push(coarse);
    }
    const c = this.cols;
    for (const k of TIME_COLS) c[k][slot] = 0;
    for (const k of FLOAT_COLS) c[k][slot] = 0;
    for (const k of INT_COLS) c[k][slot] = 0;
    for (const k of RING_COLS) c[k][slot] = 0;
    for (const k of DAY_COLS) c[k][slot] = DAY_NONE;
    for (const k of BYTE_COLS) c[k][slot] = 0;
    c.vmsA[slot] = VMS_NONE;
    c.vmsB[slot] = VMS_NONE;
    c.ringPos[slot] = 0;
    c.suspected[slot] = 0;
    c.heir[slot] = 0;
    c.settle[slot] = 0;
    c.upgraded[slot] = 0;
    c.lastMs[slot] = -1;
    c.fine[slot] = fine;
    c.lastVms[slot] = -1;
    c.noise[slot] = this.coarseNoise[coarse] ?? 0.01;
    c.sig24[slot] = this.coarseSig24[coarse] ?? 0.02;
    c.sig24s[slot] = c.sig24[slot]!;
  }

  /** Forgets a series: no level (lastMs −1), as in a slot never used, until a new series takes it. */
  private removeSeries(slot: number): void {
    this.open.delete(slot);
    this.cols.suspected[slot] = 0;
    this.cols.lastMs[slot] = -1;
  }

  private grow(capacity: number): void {
    const old = this.cols as Columns | undefined;
    const next: Record<
      string,
      Float64Array | Float32Array | Int32Array | Uint16Array | Int16Array | Uint8Array
    > = {};
    for (const k of TIME_COLS) next[k] = new Float64Array(capacity);
    for (const k of FLOAT_COLS) next[k] = new Float32Array(capacity);
    for (const k of INT_COLS) next[k] = new Int32Array(capacity);
    for (const k of RING_COLS) next[k] = new Uint16Array(capacity);
    for (const k of DAY_COLS) next[k] = new Int16Array(capacity);
    next.ringPos = new Uint8Array(capacity);
    next.suspected = new Uint8Array(capacity);
    next.heir = new Uint8Array(capacity);
    next.settle = new Uint8Array(capacity);
    next.upgraded = new Uint8Array(capacity);
    for (const k of BYTE_COLS) next[k] = new Uint8Array(capacity);
    // Slots beyond the old capacity have no series: no level yet (see `removeSeries`).
    next.lastMs!.fill(-1);
    if (old !== undefined) for (const k of Object.keys(next)) next[k]!.set(old[k as keyof Columns]);
    const ring = new Int16Array(capacity * this.config.ringHours);
    ring.set(this.ring);
    this.ring = ring;
    this.cols = next as unknown as Columns;
    this.capacity = capacity;
  }

  /** Bytes of detector state per series slot (columns + ring). */
  stateBytesPerSeries(): number {
    return (
      TIME_COLS.length * 8 +
      FLOAT_COLS.length * 4 +
      INT_COLS.length * 4 +
      RING_COLS.length * 2 +
      DAY_COLS.length * 2 +
      BYTE_COLS.length +
      5 +
      this.config.ringHours * 2
    );
  }
}

function r2(xs: number[], ys: number[], slope: number, intercept: number): number {
  let mean = 0;
  for (const y of ys) mean += y;
  mean /= ys.length;
  let ssTot = 0;
  let ssRes = 0;
  for (let i = 0; i < ys.length; i++) {
    const d = ys[i]! - mean;
    const r = ys[i]! - (intercept + slope * xs[i]!);
    ssTot += d * d;
    ssRes += r * r;
  }
  return ssTot > 0 ? 1 - ssRes / ssTot : 0;
}

/** Values per fine peer group, with the coarse group (component, process) as a fallback. */
class PeerMedians {
  private readonly fine = new Map<number, number[]>();
  private readonly coarse = new Map<number, number[]>();

  constructor(private readonly coarseOf: readonly number[]) {}

  add(fineGroup: number, value: number): void {
    pushTo(this.fine, fineGroup, value);
    pushTo(this.coarse, this.coarseOf[fineGroup]!, value);
  }

  /**
   * Median per fine group that has at least `min` values, else its coarse group's if that has.
   * The median is shrunk toward zero by how little its members agree on it (see
   * `coherentMedian`), `sigmasOf(coarse)` standard errors. In a component whose memory follows
   * the VM count, 3: peers that follow their own VM counts move, but not together. Elsewhere 1,
   * the plain James–Stein shrinkage, enough to keep a small or noisy group's median (a GC
   * sawtooth at random phases) out of its members' levels: shrunk by 3, a diurnal common mode
   * was zeroed for hours around its daily crossings of zero, those hours moved when a
   * fleet-wide step lifted the curve, and hosts whose daily curve runs ahead of their region's
   * rose above the same hours yesterday (five `net-proxy` hosts of one region on seed 5173
   * after a 14% config step, three on 5154). Unshrunk, a healthy process of the closed loop's
   * 16-host test fleet was restarted.
   */
  medians(min: number, sigmasOf: (coarse: number) => number, own?: Set<number>): Map<number, number> {
    const coarseMedian = new Map<number, number>();
    for (const [g, values] of this.coarse) {
      if (values.length >= min) coarseMedian.set(g, coherentMedian(values, sigmasOf(g)));
    }
    const out = new Map<number, number>();
    const groups = new Set([...this.fine.keys()]);
    for (let g = 0; g < this.coarseOf.length; g++) if (coarseMedian.has(this.coarseOf[g]!)) groups.add(g);
    for (const g of groups) {
      const values = this.fine.get(g);
      const ownValues = values !== undefined && values.length >= min;
      if (ownValues) own?.add(g);
      const m = ownValues
        ? coherentMedian(values, sigmasOf(this.coarseOf[g]!))
        : coarseMedian.get(this.coarseOf[g]!);
      if (m !== undefined) out.set(g, m);
    }
    return out;
  }
}

/**
 * The median, shrunk toward 0 by how little its members agree on it: nothing left within
 * `sigmas` standard errors (from the MAD) of zero, nearly all of it far beyond. Smooth, so a
 * group's common mode does not flip on and off between windows.
 */
function coherentMedian(values: number[], sigmas: number): number {
  const m = median(values);
  if (m === 0) return 0;
  const deviations = values.map((v) => Math.abs(v - m));
  const se = (1.4826 * median(deviations)) / Math.sqrt(values.length);
  const ratio = (sigmas * se) / Math.abs(m);
  return m * Math.max(0, 1 - ratio * ratio);
}

/**
 * A window's stream snapshots indexed by stream number: every series looks its stream up, and an
 * array sized at once (not filled from empty, which V8 may turn into a dictionary) is cheaper
 * than a Map built per window.
 */
function streamsByNumber(snapshots: readonly StreamSnapshot[]): (StreamSnapshot | undefined)[] {
  let size = 0;
  for (const s of snapshots) size = Math.max(size, s.stream + 1);
  const out = new Array<StreamSnapshot | undefined>(size);
  for (const s of snapshots) out[s.stream] = s;
  return out;
}

function bitCount(bits: number): number {
  let n = 0;
  for (let b = bits; b !== 0; b &= b - 1) n++;
  return n;
}

function orphanKey(info: SeriesInfo): string {
  return `${info.host}\u0001${info.component}\u0001${info.name}`;
}

function pushTo(map: Map<number, number[]>, key: number, value: number): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/**
 * Window of `runningMedian5`, reused: it runs for every candidate interval of every series, and
 * an array per call, or `sort`'s work array, was ~300 MB of garbage per 1M messages replayed.
 */
const median5 = new Float64Array(5);

/** Running median over 5 points (fewer at the ends), into `out`. */
function runningMedian5(values: readonly number[], out: number[]): number[] {
  const n = values.length;
  out.length = n;
  const win = median5;
  for (let k = 0; k < n; k++) {
    // The up to 5 values around k, kept sorted as they are added (a stable insertion sort).
    let m = 0;
    for (let j = Math.max(0, k - 2); j <= Math.min(n - 1, k + 2); j++, m++) {
      const v = values[j]!;
      let i = m - 1;
      for (; i >= 0 && win[i]! > v; i--) win[i + 1] = win[i]!;
      win[i + 1] = v;
    }
    const mid = m >> 1;
    out[k] = m % 2 === 1 ? win[mid]! : (win[mid - 1]! + win[mid]!) / 2;
  }
  return out;
}

/** Scratch of `dailyRangeOf` (module level, as `levelScratch`). */
const rangeScratch = { raw: [] as number[], smooth: [] as number[] };

/**
 * The lows of one series at a time (see `judgeFloor`; `levels` also `describeAgainstYesterday`'s),
 * and its ring while other levels stand in for it (see `withLevels`).
 */
const floorScratch = {
  levels: [] as number[],
  lows: [] as number[],
  falls: [] as number[],
  ring: new Int16Array(256),
};

/** The candidate starts `judgeStarts` tried, for `judge`'s later intervals. */
const startsScratch = { first: 0, second: 0 };

/** `loneStep`'s answer, reused. */
const stepScratch = { from: 0, to: 0, size: 0 };

/** `heldRises`' answer, reused. */
const risesScratch = { first: 0, second: 0 };

/**
 * The two largest rises of `zs` from one index to the next, each counted as far as the next two
 * levels hold it when they give back all but a quarter of it or less (a burst's).
 */
function heldRises(zs: readonly number[]): typeof risesScratch {
  let first = 0;
  let second = 0;
  const last = zs.length - 1;
  for (let k = 1; k <= last; k++) {
    let rise = zs[k]! - zs[k - 1]!;
    if (rise > 0) {
      let low = zs[k]!;
      for (let j = k + 1; j <= k + 2 && j <= last; j++) low = Math.min(low, zs[j]!);
      if (low - zs[k - 1]! < 0.25 * rise) rise = Math.max(0, low - zs[k - 1]!);
    }
    if (rise > first) {
      second = first;
      first = rise;
    } else if (rise > second) second = rise;
  }
  risesScratch.first = first;
  risesScratch.second = second;
  return risesScratch;
}

/** Whether each of the last three rises of `zs` is above `jumpAt` and at least `least`. */
function climbsByJumps(zs: readonly number[], jumpAt: number, least: number): boolean {
  if (zs.length < 4) return false;
  for (let k = zs.length - 3; k < zs.length; k++) {
    const rise = zs[k]! - zs[k - 1]!;
    if (rise <= jumpAt || rise < least) return false;
  }
  return true;
}

/**
 * Whether `zs` rises into index `k` and on into `k + 1`: a step that lands within an hour shows
 * in two hourly levels, the hour it came in holding both sides of it.
 */
function risesTwice(zs: readonly number[], k: number): boolean {
  return k + 1 < zs.length && zs[k]! > zs[k - 1]! && zs[k + 1]! > zs[k]!;
}

/**
 * The largest rise of `zs` into one index or two rising in a row (`risesTwice`), from index
 * `from` to `to`, if it is above `jumpAt` and no other such rise apart from it is both above
 * `jumpAt` and at least `share` of it. Undefined otherwise.
 */
function loneStep(zs: readonly number[], jumpAt: number, share: number): typeof stepScratch | undefined {
  let from = -1;
  let to = -1;
  let size = jumpAt;
  for (let k = 1; k < zs.length; k++) {
    const end = risesTwice(zs, k) ? k + 1 : k;
    const rise = zs[end]! - zs[k - 1]!;
    if (rise > size) {
      size = rise;
      from = k - 1;
      to = end;
    }
  }
  if (from < 0) return undefined;
  for (let k = 1; k < zs.length; k++) {
    if (k > from && k - 1 < to) continue;
    // Two rising windows only when both lie apart from the step.
    const end = (k + 1 <= from || k - 1 >= to) && risesTwice(zs, k) ? k + 1 : k;
    const rise = zs[end]! - zs[k - 1]!;
    if (rise > jumpAt && rise >= share * size) return undefined;
  }
  stepScratch.from = from;
  stepScratch.to = to;
  stepScratch.size = size;
  return stepScratch;
}

/** Scratch of `ownWander` (module level, as `levelScratch`). */
const wanderScratch = { raw: [] as number[], smooth: [] as number[], falls: [] as number[] };

/** The fit of `outgrowsWanderAgainstYesterday` (its own: `judgeInterval`'s fit is still in use). */
const dayFitScratch = { ts: [] as number[], zs: [] as number[] };

/**
 * Levels being sorted by `medianOfLevels`: at most a ring's worth (`ringHours` ≤ 256). Module
 * level, as `median5`, so it is no detector field (a field would go into checkpoints).
 */
const levelScratch = new Float64Array(256);

/** Reused by `climbOf`: read it before the next call. */
const climbScratch = { s: 0, last: 0, d1: 0, d2: 0, d3: 0, vmsMoved: false, short: false };
type Climb = typeof climbScratch;

/**
 * The standard deviation of the falls among `values[back] − values[back + lag]` (newest first,
 * `back + lag` up to `maxBack`), collected in `falls`; undefined with fewer than `minFalls`.
 */
function fallsSd(
  values: readonly number[],
  lag: number,
  maxBack: number,
  falls: number[],
  minFalls: number,
): number | undefined {
  falls.length = 0;
  for (let back = 0; back + lag <= maxBack; back++) {
    const d = values[back]! - values[back + lag]!;
    if (d < 0) falls.push(-d);
  }
  return falls.length < minFalls ? undefined : sdFromFalls(falls);
}

/** The median of three numbers. */
function median3(a: number, b: number, c: number): number {
  return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
}
