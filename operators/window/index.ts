import { Observable, type OperatorFunction } from "rxjs";
import type { Telemetry } from "../../schemas/telemetry.ts";
import type { WindowConfigInput } from "./config.ts";
import { type ClosedWindow, WindowCore } from "./core.ts";

export * from "./config.ts";
export * from "./core.ts";

/**
 * Groups telemetry batches into event-time windows of per-process aggregates, with a
 * watermark, allowed lateness and de-duplication. Emits each window once it closes, and the
 * remaining open windows when the input completes. State lives in the subscription.
 *
 * @example
 * telemetryBatches$.pipe(eventTimeWindows({ windowMs: 3_600_000 })).subscribe((w) => console.log(w.start));
 */
export function eventTimeWindows(
  config: WindowConfigInput = {},
  onCore?: (core: WindowCore) => void,
  /** Makes the core (e.g. one restored from a checkpoint); default: a fresh one per subscription. */
  create: () => WindowCore = () => new WindowCore(config),
  /** Close the still-open windows when the input completes (false: a live source that will resume). */
  flushOnComplete = true,
): OperatorFunction<readonly Telemetry[], ClosedWindow> {
  return (source) =>
    new Observable<ClosedWindow>((subscriber) => {
      const core = create();
      onCore?.(core);
      const out: ClosedWindow[] = [];
      const sub = source.subscribe({
        next(batch) {
          try {
            for (const msg of batch) core.push(msg, out);
          } catch (err) {
            subscriber.error(err);
            return;
          }
          for (const w of out) subscriber.next(w);
          out.length = 0;
          // Delivered: the slots of the series these windows ended may now go to new series.
          core.releaseEnded();
        },
        error(err) {
          subscriber.error(err);
        },
        complete() {
          if (flushOnComplete) for (const w of core.flush()) subscriber.next(w);
          subscriber.complete();
        },
      });
      return () => sub.unsubscribe();
    });
}
