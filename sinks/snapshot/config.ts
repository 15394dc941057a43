/**
 * Settings of the snapshot sink (heap profiles of suspects, diagnosis): one strict schema, every
 * field documented where it is declared, defaults from RESIN (DESIGN.md, "Heap snapshots").
 * Durations are in ms of the sink's clock: event time (the telemetry's) by default, so a
 * simulated fleet replayed at any speed is profiled on its own schedule.
 */
import { z } from "zod";
import { checkOrThrow } from "../../schemas/common.ts";

const HOUR = 3_600_000;
const MINUTE = 60_000;
const ms = (min: number) => z.number().int().min(min);

export const SnapshotSinkConfig = z
  .object({
    /**
     * "event": time is the telemetry's (window ends, suspects' detectedAt), as for simulated
     * agents and replays; "wall": the machine's clock, for real agents whose processes live in it.
     */
    clock: z.enum(["event", "wall"]).default("event"),
    /** Hosts traced at once per leaking component (RESIN: the top 3, in case one fails). */
    tracesPerCase: z.number().int().min(1).max(16).default(3),
    /** Time between two collections of one trace (RESIN: 30 min). */
    collectIntervalMs: ms(1).default(30 * MINUTE),
    /** Profiles kept per trace (the ring); older ones are deleted from the Object Store. */
    ringSize: z.number().int().min(2).max(1000).default(24),
    /** A trace is never complete with fewer profiles (RESIN keeps at least 3). */
    minProfiles: z.number().int().min(2).default(3),
    /** The completion rules look at the profiles of this last stretch of the trace (RESIN: 6 h). */
    completionWindowMs: ms(1).default(6 * HOUR),
    /** steady: complete when the profiles' total grows linearly with R² above this. */
    steadyMinR2: z.number().min(0).max(1).default(0.8),
    /** stair: complete when |1 − slope/slope_k| is below this (and R² below stairMaxR2). */
    stairSlopeTolerance: z.number().positive().default(0.1),
    stairMaxR2: z.number().min(0).max(1).default(0.1),
    /** spike: complete when the profiles saw more than this share of the detected rise. */
    spikeMinShare: z.number().positive().default(0.5),
    /** A trace ends after this long however its profiles look (diagnosed if it has 2 or more). */
    maxTraceMs: ms(1).default(24 * HOUR),
    /** Collections per cluster within any hour of the clock, over all traces (RESIN: 5). */
    maxCollectionsPerClusterHour: z.number().int().min(1).default(5),
    /** Requests (start, collect, stop) to agents in flight at once. */
    maxConcurrentRequests: z.number().int().min(1).default(16),
    /** Wall-clock timeout of one request to an agent (a big heap takes seconds to profile and store). */
    requestTimeoutMs: ms(100).default(60_000),
    /** Consecutive failures after which a host is given up and the next candidate traced. */
    maxFailuresPerHost: z.number().int().min(1).default(3),
    /** Wait after a failed request before the next attempt on that host. */
    retryDelayMs: ms(0).default(5 * MINUTE),
    /** Mean bytes between two heap samples, asked of the agents. */
    samplingIntervalBytes: z
      .number()
      .int()
      .min(1)
      .default(512 * 1024),
    /** An agent ends a trace by itself when nobody asked for it this long (resin died). */
    traceTtlMs: ms(1000).default(2 * HOUR),
    /** Leaking components diagnosed at once; more wait their turn. */
    maxActiveCases: z.number().int().min(1).default(20),
    /** After a diagnosis of a component, new suspects of it only join the record for this long. */
    caseCooldownMs: ms(0).default(24 * HOUR),
    /** Candidates (open suspects) remembered per component, the most severe kept. */
    maxCandidatesPerComponent: z.number().int().min(1).default(50),
    /** Hourly memory points kept per open suspect (for ranking by clarity and for the ticket). */
    seriesPoints: z.number().int().min(0).default(96),
    /** Ranking: severities within one band of this width count as equal, so clarity and VMs decide. */
    severityBand: z.number().positive().default(1),
    /** Ranking: clarities (R² of the growth, 0..1) within one band of this width count as equal. */
    clarityBand: z.number().positive().max(1).default(0.2),
    /** Profiles per reference series from a healthy host. */
    referenceProfiles: z.number().int().min(2).default(3),
    /** A reference younger than this is fresh; an older one is taken again when a case needs it. */
    referenceRefreshMs: ms(1).default(24 * HOUR),
    /** References older than this are deleted, with their profiles. */
    referenceMaxAgeMs: ms(1).default(7 * 24 * HOUR),
    /** Culprits per diagnosis. */
    topN: z.number().int().min(1).max(100).default(5),
    /** Wall-clock period of the sink's loop (and of the wall clock's ticks). */
    pollMs: ms(10).default(1000),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.minProfiles > c.ringSize)
      ctx.addIssue({
        code: "custom",
        path: ["minProfiles"],
        message: `must not exceed ringSize (${c.ringSize})`,
      });
    if (c.referenceProfiles > c.ringSize)
      ctx.addIssue({
        code: "custom",
        path: ["referenceProfiles"],
        message: `(${c.referenceProfiles}) must not exceed ringSize (${c.ringSize})`,
      });
    if (c.referenceRefreshMs > c.referenceMaxAgeMs)
      ctx.addIssue({
        code: "custom",
        path: ["referenceRefreshMs"],
        message: `must not exceed referenceMaxAgeMs (${c.referenceMaxAgeMs})`,
      });
  });
export type SnapshotSinkConfig = z.infer<typeof SnapshotSinkConfig>;
export type SnapshotSinkConfigInput = z.input<typeof SnapshotSinkConfig>;

/** Parses settings, throwing a `ValidationError` that names every bad field and its value. */
export function parseSnapshotSinkConfig(raw: unknown): SnapshotSinkConfig {
  return checkOrThrow(SnapshotSinkConfig, raw, "snapshot sink settings");
}
