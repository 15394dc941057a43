import { readFileSync } from "node:fs";
import { z } from "zod";
import { BucketAnomalyConfig } from "../operators/bucket-anomaly/config.ts";
import { DetectConfig } from "../operators/process-detect/config.ts";
import { LifecycleConfig } from "../operators/suspect-lifecycle/config.ts";
import { WindowConfig } from "../operators/window/config.ts";
import type { DetectOptions } from "../pipelines/detect.ts";
import { strictCheck } from "../schemas/common.ts";
import { CliError } from "./errors.ts";

/**
 * The detector's settings as one JSON file (`--detect-config`): each section is the config of
 * one operator, validated by that operator's own schema (unknown keys are errors). A window
 * shorter than an hour scales the detector's time down: its "…Hours" settings count windows,
 * so `{"window": {"windowMs": 2000}}` makes a day 48 seconds (for tests and demos on real hosts).
 */
export const DetectConfigFile = z.strictObject({
  window: WindowConfig.partial().optional(),
  detect: DetectConfig.partial().optional(),
  buckets: BucketAnomalyConfig.partial().optional(),
  lifecycle: LifecycleConfig.partial().optional(),
  gate: z.enum(["none", "bucket"]).optional(),
});
export type DetectConfigFile = z.infer<typeof DetectConfigFile>;

/** Reads and checks a detector settings file; CliError names the file, the field and the value. */
export function readDetectConfig(path: string): DetectConfigFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new CliError(`--detect-config ${path}: ${(err as Error).message}`);
  }
  const checked = strictCheck(DetectConfigFile, raw, "(top level)");
  if (!checked.ok) throw new CliError(`--detect-config ${path}: ${checked.reason}`);
  return checked.value;
}

/**
 * The detector options from the file (when given) over the command's flags: the file's
 * `window.allowedLatenessMs` and `gate`, when present, win over --lateness and --gate.
 */
export function detectOptions(
  file: DetectConfigFile | undefined,
  flags: { allowedLatenessMs: number; gate: "none" | "bucket" },
): Pick<DetectOptions, "window" | "detect" | "buckets" | "lifecycle" | "gate"> {
  return {
    window: { allowedLatenessMs: flags.allowedLatenessMs, ...file?.window },
    gate: file?.gate ?? flags.gate,
    ...(file?.detect !== undefined ? { detect: file.detect } : {}),
    ...(file?.buckets !== undefined ? { buckets: file.buckets } : {}),
    ...(file?.lifecycle !== undefined ? { lifecycle: file.lifecycle } : {}),
  };
}
