/**
 * The live pipeline has one `SeriesSink`; with `resin run --snapshots` this one passes windows
 * and suspects to the snapshot sink as well as to the time-series sink it wraps (if any). The
 * pipeline's checkpoint keeps only the wrapped sink's state: the snapshot sink keeps its own in
 * KV, because it has side effects (traces on agents) that must not be rolled back.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { SeriesInfo } from "../../operators/window/index.ts";
import type { WindowResult } from "../../pipelines/detect.ts";
import type { SeriesSink } from "../../pipelines/live.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import type { TicketSink } from "../ticket/sink.ts";
import type { SnapshotSink } from "./sink.ts";

export class SnapshotSeriesTap implements SeriesSink {
  constructor(
    readonly snapshots: SnapshotSink,
    readonly tickets: TicketSink,
    private readonly inner: SeriesSink | undefined,
    private readonly log: Logger,
    /** The connection the two sinks use, closed with them. */
    private readonly nc?: NatsConnection,
  ) {}

  get stats() {
    return this.inner?.stats ?? { written: 0, dropped: 0, pending: 0 };
  }

  window(result: WindowResult, seriesInfo: (slot: number) => SeriesInfo | undefined): void {
    this.inner?.window(result, seriesInfo);
    this.snapshots.window(result, seriesInfo);
  }

  suspect(event: SuspectEvent): void {
    this.inner?.suspect(event);
    this.snapshots.suspect(event);
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

  /** Closes the snapshot sink (its state saved), the ticket sink, the wrapped sink; returns the wrapped sink's undelivered points. */
  async close(): Promise<{ undelivered: number }> {
    const diagnoses = await this.snapshots.close();
    if (diagnoses.undelivered > 0)
      this.log.warn(
        { undelivered: diagnoses.undelivered },
        "diagnoses not yet ticketed; offered again at the next start",
      );
    const tickets = await this.tickets.close();
    if (tickets.undelivered > 0)
      this.log.warn({ undelivered: tickets.undelivered }, "tickets the webhook did not get");
    await this.nc?.drain().catch(() => undefined);
    return (await this.inner?.close()) ?? { undelivered: 0 };
  }
}
