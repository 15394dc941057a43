/**
 * The mitigation protocol between resin and the agents on hosts, version 1: NATS request/reply on
 * `resin.agent.<host>.mitigate`, one JSON command and one JSON reply per message.
 *
 * A command names one action on one target (restart a process, restart a service, live-migrate
 * the host's VMs, soft-reboot or reboot the host, or a team's own registered action). It carries
 * an id, the idempotency key: an agent runs each id at most once and answers a repeat of a
 * finished id with the first result (`outcome: "duplicate"`). A command is valid from `issuedAt`
 * to `expiresAt`; the agent refuses it afterwards, so a command stuck in a queue never restarts a
 * process hours later. With `dryRun` the agent checks everything and executes nothing.
 *
 * Simulated agents have no clock of their own: a command may carry `at`, the event time to act
 * at, which the agent then uses instead of its clock for the expiry check (as in the snapshot
 * protocol). Every failure is a typed reply (`ok: false`) with a code, and for a bad command the
 * field and the value.
 *
 * Like the telemetry contract, a version-1 reader ignores fields it does not know, so the
 * protocol grows only by optional fields; a breaking change needs `v: 2`.
 */
import { z } from "zod";
import { EpochMs, SubjectToken } from "../../schemas/common.ts";
import { CodedError, errorBodySchema, errorReplySchema } from "./request-responder.ts";

export const MITIGATE_PROTOCOL_VERSION = 1;

export function mitigateSubject(host: string): string {
  return `resin.agent.${host}.mitigate`;
}

/** Least intrusive first; `custom` is a team's registered action for its component (`script`). */
export const MitigationAction = z.enum([
  "restart-process",
  "restart-service",
  "migrate-vms",
  "soft-reboot",
  "reboot",
  "custom",
]);
export type MitigationAction = z.infer<typeof MitigationAction>;

/** Actions that take the whole host down for a while (counted against the per-region budget). */
export const REBOOT_ACTIONS: ReadonlySet<MitigationAction> = new Set(["soft-reboot", "reboot"]);

/** Names a command; also its idempotency key. */
export const CommandId = z
  .string()
  .regex(/^[A-Za-z0-9_.:/#-]{1,300}$/, "must match [A-Za-z0-9_.:/#-]{1,300}");

/** Name of a team-registered action. */
export const ScriptName = z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, "must match [A-Za-z0-9_.-]{1,128}");

export const MitigateRequest = z
  .looseObject({
    v: z.literal(MITIGATE_PROTOCOL_VERSION),
    /** Idempotency key: the agent runs one id once. */
    id: CommandId,
    /** The agent's own host (a command for another host is refused). */
    host: SubjectToken,
    action: MitigationAction,
    component: SubjectToken,
    /** Process name (telemetry's `name`; for kernel leaks the pool tag). */
    process: z.string().min(1).max(256).optional(),
    /** The leaking process, for `restart-process`. */
    pid: z.number().int().nonnegative().optional(),
    /** With `custom`: which of the component's registered actions. */
    script: ScriptName.optional(),
    /** Suspect id the command answers (for the agent's log and audit). */
    suspect: z.string().min(1).max(1000),
    /** Why, in words, for the agent's log. */
    reason: z.string().max(2000),
    issuedAt: EpochMs,
    /** The agent refuses the command after this time. */
    expiresAt: EpochMs,
    /** Check everything, execute nothing. */
    dryRun: z.boolean(),
    /** Event time to act at (simulated agents); real agents use their clock. */
    at: EpochMs.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.expiresAt <= r.issuedAt)
      ctx.addIssue({
        code: "custom",
        path: ["expiresAt"],
        message: `must be after issuedAt (${r.issuedAt})`,
      });
    if (r.action === "custom" && r.script === undefined)
      ctx.addIssue({ code: "custom", path: ["script"], message: "is required for action custom" });
    if (r.action === "restart-process" && r.pid === undefined)
      ctx.addIssue({ code: "custom", path: ["pid"], message: "is required for action restart-process" });
  });
export type MitigateRequest = z.infer<typeof MitigateRequest>;

/** Why an agent refused or failed a command. */
export const MitigateErrorCode = z.enum([
  /** Not JSON, or a field is missing or out of range (`field`, `value` say which). */
  "bad-request",
  /** `v` is not a version this agent speaks (`value` is what was sent). */
  "unsupported-version",
  /** Past `expiresAt` by the agent's clock (or by `at`). */
  "expired",
  /** The id was seen with another content, or is too old to be told from a replay. */
  "replayed",
  /** The action (or the script) is not on this agent's allowlist for the component. */
  "not-allowed",
  /** The process is not running (it exited or restarted under another pid). */
  "no-such-process",
  /** The agent runs another command on this host. */
  "busy",
  /** The action ran and failed (`message` says why). */
  "failed",
  /** resin's side: the agent did not answer in time, or none answers for the host. */
  "timeout",
  "no-responders",
]);
export type MitigateErrorCode = z.infer<typeof MitigateErrorCode>;

export const MitigateErrorBody = errorBodySchema(MitigateErrorCode);
export type MitigateErrorBody = z.infer<typeof MitigateErrorBody>;

export const MitigateOutcome = z.enum(["done", "dry-run", "duplicate"]);
export type MitigateOutcome = z.infer<typeof MitigateOutcome>;

export const MitigateOkReply = z.looseObject({
  v: z.literal(MITIGATE_PROTOCOL_VERSION),
  ok: z.literal(true),
  id: CommandId,
  host: SubjectToken,
  action: MitigationAction,
  /** "duplicate": the id had run before; this is that run's result. */
  outcome: MitigateOutcome,
  startedAt: EpochMs,
  finishedAt: EpochMs,
  detail: z.string().optional(),
});
export type MitigateOkReply = z.infer<typeof MitigateOkReply>;

export const MitigateErrorReply = errorReplySchema(MITIGATE_PROTOCOL_VERSION, MitigateErrorBody, {
  id: z.string().optional(),
  action: z.string().optional(),
});
export type MitigateErrorReply = z.infer<typeof MitigateErrorReply>;

export const MitigateReply = z.discriminatedUnion("ok", [MitigateOkReply, MitigateErrorReply]);
export type MitigateReply = MitigateOkReply | MitigateErrorReply;

/**
 * Thrown by an agent's `execute` to give the reply a precise code (a process that is gone is
 * `no-such-process`, an unknown script `not-allowed`, anything else `failed`).
 */
export class MitigateExecuteError extends CodedError<MitigateErrorCode> {
  override name = "MitigateExecuteError";
}
