import { z } from "zod";

/** Level 1: anomaly and severity of each bucket's host-count series. */
export const BucketAnomalyConfig = z.strictObject({
  /** History kept per bucket series, in windows (RESIN looks at the last 15 days). */
  historyWindows: z
    .number()
    .int()
    .min(6)
    .default(15 * 24),
  /** Fewest baseline windows before a bucket can alert ("works from day one": hours, not days). */
  minBaseline: z.number().int().min(2).default(6),
  /** A point above mean + this many σ of the baseline is anomalous (RESIN: 3). */
  sigmas: z.number().positive().default(3),
  /** Smallest σ used, in hosts: a bucket that was always empty still needs a real rise. */
  minSigma: z.number().positive().default(0.5),
  /** Buckets below this lower bound do not alert (RESIN production: 200 MB). */
  minBucketBytes: z
    .number()
    .nonnegative()
    .default(200 * 1024 * 1024),
  /** A bucket alerts when its score reaches this. */
  minScore: z.number().nonnegative().default(6),
});
export type BucketAnomalyConfig = z.infer<typeof BucketAnomalyConfig>;
export type BucketAnomalyConfigInput = z.input<typeof BucketAnomalyConfig>;
