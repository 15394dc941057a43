import type { OperatorFunction } from "rxjs";
import { statefulMap } from "../../lib/rx.ts";
import type { BucketCounts } from "../bucketize/core.ts";
import { DEFAULT_BUCKETS } from "../bucketize/core.ts";
import type { BucketAnomalyConfigInput } from "./config.ts";
import { BucketAnomalyCore, type BucketScore } from "./core.ts";

export * from "./config.ts";
export * from "./core.ts";

/**
 * Scores each window's bucket counts against each bucket's own history (level 1 anomaly).
 *
 * @example
 * counts$.pipe(scoreBuckets({ sigmas: 3 })).subscribe((scores) => scores.filter((s) => s.anomalous));
 */
export function scoreBuckets(
  config: BucketAnomalyConfigInput = {},
  bounds: readonly number[] = DEFAULT_BUCKETS,
): OperatorFunction<readonly BucketCounts[], BucketScore[]> {
  return statefulMap(
    () => new BucketAnomalyCore(config, bounds),
    (core, counts) => core.score(counts),
  );
}
