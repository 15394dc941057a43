/**
 * The live pipeline has one `SeriesSink`; with `resin run --mitigate` this one passes windows and
 * suspects to the mitigation sink as well as to the sink it wraps (the snapshot tap, the InfluxDB
 * series sink, or none), so the sinks compose as a chain: mitigation → snapshots → InfluxDB. The
 * pipeline's checkpoint keeps only the wrapped sink's state: the mitigation sink keeps its own
 * in KV, because commands sent to agents must not be rolled back by a checkpoint restore.
 */
import type { SeriesInfo } from "../../operators/window/index.ts";
import type { WindowResult } from "../../pipelines/detect.ts";
import type { SeriesSink } from "../../pipelines/live.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import type { MitigationSink } from "./sink.ts";

export class MitigationSeriesTap implements SeriesSink {
  constructor(
    readonly mitigation: MitigationSink,
    private readonly inner: SeriesSink | undefined,
    /** Runs after the mitigation sink closed, before the wrapped sink (e.g. drains its connection). */
    private readonly onClosed?: () => Promise<void>,
  ) {}

  get stats() {
    return this.inner?.stats ?? { written: 0, dropped: 0, pending: 0 };
  }

  window(result: WindowResult, seriesInfo: (slot: number) => SeriesInfo | undefined): void {
    this.inner?.window(result, seriesInfo);
    this.mitigation.window(result, seriesInfo);
  }

  suspect(event: SuspectEvent): void {
    this.inner?.suspect(event);
    this.mitigation.suspect(event);
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

  /**
   * Closes the mitigation sink first (its last audit points still reach the wrapped InfluxDB
   * sink), then the wrapped sink; returns the wrapped sink's undelivered points.
   */
  async close(): Promise<{ undelivered: number }> {
    await this.mitigation.close();
    await this.onClosed?.();
    return (await this.inner?.close()) ?? { undelivered: 0 };
  }
}
