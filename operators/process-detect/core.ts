import type { GrowthPattern, SuspectEvent } from "../../schemas/suspect.ts";
import { KERNEL_COMPONENT } from "../../schemas/telemetry.ts";
import { classifyGrowth } from "../pattern/core.ts";
import type { ClosedWindow, SeriesInfo, StreamSnapshot } from "../window/core.ts";
import { DetectConfig, type DetectConfigInput } from "./config.ts";

const HOUR = 3_600_000;

/** What the detector concluded about one series in one window (before the lifecycle turns it into events). */
export interface Finding {
  slot: number;
  info: SeriesInfo;
  /** Window end: the event time of the decision. */
  at: number;
  start: number;
  severity: number;
  pattern: GrowthPattern;
  growthBytesPerHour: number;
  bytes: number;
  /** True when the evidence is confirmed now; false for a suspect already open (status only). */
  flagged: boolean;
}

type Columns = {
  lastY: Float64Array;
  lastMs: Float64Array;
  z: Float64Array;
  z0: Float64Array;
  lastC: Float64Array;
  noise: Float64Array;
  runMax: Float64Array;
  maxInc: Float64Array;
  st: Float64Array;
  sw: Float64Array;
  stt: Float64Array;
  stw: Float64Array;
  sww: Float64Array;
  t0Ms: Float64Array;
  np: Int32Array;
  nInc: Int32Array;
  nJumps: Int32Array;
  confirms: Int32Array;
  fine: Int32Array;
  coarse: Int32Array;
  lastVms: Int32Array;
  ringPos: Int32Array;
  ringLen: Int32Array;
  suspected: Uint8Array;
};

const FLOAT_COLS = [
  "lastY",
  "lastMs",
  "z",
  "z0",
  "lastC",
  "noise",
  "runMax",
  "maxInc",
  "st",
  "sw",
  "stt",
  "stw",
  "sww",
  "t0Ms",
] as const;
const INT_COLS = [
  "np",
  "nInc",
  "nJumps",
  "confirms",
  "fine",
  "coarse",
  "lastVms",
  "ringPos",
  "ringLen",
] as const;

/** Per-series state of an open suspect: kept only for the few series that are suspected. */
interface OpenSuspect {
  maxZ: number;
  lastGrowthMs: number;
}

/**
 * RESIN's process-level detection, made robust for fleets with hard negatives, as a pure core
 * over closed hourly windows. Each series keeps a log-scale level corrected for its peers'
 * common movement (fleet-wide config changes, diurnal load shared by a region), a moving
 * suspicious interval that restarts at a new low or at a jump explained by a VM-count change,
 * running regression sums over the interval, a robust noise scale, and a short ring of levels.
 * A series is flagged when its interval's growth is significant against its own noise, large
 * enough, linear enough, not carried by a single step, breaks out above its recent history,
 * and is not a decelerating warm-up. State is columnar (typed arrays indexed by series slot).
 */
export class ProcessDetectCore {
  readonly config: DetectConfig;
  private capacity = 0;
  private cols!: Columns;
  private ring = new Float32Array(0);
  private readonly infos: (SeriesInfo | undefined)[] = [];
  private readonly open = new Map<number, OpenSuspect>();
  private readonly fineIds = new Map<string, number>();
  private readonly coarseIds = new Map<string, number>();
  private readonly fineC: number[] = [];
  private readonly fineOf: number[] = [];
  private readonly coarseNoise: number[] = [];
  private readonly noiseDecay: number;

  constructor(config: DetectConfigInput = {}) {
    this.config = DetectConfig.parse(config);
    this.noiseDecay = 1 - 0.5 ** (1 / this.config.noiseHalfLife);
    this.grow(1024);
  }

  /** Marks series as suspected (excluded from the common mode) or not; the lifecycle calls it. */
  setSuspected(slot: number, suspected: boolean): void {
    this.cols.suspected[slot] = suspected ? 1 : 0;
    if (suspected) {
      if (!this.open.has(slot))
        this.open.set(slot, { maxZ: this.cols.z[slot]!, lastGrowthMs: this.cols.lastMs[slot]! });
    } else this.open.delete(slot);
  }

  /** Hours since an open suspect last grew, and how far its level fell back (share of its growth). */
  suspectHealth(slot: number, now: number): { quietHours: number; fallback: number } | undefined {
    const s = this.open.get(slot);
    if (s === undefined) return undefined;
    const c = this.cols;
    const grown = s.maxZ - c.z0[slot]!;
    const fallback = grown > 0 ? (s.maxZ - c.z[slot]!) / grown : 0;
    return { quietHours: (now - s.lastGrowthMs) / HOUR, fallback };
  }

