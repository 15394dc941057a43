/**
 * The live pipeline's `SeriesSink` on top of `InfluxSink`: turns closed windows, suspect events
 * and pipeline counters into line protocol and hands them to the write buffer. It keeps the
 * open suspects itself (for `processSeries: "suspects"`), and that set is part of the checkpoint.
 */
import type { SeriesInfo } from "../../operators/window/core.ts";
import type { WindowResult } from "../../pipelines/detect.ts";
import type { SeriesSink } from "../../pipelines/live.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import { OpenSuspects, pipelineLine, suspectLine, windowLines } from "./points.ts";
import type { InfluxSink } from "./sink.ts";

export class InfluxSeriesSink implements SeriesSink {
  private readonly open = new OpenSuspects();

  constructor(
    readonly sink: InfluxSink,
    private readonly tags: { instance: string; partition: string },
    private readonly now: () => number = Date.now,
  ) {}

  get stats() {
    return this.sink.stats;
  }

  window(result: WindowResult, seriesInfo: (slot: number) => SeriesInfo | undefined): void {
    const mode = this.sink.config.processSeries;
    this.sink.write(windowLines(result, seriesInfo, { processSeries: mode, isSuspect: this.open.has }));
  }

  suspect(event: SuspectEvent): void {
    this.open.observe(event);
    const text = suspectLine(event);
    if (text !== undefined) this.sink.write([text]);
  }

  pipeline(counters: Record<string, number>): void {
    const text = pipelineLine(counters, this.tags, this.now());
    if (text !== undefined) this.sink.write([text]);
  }

  pendingLines(): string[] {
    return this.sink.pendingLines();
  }

  requeue(lines: string[]): void {
    this.sink.requeue(lines);
  }

  captureState(): unknown {
    return this.open.keys();
  }

  restoreState(state: unknown): void {
    if (Array.isArray(state)) this.open.restore(state.filter((k): k is string => typeof k === "string"));
  }

  async close(): Promise<{ undelivered: number }> {
    return await this.sink.close();
  }
}
