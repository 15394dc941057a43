import { z } from "zod";
import { Bytes, type Checked, check, EpochMs, SubjectToken } from "./common.ts";

/** The reserved component that carries kernel memory no process owns (pools, slab). */
export const KERNEL_COMPONENT = "kernel";

export const MAX_PROCESSES = 1024;

export const ProcessSample = z.looseObject({
  pid: z.number().int().nonnegative(),
  name: z.string().min(1).max(256),
  startedAt: EpochMs.optional(),
  bytes: Bytes,
});
export type ProcessSample = z.infer<typeof ProcessSample>;

export const HostMemory = z
  .looseObject({ totalBytes: Bytes, usedBytes: Bytes })
  .refine((m) => m.usedBytes <= m.totalBytes, {
    message: "usedBytes must be <= totalBytes",
    path: ["usedBytes"],
  });

/** Telemetry v1: one message per (host, component) per sampling interval (CONTRACT.md §1). */
export const Telemetry = z
  .looseObject({
    v: z.literal(1),
    ts: EpochMs,
    host: SubjectToken,
    component: SubjectToken,
    attrs: z.record(z.string(), z.string()).optional(),
    hostMemory: HostMemory.optional(),
    vms: z.number().int().nonnegative().optional(),
    processes: z.array(ProcessSample).max(MAX_PROCESSES),
  })
  .superRefine((msg, ctx) => {
    msg.processes.forEach((p, i) => {
      if (p.startedAt !== undefined && p.startedAt > msg.ts) {
        ctx.addIssue({
          code: "custom",
          message: "startedAt must be <= ts",
          path: ["processes", i, "startedAt"],
        });
      }
    });
  });
export type Telemetry = z.infer<typeof Telemetry>;

export function checkTelemetry(input: unknown): Checked<Telemetry> {
  return check(Telemetry, input);
}
