/**
 * With `resin run --mitigate`, windows and suspects go to the mitigation sink as well as to the
 * sink it wraps (the snapshot tap, the InfluxDB series sink, or none): see sinks/tap.ts.
 */
import type { SeriesSink } from "../../pipelines/live.ts";
import { SeriesTap } from "../tap.ts";
import type { MitigationSink } from "./sink.ts";

export class MitigationSeriesTap extends SeriesTap {
  constructor(
    readonly mitigation: MitigationSink,
    inner: SeriesSink | undefined,
    /** Runs after the mitigation sink closed, before the wrapped sink (e.g. drains its connection). */
    private readonly onClosed?: () => Promise<void>,
  ) {
    super(mitigation, inner);
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
