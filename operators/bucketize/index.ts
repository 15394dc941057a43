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
  return map((w) => bucketize(w, (slot) => infoOf(slot) ?? w.newSeries.find((s) => s.slot === slot), bounds));
}
