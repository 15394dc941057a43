/**
 * resin's side of the snapshot protocol: typed requests to one host's agent, with a timeout, and
 * one error class per way it can fail, so the caller decides what is retryable in one place.
 */
import { type NatsConnection, NoRespondersError, RequestError, TimeoutError } from "@nats-io/transport-node";
import type { z } from "zod";
import { check } from "../../schemas/common.ts";
import {
  AGENT_PROTOCOL_VERSION,
  type AgentErrorBody,
  type CollectReply,
  ErrorReply,
  REPLY_FOR,
  type ReplyFor,
  type SnapshotOp,
  type StartReply,
  type StartRequest,
  type StopReply,
  snapshotSubject,
} from "./protocol.ts";

/** Any failed request; the subclasses say how. */
export class AgentError extends Error {
  override name = "AgentError";
  constructor(
    readonly host: string,
    readonly op: SnapshotOp,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** No agent answers for the host (none subscribed), or it did not answer in time. */
export class AgentUnreachableError extends AgentError {
  override name = "AgentUnreachableError";
  constructor(
    host: string,
    op: SnapshotOp,
    readonly why: "no-responders" | "timeout" | "connection",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(host, op, message, options);
  }
}

/** The agent answered with a typed error. */
export class AgentRefusedError extends AgentError {
  override name = "AgentRefusedError";
  constructor(
    host: string,
    op: SnapshotOp,
    readonly body: AgentErrorBody,
  ) {
    const where = body.field !== undefined ? ` (${body.field}: ${JSON.stringify(body.value)})` : "";
    super(host, op, `agent on ${host} refused ${op}: ${body.code}: ${body.message}${where}`);
  }

  get code(): string {
    return this.body.code;
  }
}

/** The answer is not a reply of this protocol. */
export class AgentReplyInvalidError extends AgentError {
  override name = "AgentReplyInvalidError";
}

export class SnapshotClient {
  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs = 60_000,
  ) {}

  start(host: string, req: Omit<StartRequest, "v" | "op">, timeoutMs = this.timeoutMs): Promise<StartReply> {
    return this.request(host, "start", req, timeoutMs);
  }

  collect(
    host: string,
    req: { trace: string; at?: number },
    timeoutMs = this.timeoutMs,
  ): Promise<CollectReply> {
    return this.request(host, "collect", req, timeoutMs);
  }

  stop(host: string, req: { trace: string; at?: number }, timeoutMs = this.timeoutMs): Promise<StopReply> {
    return this.request(host, "stop", req, timeoutMs);
  }

  private async request<Op extends SnapshotOp>(
    host: string,
    op: Op,
    body: object,
    timeoutMs: number,
  ): Promise<ReplyFor<Op>> {
    const payload = JSON.stringify({ v: AGENT_PROTOCOL_VERSION, op, ...body });
    let text: string;
    try {
      const msg = await this.nc.request(snapshotSubject(host), payload, { timeout: timeoutMs });
      text = msg.string();
    } catch (err) {
      throw unreachable(host, op, err as Error, timeoutMs);
    }
    let reply: unknown;
    try {
      reply = JSON.parse(text);
    } catch {
      throw new AgentReplyInvalidError(
        host,
        op,
        `agent on ${host} answered ${op} with non-JSON: ${text.slice(0, 200)}`,
      );
    }
    if ((reply as { ok?: unknown } | null)?.ok === false) {
      const failed = check(ErrorReply, reply);
      if (!failed.ok)
        throw new AgentReplyInvalidError(
          host,
          op,
          `agent on ${host} sent a malformed error: ${failed.reason}`,
        );
      throw new AgentRefusedError(host, op, failed.value.error);
    }
    const checked = check(REPLY_FOR[op] as unknown as z.ZodType<ReplyFor<Op>>, reply);
    if (!checked.ok)
      throw new AgentReplyInvalidError(
        host,
        op,
        `agent on ${host} sent a malformed ${op} reply: ${checked.reason}`,
      );
    return checked.value as ReplyFor<Op>;
  }
}

/** Why a request to an agent got no reply: nobody listens, nobody answered in time, or the connection. */
export function requestFailureKind(err: Error): "no-responders" | "timeout" | "connection" {
  if (
    err instanceof NoRespondersError ||
    (err instanceof RequestError && (err.isNoResponders() || err.cause instanceof NoRespondersError))
  )
    return "no-responders";
  if (err instanceof TimeoutError || err.cause instanceof TimeoutError) return "timeout";
  return "connection";
}

function unreachable(host: string, op: SnapshotOp, err: Error, timeoutMs: number): AgentError {
  const kind = requestFailureKind(err);
  if (kind === "no-responders")
    return new AgentUnreachableError(host, op, "no-responders", `no agent answers for host ${host}`, {
      cause: err,
    });
  if (kind === "timeout")
    return new AgentUnreachableError(
      host,
      op,
      "timeout",
      `agent on ${host} did not answer ${op} within ${timeoutMs} ms`,
      { cause: err },
    );
  return new AgentUnreachableError(host, op, "connection", `${op} to ${host} failed: ${err.message}`, {
    cause: err,
  });
}
