import { z } from "zod";

/** Event-time windowing of telemetry into per-process aggregates. */
export const WindowConfig = z.strictObject({
  /** Length of one aggregation window (RESIN aggregates hourly). */
  windowMs: z.number().int().positive().default(3_600_000),
  /**
   * How late a sample may arrive, in event time, behind the newest sample seen, and still
   * count. The contract's default is 2 sampling intervals (10 min at 5 min sampling).
   */
  allowedLatenessMs: z.number().int().nonnegative().default(600_000),
  /** A process series with no sample for this long is ended (restarted away or host gone). */
  idleEndMs: z
    .number()
    .int()
    .positive()
    .default(3 * 3_600_000),
});
export type WindowConfig = z.infer<typeof WindowConfig>;
export type WindowConfigInput = z.input<typeof WindowConfig>;
