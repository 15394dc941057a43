/**
 * resin's side of the mitigation protocol: one command to one host's agent, with a timeout. It
 * never throws: every way a command can fail becomes an error reply (`timeout`, `no-responders`,
 * `bad-reply` for an answer that is not of the protocol), because for the mitigation engine a
 * failed command is a result like any other (it escalates).
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { check } from "../../schemas/common.ts";
import { requestFailureKind } from "./client.ts";
import {
  MITIGATE_PROTOCOL_VERSION,
  type MitigateErrorReply,
  MitigateReply,
  type MitigateRequest,
  mitigateSubject,
} from "./mitigate-protocol.ts";

export class MitigationClient {
  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs = 120_000,
  ) {}

  async send(req: MitigateRequest, timeoutMs = this.timeoutMs): Promise<MitigateReply> {
    const failed = (code: string, message: string): MitigateErrorReply => ({
      v: MITIGATE_PROTOCOL_VERSION,
      ok: false,
      id: req.id,
      host: req.host,
      action: req.action,
      error: { code, message },
    });
    let text: string;
    try {
      const msg = await this.nc.request(mitigateSubject(req.host), JSON.stringify(req), {
        timeout: timeoutMs,
      });
      text = msg.string();
    } catch (err) {
      const e = err as Error;
      switch (requestFailureKind(e)) {
        case "no-responders":
          return failed("no-responders", `no agent answers for host ${req.host}`);
        case "timeout":
          return failed("timeout", `agent on ${req.host} did not answer within ${timeoutMs} ms`);
        default:
          return failed("connection", `command to ${req.host} failed: ${e.message}`);
      }
    }
    let reply: unknown;
    try {
      reply = JSON.parse(text);
    } catch {
      return failed("bad-reply", `agent on ${req.host} answered with non-JSON: ${text.slice(0, 200)}`);
    }
    const checked = check(MitigateReply, reply);
    if (!checked.ok)
      return failed("bad-reply", `agent on ${req.host} sent a malformed reply: ${checked.reason}`);
    const r = checked.value;
    // A reply must be about the command sent; an agent answering another id is broken.
    if (r.ok && r.id !== req.id)
      return failed("bad-reply", `agent on ${req.host} answered command ${r.id} to command ${req.id}`);
    return r.ok ? r : { ...r, id: r.id ?? req.id };
  }
}
