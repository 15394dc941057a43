/**
 * The audit trail of the mitigation engine: one record per decision, saying why, what and with
 * which result. The same record goes to NATS (`resin.mitigation.audit`, stream
 * `RESIN_MITIGATION_AUDIT`), to an NDJSON file and, as a point, to InfluxDB
 * (`resin_mitigation`). Version 1; it grows by optional fields only.
 */
import { z } from "zod";
import { MitigationAction } from "../../lib/agent/mitigate-protocol.ts";
import { EpochMs } from "../../schemas/common.ts";
import { LeakKind } from "../../schemas/suspect.ts";

export const AUDIT_SUBJECT = "resin.mitigation.audit";
export const AUDIT_STREAM = "RESIN_MITIGATION_AUDIT";

export const AuditEvent = z.enum([
  /** A command was sent (or, dry run, would be). */
  "issued",
  /** A command is held back: budget, a heap trace on the host, another command on the host. */
  "deferred",
  /** A step of the ladder does not apply (guard, no registered action, not allowlisted). */
  "skipped",
  /** The agent ran the command (or checked it, dry run). */
  "succeeded",
  /** The agent refused or failed the command, or no answer came. */
  "failed",
  /** The next step is taken: the last one failed or did not stop the leak in time. */
  "escalated",
  /** The detector flagged the target again after a step had worked. */
  "returned",
  /** The detector resolved the suspect: nothing more is done for the target. */
  "resolved",
  /** No step is left (or none may run): a human must look. */
  "gave-up",
  /** A suspect the engine leaves alone (below the severity floor, no rule for it). */
  "ignored",
]);
export type AuditEvent = z.infer<typeof AuditEvent>;

export const AuditRecord = z.looseObject({
  v: z.literal(1),
  /** Per engine, increasing: with the instance, the record's id (the NATS message id). */
  seq: z.number().int().nonnegative(),
  /** Event time of the decision. */
  at: EpochMs,
  event: AuditEvent,
  host: z.string(),
  component: z.string(),
  process: z.string(),
  kind: LeakKind,
  suspect: z.string().optional(),
  rule: z.string().optional(),
  /** Index of the step in the rule's ladder. */
  rung: z.number().int().nonnegative().optional(),
  action: MitigationAction.optional(),
  command: z.string().optional(),
  dryRun: z.boolean(),
  /** Why, in words. */
  reason: z.string(),
  /** What the agent answered (succeeded, failed). */
  result: z
    .looseObject({
      outcome: z.string().optional(),
      code: z.string().optional(),
      message: z.string().optional(),
      detail: z.string().optional(),
    })
    .optional(),
  /** The ranking that ordered this command among others (issued). */
  priority: z
    .looseObject({
      freeShare: z.number().optional(),
      leakBytes: z.number(),
      growthBytesPerHour: z.number(),
      hoursToFailure: z.number().optional(),
    })
    .optional(),
});
export type AuditRecord = z.infer<typeof AuditRecord>;
