import { type Observable, type OperatorFunction, Subject } from "rxjs";
import { finalize, mergeMap, share } from "rxjs/operators";
import { statefulMap } from "../lib/rx.ts";
import {
  assignFields,
  decodeState,
  encodeState,
  type Fields,
  fieldsOf,
  fingerprintOf,
} from "../lib/state.ts";
import {
  type BucketAnomalyConfigInput,
  BucketAnomalyCore,
  type BucketScore,
} from "../operators/bucket-anomaly/index.ts";
import { type BucketCounts, bucketize } from "../operators/bucketize/index.ts";
import { type DeadLetter, type DecodeStats, decodeTelemetry } from "../operators/decode/index.ts";
import {
  type DetectConfigInput,
  type Finding,
  ProcessDetectCore,
  type SeriesLookup,
} from "../operators/process-detect/index.ts";
import { type LifecycleConfigInput, SuspectLifecycle } from "../operators/suspect-lifecycle/index.ts";
import { WindowConfig } from "../operators/window/config.ts";
import {
  type ClosedWindow,
  eventTimeWindows,
  type SeriesInfo,
  type WindowConfigInput,
  WindowCore,
  type WindowStats,
} from "../operators/window/index.ts";
import type { BucketEvidence, SuspectEvent } from "../schemas/suspect.ts";

export interface DetectOptions {
  window?: WindowConfigInput;
  detect?: DetectConfigInput;
  buckets?: BucketAnomalyConfigInput;
  lifecycle?: LifecycleConfigInput;
  /**
   * "none": every process series is analysed (default; a component-level anomaly is attached as
   * evidence when there is one). "bucket": RESIN's original gating, only hosts behind an
   * anomalous bucket can open a suspect.
   */
  gate?: "none" | "bucket";
  /**
   * Close the windows still open when the input ends (default). False leaves them open, as a
   * live pipeline does until more telemetry arrives: `resin replay --no-flush` matches `resin run`.
   */
  flushAtEnd?: boolean;
  /** Told why each candidate interval of each series was rejected (for `resin explain`). */
  trace?: (info: SeriesInfo, windowStart: number, reason: string) => void;
}

/** Counters of everything the pipeline saw, dropped or produced. */
export interface PipelineStats {
  decode: DecodeStats;
  window: WindowStats;
  windows: number;
  trackedSeries: number;
  openSuspects: number;
  suspectEvents: number;
}

/** Everything one closed window produced. */
export interface WindowResult {
  window: ClosedWindow;
  counts: BucketCounts[];
  scores: BucketScore[];
  events: SuspectEvent[];
}

/** Configuration, derived constants and callbacks of the process detector: not state. */
const PROCESS_SKIP = ["config", "seriesInfo", "trace", "noiseDecay", "baseDecay", "groups", "hourMs"];

/**
 * The stages after windowing, as one synchronous step per closed window: level 1 (bucketize,
 * bucket anomaly), level 2 (process-level detection), and the suspect lifecycle.
 */
export class DetectionStage {
  private readonly process: ProcessDetectCore;
  private readonly anomaly: BucketAnomalyCore;
  private readonly lifecycle: SuspectLifecycle;
  /** Recent anomalous buckets per component/process, newest last, kept for a day. */
  private readonly recentAnomalies = new Map<string, BucketScore[]>();
  /** One window, ms: the detector's "hour" (time may be scaled down for tests and demos). */
  private readonly windowMs: number;

  /**
   * `seriesInfo` resolves the series slots of the windows passed to `step` (the window core's
   * `seriesInfo`): the stage keeps no identity of its own.
   */
  constructor(
    seriesInfo: SeriesLookup,
    private readonly options: DetectOptions = {},
  ) {
    const windowMs = WindowConfig.parse(options.window ?? {}).windowMs;
    this.windowMs = windowMs;
    this.process = new ProcessDetectCore(seriesInfo, options.detect, windowMs);
    this.process.trace = options.trace;
    this.anomaly = new BucketAnomalyCore(options.buckets);
    this.lifecycle = new SuspectLifecycle(options.lifecycle, windowMs);
  }

