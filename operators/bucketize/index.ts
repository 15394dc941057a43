import type { OperatorFunction } from "rxjs";
import { map } from "rxjs/operators";
import type { ClosedWindow, SeriesInfo } from "../window/core.ts";
import { type BucketCounts, bucketize, DEFAULT_BUCKETS } from "./core.ts";

export * from "./core.ts";

/**
 * Per closed window, the cumulative host count per memory bucket of each component.
 *
 * @example
 * windows$.pipe(bucketizeWindows((slot) => core.seriesInfo(slot))).subscribe(console.log);
 */
export function bucketizeWindows(
  infoOf: (slot: number) => SeriesInfo | undefined,
  bounds: readonly number[] = DEFAULT_BUCKETS,
): OperatorFunction<ClosedWindow, BucketCounts[]> {
  return map((w) => {
    const announced = new Map(w.newSeries.map((s) => [s.slot, s]));
    return bucketize(w, (slot) => infoOf(slot) ?? announced.get(slot), bounds);
  });
}
