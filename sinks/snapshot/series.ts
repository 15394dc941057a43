/**
 * With `resin run --snapshots`, windows and suspects go to the snapshot sink as well as to the
 * time-series sink it wraps (if any): see sinks/tap.ts.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { SeriesSink } from "../../pipelines/live.ts";
import { SeriesTap } from "../tap.ts";
import type { TicketSink } from "../ticket/sink.ts";
import type { SnapshotSink } from "./sink.ts";

export class SnapshotSeriesTap extends SeriesTap {
  constructor(
    readonly snapshots: SnapshotSink,
    readonly tickets: TicketSink,
    inner: SeriesSink | undefined,
    private readonly log: Logger,
    /** The connection the two sinks use, closed with them. */
    private readonly nc?: NatsConnection,
  ) {
    super(snapshots, inner);
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