  get openSuspects(): number {
    return this.lifecycle.open;
  }

  /** Everything the stage knows, as plain data for a checkpoint (see lib/state.ts). */
  captureState(): Fields {
    return {
      process: fieldsOf(this.process, PROCESS_SKIP),
      groups: fieldsOf(this.process.groups, ["config"]),
      anomaly: fieldsOf(this.anomaly, ["config", "bounds"]),
      lifecycle: fieldsOf(this.lifecycle, ["config", "hourMs"]),
      recentAnomalies: this.recentAnomalies,
    };
  }

  /** Restores `captureState()` output into a fresh stage made with the same options. */
  restoreState(fields: Fields): void {
    assignFields(this.process, fields.process as Fields, PROCESS_SKIP);
    assignFields(this.process.groups, fields.groups as Fields, ["config"]);
    assignFields(this.anomaly, fields.anomaly as Fields, ["config", "bounds"]);
    assignFields(this.lifecycle, fields.lifecycle as Fields, ["config", "hourMs"]);
    assignFields(this, { recentAnomalies: fields.recentAnomalies });
  }

  get stateBytesPerSeries(): number {
    return this.process.stateBytesPerSeries();
  }

  step(w: ClosedWindow): WindowResult {
    let findings = this.process.process(w);
    const counts = bucketize(w, (slot) => this.process.infoOf(slot));
    const scores = this.anomaly.score(counts);
    this.remember(w.end, scores);
    if (this.options.gate === "bucket")
      findings = findings.filter((f) => !f.flagged || this.bucketFor(f) !== undefined);
    const events = this.lifecycle.step(
      w.end,
      findings,
      w.ended,
      (slot, now) => this.process.suspectHealth(slot, now),
      (slot, on, start) => this.process.setSuspected(slot, on, start),
      (f) => this.bucketFor(f),
    );
    this.process.release(w);
    return { window: w, counts, scores, events };
  }

  private remember(now: number, scores: readonly BucketScore[]): void {
    for (const s of scores) {
      if (!s.anomalous) continue;
      const key = `${s.component}\u0001${s.process}`;
      const list = this.recentAnomalies.get(key);
      if (list === undefined) this.recentAnomalies.set(key, [s]);
      else list.push(s);
    }
    for (const [key, list] of this.recentAnomalies) {
      const fresh = list.filter((s) => now - s.start <= 24 * this.windowMs);
      if (fresh.length === 0) this.recentAnomalies.delete(key);
      else this.recentAnomalies.set(key, fresh);
    }
  }

  /** The largest recent anomalous bucket of the finding's component that its process reached. */
  private bucketFor(f: Finding): BucketEvidence | undefined {
    const list = this.recentAnomalies.get(`${f.info.component}\u0001${f.info.name}`);
    if (list === undefined) return undefined;
    let best: BucketScore | undefined;
    for (const s of list)
      if (s.lowerBytes <= f.bytes && (best === undefined || s.lowerBytes > best.lowerBytes)) best = s;
    return best === undefined
      ? undefined
      : { lowerBytes: best.lowerBytes, hosts: best.hosts, score: best.score };
  }
}

/**
 * Level 1 + level 2 + lifecycle over closed windows; state per subscription.
 *
 * @example
 * windows$.pipe(detectLeaks()).subscribe((r) => r.events.forEach((e) => console.log(e.id, e.state)));
 */
export function detectLeaks(
  seriesInfo: SeriesLookup,
  options: DetectOptions = {},
  onResult?: (stage: DetectionStage, result: WindowResult) => void,
  create: () => DetectionStage = () => new DetectionStage(seriesInfo, options),
): OperatorFunction<ClosedWindow, WindowResult> {
  return statefulMap(create, (stage, w) => {
    const result = stage.step(w);
    onResult?.(stage, result);
    return result;
  });
}

