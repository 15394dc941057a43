/**
 * Settings of the mitigation engine: the decision tree as data (rules, each a ladder of actions
 * tried least intrusive first), the teams' registered actions, the allowlists, the budgets and
 * the timing. One strict schema, every field documented where it is declared; a rules file
 * (`--mitigation-rules`) is this object as JSON. Durations are ms of the engine's clock (event
 * time for simulated fleets and replays).
 */
import { z } from "zod";
import { MitigationAction, ScriptName } from "../../lib/agent/mitigate-protocol.ts";
import { checkOrThrow, SubjectToken } from "../../schemas/common.ts";
import { LeakKind } from "../../schemas/suspect.ts";

const MINUTE = 60_000;
const HOUR = 3_600_000;
const ms = (min: number) => z.number().int().min(min);

/** One step of a ladder. */
export const Rung = z
  .object({
    action: MitigationAction,
    /** Only when the component runs at least this many processes on the host (restart-service). */
    minProcesses: z.number().int().min(1).optional(),
    /**
     * Only when the previous step's command failed; a step that worked but did not stop the leak
     * does not lead here (RESIN: a full reboot only if the soft reboot fails).
     */
    onlyAfterFailure: z.boolean().optional(),
    /**
     * A preparation, not a fix (live-migrating the VMs before a reboot): when it succeeds the next
     * step follows at once, without waiting for the detector. When it is not allowed, the ladder
     * stops there rather than skip it (a reboot must never run with the VMs still on the host).
     */
    prepares: z.boolean().optional(),
    /** For custom: the script; default the component's registered one (`customActions`). */
    script: ScriptName.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.script !== undefined && r.action !== "custom")
      ctx.addIssue({ code: "custom", path: ["script"], message: `only for action custom (got ${r.action})` });
  });
export type Rung = z.infer<typeof Rung>;

/** One branch of the tree: which leaks it takes and the ladder for them. The first matching rule wins. */
export const Rule = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must match [A-Za-z0-9_.-]{1,64}"),
    match: z
      .object({
        kind: LeakKind.optional(),
        /** Components the rule is for (absent: any). */
        components: z.array(SubjectToken).min(1).optional(),
        /** true: the host has VMs (or their count is unknown); false: it reported 0 VMs. */
        hasVms: z.boolean().optional(),
      })
      .strict()
      .default({}),
    ladder: z.array(Rung).min(1).max(16),
  })
  .strict();
export type Rule = z.infer<typeof Rule>;

/** Where an action may run: each list given must hold the value or "*". */
export const AllowEntry = z
  .object({
    components: z.array(z.string().min(1)).min(1),
    clusters: z.array(z.string().min(1)).min(1).optional(),
    regions: z.array(z.string().min(1)).min(1).optional(),
    hosts: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict();
export type AllowEntry = z.infer<typeof AllowEntry>;

/**
 * The tree of DESIGN.md ("Mitigation"), least intrusive first: a team's own action, then restart
 * the process, then the service when the component runs several processes; kernel leaks on a host
 * with VMs: live-migrate them, soft reboot, full reboot only if the soft reboot failed; on an
 * empty host: reboot.
 */
export const DEFAULT_RULES: Rule[] = [
  {
    name: "kernel-with-vms",
    match: { kind: "kernel", hasVms: true },
    ladder: [
      { action: "migrate-vms", prepares: true },
      { action: "soft-reboot" },
      { action: "reboot", onlyAfterFailure: true },
    ],
  },
  { name: "kernel-empty-host", match: { kind: "kernel", hasVms: false }, ladder: [{ action: "reboot" }] },
  {
    name: "process",
    match: { kind: "process" },
    ladder: [
      { action: "custom" },
      { action: "restart-process" },
      { action: "restart-service", minProcesses: 2 },
    ],
  },
];

export const MitigationConfig = z
  .object({
    /** Decide and audit, and send commands marked dryRun (agents check them, run nothing). */
    dryRun: z.boolean().default(true),
    /** The decision tree. */
    rules: z.array(Rule).min(1).default(DEFAULT_RULES),
    /** Teams' registered actions, per component: the script a `custom` step runs. */
    customActions: z.record(SubjectToken, z.object({ script: ScriptName }).strict()).default({}),
    /**
     * Opt-in, per action: where it may run. An action not listed never runs (its step is skipped,
     * audited); dry runs check it too, so they show what a live run would do.
     */
    allow: z.partialRecord(MitigationAction, AllowEntry).default({}),
    /** Suspects below this severity are left alone. */
    minSeverity: z.number().default(0),
    /** After a step worked, wait this long for the detector to resolve the suspect; then escalate. */
    verifyMs: ms(1).default(6 * HOUR),
    /** A target the detector flags again within this long after a step is the leak returning: escalate. */
    returnWindowMs: ms(0).default(3 * 24 * HOUR),
    /** Commands expire this long after they are issued (the agent refuses them afterwards). */
    commandTtlMs: ms(1000).default(15 * MINUTE),
    /** An issued command without a result this long after its expiry counts as failed. */
    resultGraceMs: ms(0).default(15 * MINUTE),
    /** Budget: commands per cluster in any hour (dry runs count: they show the live pace). */
    maxActionsPerClusterHour: z.number().int().min(1).default(10),
    /** Budget: hosts rebooting (soft or full) at once per region. */
    maxConcurrentRebootsPerRegion: z.number().int().min(1).default(2),
    /** A reboot holds its region's slot until its result plus this long (the host comes back). */
    rebootSettleMs: ms(0).default(15 * MINUTE),
    /** Priority: hosts whose free memory share lies in one band of this width count as equally close to running out. */
    freeMemoryBand: z.number().positive().max(1).default(0.05),
    /** Host facts not refreshed for this long are forgotten (hosts without a target). */
    hostFactsMaxAgeMs: ms(1).default(3 * HOUR),
    /** Audit records kept for `drainAudit` at most; older ones are dropped (counted). */
    maxPendingAudit: z.number().int().min(1).default(100_000),
  })
  .strict()
  .superRefine((c, ctx) => {
    const names = new Set<string>();
    c.rules.forEach((r, i) => {
      if (names.has(r.name))
        ctx.addIssue({
          code: "custom",
          path: ["rules", i, "name"],
          message: `duplicate rule name ${r.name}`,
        });
      names.add(r.name);
    });
  });
export type MitigationConfig = z.infer<typeof MitigationConfig>;
export type MitigationConfigInput = z.input<typeof MitigationConfig>;

/** Parses settings (a rules file), throwing a `ValidationError` that names every bad field and its value. */
export function parseMitigationConfig(raw: unknown): MitigationConfig {
  return checkOrThrow(MitigationConfig, raw, "mitigation settings");
}

/** Whether `entry` lets an action run on this target. */
export function allowedBy(
  entry: AllowEntry | undefined,
  t: { component: string; host: string; cluster?: string | undefined; region?: string | undefined },
): boolean {
  if (entry === undefined) return false;
  const has = (list: readonly string[] | undefined, value: string | undefined) =>
    list === undefined || list.includes("*") || (value !== undefined && list.includes(value));
  return (
    has(entry.components, t.component) &&
    has(entry.clusters, t.cluster) &&
    has(entry.regions, t.region) &&
    has(entry.hosts, t.host)
  );
}
