/**
 * The live pipeline has one `SeriesSink`. A tap passes the pipeline's windows and suspects to a
 * side sink with effects of its own (heap traces, mitigation commands) as well as to the sink it
 * wraps, so sinks compose as a chain (mitigation → snapshots → InfluxDB). The checkpoint keeps
 * only the wrapped sink's state: a side sink keeps its own in NATS KV, because what it did on the
 * hosts must not be rolled back by restoring a checkpoint.
 */
import type { SeriesInfo } from "../operators/window/index.ts";
import type { WindowResult } from "../pipelines/detect.ts";
import type { SeriesSink } from "../pipelines/live.ts";
import type { SuspectEvent } from "../schemas/suspect.ts";

/** What a side sink takes from the pipeline. */
export interface SideSink {
  window(result: WindowResult, seriesInfo: (slot: number) => SeriesInfo | undefined): void;
  suspect(event: SuspectEvent): void;
}

export abstract class SeriesTap implements SeriesSink {
  constructor(
    private readonly side: SideSink,
    protected readonly inner: SeriesSink | undefined,
  ) {}

  get stats() {
    return this.inner?.stats ?? { written: 0, dropped: 0, pending: 0 };
  }

  window(result: WindowResult, seriesInfo: (slot: number) => SeriesInfo | undefined): void {
    this.inner?.window(result, seriesInfo);
    this.side.window(result, seriesInfo);
  }

  suspect(event: SuspectEvent): void {
    this.inner?.suspect(event);
    this.side.suspect(event);
  }

  pipeline(counters: Record<string, number>): void {
    this.inner?.pipeline(counters);
  }

  pendingLines(): string[] {
    return this.inner?.pendingLines() ?? [];
  }

  requeue(lines: string[]): void {
    this.inner?.requeue(lines);
  }

  captureState(): unknown {
    return this.inner?.captureState?.();
  }

  restoreState(state: unknown): void {
    this.inner?.restoreState?.(state);
  }

  /** Closes the side sink, then the wrapped one; returns the wrapped sink's undelivered points. */
  abstract close(): Promise<{ undelivered: number }>;
}