export interface DetectGraph {
  /** Suspect events, in event-time order (by window, then id). */
  suspects: Observable<SuspectEvent>;
  /** Every closed window's results (bucket counts and scores for the time-series sinks). */
  windows: Observable<WindowResult>;
  deadLetters: Observable<DeadLetter>;
  stats: PipelineStats;
  /** Identity of a series slot in the `windows` result being passed on (valid during its delivery). */
  seriesInfo(slot: number): SeriesInfo | undefined;
  /**
   * The whole detector state (windows, level 1, level 2, lifecycle, counters), encoded for a
   * checkpoint. Call it between input batches, while the graph is subscribed.
   */
  capture(): Uint8Array;
}

/** The settings that shape detector state: a checkpoint restores only under the same ones. */
export function stateFingerprint(options: DetectOptions): string {
  const { window, detect, buckets, lifecycle, gate } = options;
  return fingerprintOf({ window, detect, buckets, lifecycle, gate: gate ?? "none" });
}

interface GraphState {
  stats: PipelineStats;
  window: Fields;
  stage: Fields;
}

/**
 * The detection graph, independent of where telemetry comes from (NATS, a file, the in-process
 * simulator) and of where suspects go. Input: batches of NDJSON lines.
 *
 * @example
 * const g = detectGraph(lineBatches$);
 * g.suspects.subscribe((e) => console.log(JSON.stringify(e)));
 */
export function detectGraph(
  lineBatches: Observable<readonly string[]>,
  options: DetectOptions & {
    /** Start from this checkpoint (from `capture()`) instead of an empty state. */
    restore?: Uint8Array;
  } = {},
): DetectGraph {
  const dead = new Subject<DeadLetter>();
  const stats: PipelineStats = {
    decode: { decoded: 0, invalid: 0 },
    window: { accepted: 0, duplicates: 0, late: 0, samples: 0 },
    windows: 0,
    trackedSeries: 0,
    openSuspects: 0,
    suspectEvents: 0,
  };
  const fingerprint = stateFingerprint(options);
  const restored =
    options.restore === undefined ? undefined : (decodeState(options.restore, fingerprint) as GraphState);
  if (restored !== undefined) {
    Object.assign(stats, restored.stats);
    Object.assign(stats.decode, restored.stats.decode);
  }
  let windowCore: WindowCore | undefined;
  let stage: DetectionStage | undefined;
  // A slot of the window being passed on resolves to the series it means until the window core
  // reads the next batch (see `WindowCore.releaseEnded`).
  const seriesInfo = (slot: number) => windowCore?.seriesInfo(slot);
  const windows = lineBatches.pipe(
    decodeTelemetry(dead, stats.decode),
    eventTimeWindows(
      options.window,
      (core) => {
        windowCore = core;
        stats.window = core.stats;
      },
      () => {
        const core = new WindowCore(options.window);
        if (restored !== undefined) core.restoreState(restored.window);
        return core;
      },
      options.flushAtEnd ?? true,
    ),
    detectLeaks(
      seriesInfo,
      options,
      (s, result) => {
        stats.windows++;
        stats.trackedSeries = windowCore?.trackedSeries ?? 0;
        stats.openSuspects = s.openSuspects;
        stats.suspectEvents += result.events.length;
      },
      () => {
        stage = new DetectionStage(seriesInfo, options);
        if (restored !== undefined) stage.restoreState(restored.stage);
        return stage;
      },
    ),
    finalize(() => dead.complete()),
    share(),
  );
  return {
    suspects: windows.pipe(mergeMap((r) => r.events)),
    windows,
    deadLetters: dead.asObservable(),
    stats,
    seriesInfo,
    capture() {
      if (windowCore === undefined || stage === undefined)
        throw new Error("capture() needs a subscribed detection graph");
      // One serialize call for everything, so objects shared between the cores stay shared.
      const state: GraphState = { stats, window: windowCore.captureState(), stage: stage.captureState() };
      return encodeState(state, fingerprint);
    },
  };
}
