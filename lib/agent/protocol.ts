/**
 * The snapshot protocol between resin and the agents on hosts, version 1: NATS request/reply on
 * `resin.agent.<host>.snapshot`, one JSON request and one JSON reply per message.
 *
 *   start   begin heap sampling in one process of the host (a "trace", named by the caller)
 *   collect take a heap profile of the trace now; the agent stores it as pprof in the Object
 *           Store bucket `resin_profiles` and answers with its id and metadata
 *   stop    end the trace (idempotent: stopping an unknown trace is not an error)
 *
 * A trace lives `ttlMs` after the last request that named it, so a target never keeps sampling
 * for a caller that went away. Simulated agents have no clock of their own: every request may
 * carry `at`, the event time to act at, and a trace started with `at` ages by the `at` of later
 * requests. Every failure is a typed reply (`ok: false`) with a code, and for a bad request
 * the field and the value; a request is never left without an answer while the agent runs.
 *
 * Like the telemetry contract, a version-1 reader ignores fields it does not know, so the
 * protocol grows only by optional fields; a breaking change needs `v: 2`.
 */
import { z } from "zod";
import { EpochMs, SubjectToken } from "../../schemas/common.ts";
import { CodedError, errorBodySchema, errorReplySchema } from "./request-responder.ts";

export const AGENT_PROTOCOL_VERSION = 1;

/** Object Store bucket the agents put profiles in and resin reads them from. */
export const PROFILE_BUCKET = "resin_profiles";

export function snapshotSubject(host: string): string {
  return `resin.agent.${host}.snapshot`;
}

/** Names a trace: chosen by the caller, unique per host; also part of the profiles' object names. */
export const TraceId = z.string().regex(/^[A-Za-z0-9_.:-]{1,200}$/, "must match [A-Za-z0-9_.:-]{1,200}");

/** The process a trace samples. */
export const SnapshotTarget = z.looseObject({
  pid: z.number().int().nonnegative(),
  /** Process name, as in telemetry. */
  process: z.string().min(1).max(256),
  component: SubjectToken,
});
export type SnapshotTarget = z.infer<typeof SnapshotTarget>;

const common = {
  v: z.literal(AGENT_PROTOCOL_VERSION),
  trace: TraceId,
  /** Event time to act at (simulated agents); real agents use their clock and ignore it. */
  at: EpochMs.optional(),
};

export const StartRequest = z.looseObject({
  ...common,
  op: z.literal("start"),
  ...SnapshotTarget.shape,
  /** Mean bytes allocated between two samples (V8's default 32 KiB; jemalloc's lg_prof_sample is 512 KiB). */
  samplingIntervalBytes: z
    .number()
    .int()
    .min(1)
    .max(64 * 1024 * 1024),
  /** The trace ends by itself this long after the last request naming it, ms. */
  ttlMs: z
    .number()
    .int()
    .min(1000)
    .max(7 * 24 * 3_600_000),
});
export type StartRequest = z.infer<typeof StartRequest>;

export const CollectRequest = z.looseObject({ ...common, op: z.literal("collect") });
export type CollectRequest = z.infer<typeof CollectRequest>;

export const StopRequest = z.looseObject({ ...common, op: z.literal("stop") });
export type StopRequest = z.infer<typeof StopRequest>;

export const SnapshotRequest = z.discriminatedUnion("op", [StartRequest, CollectRequest, StopRequest]);
export type SnapshotRequest = z.infer<typeof SnapshotRequest>;
export type SnapshotOp = SnapshotRequest["op"];

/** Why an agent refused or failed a request. */
export const AgentErrorCode = z.enum([
  /** Not JSON, or a field is missing or out of range (`field`, `value` say which). */
  "bad-request",
  /** `v` is not a version this agent speaks (`value` is what was sent). */
  "unsupported-version",
  /** collect for a trace the agent does not have: never started, stopped, expired, or the agent restarted. */
  "unknown-trace",
  /** start for a trace that exists with another target. */
  "trace-conflict",
  /** The agent already runs as many traces as it allows. */
  "busy",
  /** No such process on the host (it exited or restarted). */
  "no-such-process",
  /** The process exists but cannot be profiled (no inspector, not permitted…). */
  "unreachable",
  /** Profiling failed for another reason (`message` says why). */
  "source-failed",
  /** The profile was taken but could not be stored in the Object Store. */
  "store-failed",
]);
export type AgentErrorCode = z.infer<typeof AgentErrorCode>;

export const AgentErrorBody = errorBodySchema(AgentErrorCode);
export type AgentErrorBody = z.infer<typeof AgentErrorBody>;

const replyCommon = {
  v: z.literal(AGENT_PROTOCOL_VERSION),
  host: SubjectToken,
  trace: TraceId,
};

export const StartReply = z.looseObject({
  ...replyCommon,
  ok: z.literal(true),
  op: z.literal("start"),
  pid: z.number().int().nonnegative(),
  /** When the trace ends unless named again (agent's clock, or event time with `at`). */
  expiresAt: EpochMs,
  /** Operating system of the host (part of reference fingerprints). */
  os: z.string().optional(),
});
export type StartReply = z.infer<typeof StartReply>;

export const CollectReply = z.looseObject({
  ...replyCommon,
  ok: z.literal(true),
  op: z.literal("collect"),
  /** Object name of the pprof profile in `bucket`. */
  id: z.string().min(1),
  bucket: z.string().min(1),
  pid: z.number().int().nonnegative(),
  process: z.string().min(1),
  component: SubjectToken,
  takenAt: EpochMs,
  /** Live bytes in the profile (sum over stacks). */
  bytes: z.number().nonnegative(),
  stacks: z.number().int().nonnegative(),
  /** Size of the stored pprof object. */
  size: z.number().int().nonnegative(),
  os: z.string().optional(),
  /** Version of the component, when the agent knows it. */
  version: z.string().optional(),
});
export type CollectReply = z.infer<typeof CollectReply>;

export const StopReply = z.looseObject({
  ...replyCommon,
  ok: z.literal(true),
  op: z.literal("stop"),
  /** False when the agent had no such trace (already stopped or expired). */
  known: z.boolean(),
});
export type StopReply = z.infer<typeof StopReply>;

export const ErrorReply = errorReplySchema(AGENT_PROTOCOL_VERSION, AgentErrorBody, {
  op: z.string().optional(),
  trace: z.string().optional(),
});
export type ErrorReply = z.infer<typeof ErrorReply>;

export type SnapshotReply = StartReply | CollectReply | StopReply | ErrorReply;

/** The reply schema for each op (an error reply is possible for every op). */
export const REPLY_FOR = { start: StartReply, collect: CollectReply, stop: StopReply } as const;
export type ReplyFor<Op extends SnapshotOp> = z.infer<(typeof REPLY_FOR)[Op]>;

/**
 * Thrown by a profile source to give the agent's reply a precise code (a process that exited
 * is `no-such-process`, not a generic failure).
 */
export class AgentSourceError extends CodedError<AgentErrorCode> {
  override name = "AgentSourceError";
}

/** Headers of a stored profile object (the Object Store keeps them in the object's metadata). */
export const PROFILE_HEADERS = {
  host: "Resin-Host",
  pid: "Resin-Pid",
  process: "Resin-Process",
  component: "Resin-Component",
  trace: "Resin-Trace",
  takenAt: "Resin-Taken-At",
  bytes: "Resin-Bytes",
  os: "Resin-Os",
  contentType: "Content-Type",
} as const;

/** pprof's profile.proto, gzip-compressed (what `toPprof` writes). */
export const PPROF_CONTENT_TYPE = "application/vnd.google.pprof+gzip";