  /** Processes one closed window; returns a finding for each series that is flagged now. */
  process(w: ClosedWindow): Finding[] {
    const c = this.cols;
    const cfg = this.config;
    const streams = new Map<number, StreamSnapshot>();
    for (const s of w.streams) streams.set(s.stream, s);
    for (const info of w.newSeries) this.addSeries(info, streams.get(info.stream));

    // Pass 1: hourly change of each mature, unsuspected series, grouped by peers.
    const n = w.slots.length;
    const ys = new Float64Array(n);
    const fineD = new Map<number, number[]>();
    const coarseD = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const slot = w.slots[i]!;
      const y = Math.log(Math.max(w.values[i]!, 1));
      ys[i] = y;
      if (c.lastMs[slot]! !== w.start - HOUR || c.suspected[slot] === 1) continue;
      if (w.start - this.ageRef(slot) < cfg.youngHours * HOUR) continue;
      const d = y - c.lastY[slot]!;
      pushTo(fineD, c.fine[slot]!, d);
      pushTo(coarseD, c.coarse[slot]!, d);
    }
    const coarseMedian = new Map<number, number>();
    for (const [g, ds] of coarseD) if (ds.length >= cfg.minPeers) coarseMedian.set(g, median(ds));
    const fineStep = new Map<number, number>();
    for (let g = 0; g < this.fineC.length; g++) {
      const ds = fineD.get(g);
      let m: number | undefined;
      if (ds !== undefined && ds.length >= cfg.minPeers) m = median(ds);
      else m = coarseMedian.get(this.fineOf[g]!);
      if (m !== undefined) {
        this.fineC[g]! += m;
        fineStep.set(g, m);
      }
    }

    // Pass 2: per-series level, interval and decision.
    const findings: Finding[] = [];
    const noiseSeen = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const slot = w.slots[i]!;
      const info = this.infos[slot]!;
      const stream = streams.get(info.stream);
      const vms = stream?.vms ?? -1;
      const y = ys[i]!;
      const g = c.fine[slot]!;
      if (c.lastMs[slot]! < 0) {
        c.lastY[slot] = y;
        c.lastMs[slot] = w.start;
        c.lastC[slot] = this.fineC[g]!;
        c.lastVms[slot] = vms;
        this.resetInterval(slot, w.start, 0);
        this.pushRing(slot, 0);
        continue;
      }
      const gapHours = Math.max(1, Math.round((w.start - c.lastMs[slot]!) / HOUR));
      const e = y - c.lastY[slot]! - (this.fineC[g]! - c.lastC[slot]!);
      const z = c.z[slot]! + e;
      const prevVms = c.lastVms[slot]!;
      c.lastY[slot] = y;
      c.lastMs[slot] = w.start;
      c.lastC[slot] = this.fineC[g]!;
      c.lastVms[slot] = vms;
      c.z[slot] = z;

      const noiseE = Math.max(c.noise[slot]!, cfg.noiseFloor);
      // Noise: deviation from the interval's trend, clipped so a leak or a jump cannot inflate it fast.
      const slope = c.np[slot]! >= 4 ? this.slope(slot) : 0;
      const dev = Math.min(Math.abs(e - slope * gapHours) / Math.sqrt(gapHours), 3 * noiseE);
      c.noise[slot] = noiseE + this.noiseDecay * (dev - noiseE);
      pushTo(noiseSeen, c.coarse[slot]!, c.noise[slot]!);
      this.pushRing(slot, z, gapHours);

      const jump = e > cfg.jumpSigmas * noiseE * 1.25;
      const vmsUp = vms >= 0 && prevVms >= 0 && vms > prevVms;
      const vmsDown = vms >= 0 && prevVms >= 0 && vms < prevVms;
      const explained = (jump && vmsUp) || (e < -cfg.jumpSigmas * noiseE * 1.25 && vmsDown);
      if (explained || z <= c.z0[slot]! || w.start - this.ageRef(slot) < cfg.youngHours * HOUR) {
        if (c.suspected[slot] !== 1) this.resetInterval(slot, w.start, z);
      } else {
        const t = (w.start - c.t0Ms[slot]!) / HOUR;
        const wv = z - c.z0[slot]!;
        c.st[slot]! += t;
        c.sw[slot]! += wv;
        c.stt[slot]! += t * t;
        c.stw[slot]! += t * wv;
        c.sww[slot]! += wv * wv;
        c.np[slot]! += 1;
        if (e > 0) c.nInc[slot]! += 1;
        if (jump) c.nJumps[slot]! += 1;
        if (e > c.maxInc[slot]!) c.maxInc[slot] = e;
        if (z > c.runMax[slot]!) c.runMax[slot] = z;
      }

