import { z } from "zod";
import { type Checked, check, EpochMs, SubjectToken } from "./common.ts";
import { GrowthPattern, LeakKind } from "./suspect.ts";

/**
 * Ground truth v1 (CONTRACT.md §3): one record per injected leak. The optional fields are
 * our additions; consumers of other generators' truth must not rely on them.
 */
export const TruthRecord = z.looseObject({
  host: SubjectToken,
  component: SubjectToken,
  process: z.string().min(1).max(256),
  kind: LeakKind,
  pattern: GrowthPattern,
  startTs: EpochMs,
  ratePerHour: z.number().nonnegative(),
  /** Why the leak exists: an isolated host, a canary of a leaking version, a kernel pool. */
  cause: z.enum(["isolated", "canary", "kernel"]).optional(),
  /** The leaking component version, for canary regressions. */
  version: z.string().optional(),
  /** Normal (leak-free) size of the process when the leak started. */
  normalBytes: z.number().nonnegative().optional(),
  /** Leaked bytes held by the process at the end of the simulation (after any restart reset). */
  grownBytes: z.number().nonnegative().optional(),
  /**
   * The allocation stack that holds the leaked memory, leaf (allocating function) first, as a
   * heap profile names it (lib/heap/profile.ts Frame; `line` 1-based, 0 = unknown). Process
   * leaks only: a kernel pool has no heap profile. The diagnosis is right when it names it.
   */
  stack: z
    .array(
      z.object({
        fn: z.string().min(1),
        file: z.string(),
        line: z.number().int().nonnegative(),
      }),
    )
    .min(1)
    .optional(),
});
export type TruthRecord = z.infer<typeof TruthRecord>;

export function checkTruth(input: unknown): Checked<TruthRecord> {
  return check(TruthRecord, input);
}
