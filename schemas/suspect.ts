import { z } from "zod";
import { Bytes, type Checked, check, EpochMs, SubjectToken } from "./common.ts";

export const SuspectState = z.enum(["open", "update", "resolved"]);
export type SuspectState = z.infer<typeof SuspectState>;

export const LeakKind = z.enum(["process", "kernel"]);
export type LeakKind = z.infer<typeof LeakKind>;

export const GrowthPattern = z.enum(["steady", "stair", "spike"]);
export type GrowthPattern = z.infer<typeof GrowthPattern>;

export const BucketEvidence = z.looseObject({
  lowerBytes: Bytes,
  hosts: z.number().int().nonnegative(),
  score: z.number(),
});
export type BucketEvidence = z.infer<typeof BucketEvidence>;

/** Suspect event v1 (CONTRACT.md §2). */
export const SuspectEvent = z.looseObject({
  v: z.literal(1),
  id: z.string().min(1),
  state: SuspectState,
  kind: LeakKind,
  component: SubjectToken,
  host: SubjectToken,
  process: z.string().min(1).max(256),
  pid: z.number().int().nonnegative(),
  start: EpochMs,
  end: EpochMs,
  detectedAt: EpochMs,
  severity: z.number(),
  pattern: GrowthPattern,
  growthBytesPerHour: z.number(),
  bucket: BucketEvidence.optional(),
});
export type SuspectEvent = z.infer<typeof SuspectEvent>;

export function checkSuspect(input: unknown): Checked<SuspectEvent> {
  return check(SuspectEvent, input);
}