      const openState = this.open.get(slot);
      const levelNoise = noiseE / Math.SQRT2;
      if (openState !== undefined) {
        if (z > openState.maxZ + levelNoise) {
          openState.maxZ = z;
          openState.lastGrowthMs = w.start + HOUR;
        }
        if (z > openState.maxZ) openState.maxZ = z;
      }
      const verdict = this.judge(slot, w.start, z, levelNoise);
      if (verdict === undefined) c.confirms[slot] = 0;
      else c.confirms[slot]! += 1;
      const flagged = verdict !== undefined && c.confirms[slot]! >= cfg.confirmWindows;
      if (!flagged && openState === undefined) continue;
      const evidence = verdict ?? this.describe(slot, z, levelNoise);
      const bytes = w.values[i]!;
      findings.push({
        slot,
        info,
        at: w.end,
        start: c.t0Ms[slot]!,
        severity: evidence.severity,
        pattern: evidence.pattern,
        growthBytesPerHour: Math.round(evidence.slopePerHour * bytes),
        bytes,
        flagged,
      });
    }
    for (const [g, values] of noiseSeen) this.coarseNoise[g] = median(values);
    for (const slot of w.ended) this.removeSeries(slot);
    return findings;
  }

  /** Whether the series' current interval looks like a leak; undefined if not. */
  private judge(slot: number, now: number, z: number, levelNoise: number) {
    const c = this.cols;
    const cfg = this.config;
    const hours = (now - c.t0Ms[slot]!) / HOUR;
    if (hours < cfg.minHours || c.np[slot]! < cfg.minHours) return undefined;
    const growth = z - c.z0[slot]!;
    const slope = this.slope(slot);
    const fitGrowth = slope * hours;
    const significant = Math.min(growth, fitGrowth);
    if (significant < cfg.sigmas * levelNoise || fitGrowth < cfg.minRelGrowth) return undefined;
    if (this.r2(slot) < cfg.minR2) return undefined;
    if (z < c.runMax[slot]! - 2 * levelNoise) return undefined;
    if (c.maxInc[slot]! > cfg.maxStepShare * growth && c.nJumps[slot]! < 2) return undefined;
    if (!this.breaksOut(slot, now, z, levelNoise)) return undefined;
    if (this.decelerates(slot, now, slope)) return undefined;
    return this.describe(slot, z, levelNoise);
  }

  private describe(slot: number, z: number, levelNoise: number) {
    const c = this.cols;
    const levels = this.intervalLevels(slot);
    const shape = classifyGrowth(levels, Math.max(c.noise[slot]!, this.config.noiseFloor));
    const hours = levels.length - 1;
    const growth = z - c.z0[slot]!;
    // RESIN's severity: growth against noise, share of increasing hours, duration, and size.
    const incShare = c.np[slot]! > 0 ? c.nInc[slot]! / c.np[slot]! : 0;
    const severity =
      Math.min(growth / levelNoise, 100) / 5 + incShare + hours / 720 + sigmoid(growth * 10 - 1);
    return {
      severity: Math.round(severity * 100) / 100,
      pattern: shape.pattern,
      slopePerHour: Math.max(0, shape.slopePerHour),
    };
  }

  /** The level must exceed the highest level seen in the hours just before the interval. */
  private breaksOut(slot: number, now: number, z: number, levelNoise: number): boolean {
    const c = this.cols;
    const cfg = this.config;
    const len = c.ringLen[slot]!;
    const intervalHours = Math.round((now - c.t0Ms[slot]!) / HOUR);
    let maxBefore = Number.NEGATIVE_INFINITY;
    for (let back = intervalHours + 1; back <= Math.min(len - 1, intervalHours + cfg.breakoutHours); back++) {
      const v = this.ringAt(slot, back);
      if (v > maxBefore) maxBefore = v;
    }
    return maxBefore === Number.NEGATIVE_INFINITY || z > maxBefore + 2 * levelNoise;
  }

  /** A warm-up flattens out: the last third of the interval grows far slower than the whole. */
  private decelerates(slot: number, now: number, slope: number): boolean {
    const hours = Math.round((now - this.cols.t0Ms[slot]!) / HOUR);
    if (hours < 6 || hours >= this.cols.ringLen[slot]!) return false;
    const third = Math.max(2, Math.round(hours / 3));
    const recent = (this.ringAt(slot, 0) - this.ringAt(slot, third)) / third;
    const young = now - this.ageRef(slot) < (hours + 24) * HOUR;
    return young && recent < 0.3 * slope;
  }

  private intervalLevels(slot: number): number[] {
    const c = this.cols;
    const hours = Math.min(Math.round((c.lastMs[slot]! - c.t0Ms[slot]!) / HOUR), c.ringLen[slot]! - 1);
    const out: number[] = [];
    for (let back = hours; back >= 0; back--) out.push(this.ringAt(slot, back));
    return out;
  }

  private slope(slot: number): number {
    const c = this.cols;
    const n = c.np[slot]!;
    const den = n * c.stt[slot]! - c.st[slot]! * c.st[slot]!;
    return den > 0 ? (n * c.stw[slot]! - c.st[slot]! * c.sw[slot]!) / den : 0;
  }

  private r2(slot: number): number {
    const c = this.cols;
    const n = c.np[slot]!;
    const sxy = n * c.stw[slot]! - c.st[slot]! * c.sw[slot]!;
    const sxx = n * c.stt[slot]! - c.st[slot]! * c.st[slot]!;
    const syy = n * c.sww[slot]! - c.sw[slot]! * c.sw[slot]!;
    return sxx > 0 && syy > 0 ? (sxy * sxy) / (sxx * syy) : 0;
  }

  private resetInterval(slot: number, at: number, z: number): void {
    const c = this.cols;
    c.t0Ms[slot] = at;
    c.z0[slot] = z;
    c.runMax[slot] = z;
    c.maxInc[slot] = 0;
    c.st[slot] = 0;
    c.sw[slot] = 0;
    c.stt[slot] = 0;
    c.stw[slot] = 0;
    c.sww[slot] = 0;
    c.np[slot] = 1;
    c.nInc[slot] = 0;
    c.nJumps[slot] = 0;
  }

  private ageRef(slot: number): number {
    const info = this.infos[slot]!;
    return info.startedAt ?? info.firstTs;
  }

  /** Appends a level; missing hours in between repeat the previous level, so ring index = hours back. */
  private pushRing(slot: number, z: number, gapHours = 1): void {
    const c = this.cols;
    const r = this.config.ringHours;
    const base = slot * r;
    for (let k = 0; k < Math.min(gapHours, r); k++) {
      c.ringPos[slot] = (c.ringPos[slot]! + 1) % r;
      this.ring[base + c.ringPos[slot]!] = z;
      if (c.ringLen[slot]! < r) c.ringLen[slot]! += 1;
    }
  }

  /** The level `back` hours before the newest (0 = newest). */
  private ringAt(slot: number, back: number): number {
    const r = this.config.ringHours;
    return this.ring[slot * r + ((this.cols.ringPos[slot]! - back + r * 4) % r)]!;
  }

  private addSeries(info: SeriesInfo, stream: StreamSnapshot | undefined): void {
    const slot = info.slot;
    if (slot >= this.capacity) this.grow(Math.max(slot + 1, this.capacity * 2));
    this.infos[slot] = info;
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
      this.fineC.push(0);
      this.fineOf.push(coarse);
    }
    const c = this.cols;
    for (const k of FLOAT_COLS) c[k][slot] = 0;
    for (const k of INT_COLS) c[k][slot] = 0;
    c.suspected[slot] = 0;
    c.lastMs[slot] = -1;
    c.fine[slot] = fine;
    c.coarse[slot] = coarse;
    c.lastVms[slot] = -1;
    c.noise[slot] = this.coarseNoise[coarse] ?? 0.01;
  }

  private removeSeries(slot: number): void {
    this.infos[slot] = undefined;
    this.open.delete(slot);
    this.cols.suspected[slot] = 0;
  }

  private grow(capacity: number): void {
    const old = this.cols as Columns | undefined;
    const next = {} as Record<string, Float64Array | Int32Array | Uint8Array>;
    for (const k of FLOAT_COLS) next[k] = new Float64Array(capacity);
    for (const k of INT_COLS) next[k] = new Int32Array(capacity);
    next.suspected = new Uint8Array(capacity);
    if (old !== undefined)
      for (const k of Object.keys(next))
        (next[k] as Float64Array).set(old[k as keyof Columns] as Float64Array);
    const ring = new Float32Array(capacity * this.config.ringHours);
    ring.set(this.ring);
    this.ring = ring;
    this.cols = next as unknown as Columns;
    this.capacity = capacity;
  }

  /** Live series and bytes of state per series (columns + ring), for the memory benchmark. */
  stateBytesPerSeries(): number {
    return FLOAT_COLS.length * 8 + INT_COLS.length * 4 + 1 + this.config.ringHours * 4;
  }

  kindOf(info: SeriesInfo): "process" | "kernel" {
    return info.component === KERNEL_COMPONENT ? "kernel" : "process";
  }
}

function pushTo(map: Map<number, number[]>, key: number, value: number): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

function median(values: number[]): number {
  values.sort((a, b) => a - b);
  const n = values.length;
  const mid = n >> 1;
  return n % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export type { SuspectEvent };
