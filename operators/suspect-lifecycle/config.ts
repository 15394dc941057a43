import { z } from "zod";

export const LifecycleConfig = z.strictObject({
  /** An open suspect whose series has not grown for this long resolves. */
  quietHoursToResolve: z.number().positive().default(48),
  /** ... or whose level fell back by this share of its growth (memory was released). */
  fallbackToResolve: z.number().min(0).max(1).default(0.7),
  /** Fewest hours between two update events of one suspect. */
  updateEveryHours: z.number().positive().default(6),
  /** Relative severity change that warrants an update event. */
  severityChange: z.number().positive().default(0.3),
  /** A resolved target may open again only after this many hours (no flapping). */
  reopenAfterHours: z.number().nonnegative().default(24),
});
export type LifecycleConfig = z.infer<typeof LifecycleConfig>;
export type LifecycleConfigInput = z.input<typeof LifecycleConfig>;
