/**
 * Settings of the closed-loop world (simulate/closed-loop/world.ts): how full the allocator packs
 * hosts, when a host is out of memory, and how long the simulated agents take to carry out
 * commands. One strict schema; every field documented where it is declared. Durations are ms of
 * event time. The leak, fleet and event parameters stay those of the scenario (SimConfig).
 */
import { z } from "zod";
import { checkOrThrow } from "../../schemas/common.ts";
import type { MitigationConfigInput } from "../../sinks/mitigation/config.ts";

const MiB = 2 ** 20;
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

export const ClosedLoopConfig = z.strictObject({
  /**
   * Host memory the allocator leaves unsold beyond the host components' healthy peak, as a share
   * of the host's total. The allocator sells VM memory up to total − (healthy peak of the
   * components at full VM load) − headroom × total; a leak has this much (plus the packing
   * remainder, less than one VM) to eat before the host runs out.
   */
  headroom: z.number().finite().min(0).max(0.9).default(0.02),
  /**
   * VM demand exceeds supply (a capacity-constrained region, where low memory matters): a slot the
   * allocator's books show free is requested again after an exponential wait with this mean.
   */
  refillHours: z.number().finite().min(0.01).max(1000).default(4),
  /** A host whose free memory falls below this is out of memory (the OOM killer acts; placements fail). */
  lowMemoryFreeBytes: z
    .number()
    .int()
    .min(0)
    .default(512 * MiB),
  /** A restarted (or OOM-killed) process is back this long after the kill. More than the agents' clock jitter. */
  restartMs: z
    .number()
    .int()
    .min(1)
    .default(30 * SECOND),
  /** A kernel soft reboot keeps the host down this long. */
  softRebootMs: z
    .number()
    .int()
    .min(1)
    .default(10 * MINUTE),
  /** A full reboot (hardware init) keeps the host down this long. */
  rebootMs: z
    .number()
    .int()
    .min(1)
    .default(30 * MINUTE),
  /** Live migration moves the host's VMs one after the other, each taking this long. */
  migrateMsPerVm: z
    .number()
    .int()
    .min(1)
    .default(2 * MINUTE),
  /**
   * After a migration the allocator places nothing on the host until the reboot that follows is
   * over, or for this long when none follows.
   */
  drainHoldMs: z
    .number()
    .int()
    .min(0)
    .default(6 * HOUR),
});
export type ClosedLoopConfig = z.output<typeof ClosedLoopConfig>;
export type ClosedLoopConfigInput = z.input<typeof ClosedLoopConfig>;

export function parseClosedLoopConfig(raw: unknown): ClosedLoopConfig {
  return checkOrThrow(ClosedLoopConfig, raw, "closed-loop settings");
}

const everywhere = { components: ["*"] };

/**
 * The mitigation engine's settings in the loop: live (not a dry run), every built-in action
 * allowlisted everywhere (the default allowlist is empty: nothing would run), no team scripts, and
 * a result grace long enough for a migration of a full host plus a reboot.
 *
 * `returnWindowMs: 0`: a leak in code resumes after every restart until its fix ships, and nobody
 * ships fixes in the simulated fleet. With the default (3 days) a leak detected again after its
 * restart escalates to the next step and, past the last, the engine gives up for good ("a human
 * must look"): the process then leaks until the OOM killer restarts it. With 0, a leak the detector
 * resolved and flags again later is a new episode and gets the least intrusive step again; a leak
 * flagged again while its step is still being verified (`verifyMs`) still escalates. Rules,
 * budgets and verification are the engine's defaults.
 */
export const LOOP_MITIGATION: MitigationConfigInput = {
  dryRun: false,
  allow: {
    "restart-process": everywhere,
    "restart-service": everywhere,
    "migrate-vms": everywhere,
    "soft-reboot": everywhere,
    reboot: everywhere,
  },
  resultGraceMs: 3 * HOUR,
  returnWindowMs: 0,
};
