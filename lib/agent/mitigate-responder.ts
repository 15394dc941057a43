/**
 * The agent side of the mitigation protocol (lib/agent/mitigate-protocol.ts) for one host:
 * answers commands on `resin.agent.<host>.mitigate`. It checks before anything runs: the
 * version, the fields, that the command is for this host, not expired (by `at` when given, else
 * the clock), not a replay, and on this agent's allowlist. What runs is the `execute` function:
 * the simulated fleet and the Linux agent each plug in their own.
 *
 *   const responder = await MitigationResponder.start(nc, {
 *     host: "h1",
 *     allowlist: { "restart-process": ["*"], custom: ["storage-cache/flush-cache"] },
 *     execute: async (req) => ({ detail: await restart(req.pid) }),
 *   });
 *   …
 *   await responder.close();
 *
 * Idempotency: each id runs at most once. A repeat of an id with the same content gets the first
 * run's result (`outcome: "duplicate"`, or the same error), also while the first still runs; an id
 * seen with other content is refused as `replayed`. Ids are remembered up to `rememberIds`; a
 * command issued no later than the newest forgotten one cannot be told from a replay and is
 * refused too (so the bound never reopens a window for replays).
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  MITIGATE_PROTOCOL_VERSION,
  type MitigateErrorCode,
  type MitigateErrorReply,
  MitigateExecuteError,
  type MitigateOkReply,
  type MitigateReply,
  MitigateRequest,
  type MitigationAction,
  mitigateSubject,
} from "./mitigate-protocol.ts";
import {
  echoed,
  errorBody,
  parseRequest,
  Refusal,
  type RequestServer,
  refusalOf,
  serveRequests,
} from "./request-responder.ts";

export { MitigateExecuteError } from "./mitigate-protocol.ts";

/**
 * Per action, the components it may run for: a component name or "*". For `custom`, entries are
 * "<component>/<script>", "<component>/*" or "*". An action not listed is not allowed.
 */
export type MitigationAllowlist = Partial<Record<MitigationAction, readonly string[]>>;

/** Whether `allowlist` lets `action` run for `component` (and `script`, for custom). */
export function agentAllows(
  allowlist: MitigationAllowlist,
  action: MitigationAction,
  component: string,
  script?: string,
): boolean {
  const entries = allowlist[action];
  if (entries === undefined) return false;
  if (action !== "custom") return entries.includes("*") || entries.includes(component);
  return (
    entries.includes("*") || entries.includes(`${component}/*`) || entries.includes(`${component}/${script}`)
  );
}

/** Runs one command; `at` is the command's event time, or the agent's clock. Throw `MitigateExecuteError` to choose the code. */
export type MitigationExecutor = (req: MitigateRequest, at: number) => Promise<{ detail?: string }>;

export interface MitigationResponderOptions {
  host: string;
  allowlist: MitigationAllowlist;
  execute: MitigationExecutor;
  /** Commands run at once on this host; more are refused with `busy` (two reboots must not overlap). */
  maxConcurrent: number;
  /** Command ids remembered for duplicates and replays. */
  rememberIds: number;
  /** Queue group, so that two responders for one host answer each command once. */
  queue: string;
  now: () => number;
  log?: Logger;
}

export const DEFAULT_MITIGATION_RESPONDER_OPTIONS = {
  maxConcurrent: 1,
  rememberIds: 10_000,
  queue: "resin-agent",
  now: Date.now,
} satisfies Partial<MitigationResponderOptions>;

export interface MitigationResponderStats {
  requests: number;
  executed: number;
  dryRuns: number;
  duplicates: number;
  /** bad-request and unsupported-version. */
  invalid: number;
  expired: number;
  replayed: number;
  notAllowed: number;
  busy: number;
  /** Commands whose action ran and failed (or found no process). */
  failed: number;
}

interface Seen {
  fingerprint: string;
  issuedAt: number;
  /** Resolves to the first run's reply. */
  result: Promise<MitigateReply>;
}

const MITIGATE_PROTOCOL = {
  name: "mitigation",
  version: MITIGATE_PROTOCOL_VERSION,
  noun: "command",
  schema: MitigateRequest,
};

export class MitigationResponder {
  readonly stats: MitigationResponderStats = {
    requests: 0,
    executed: 0,
    dryRuns: 0,
    duplicates: 0,
    invalid: 0,
    expired: 0,
    replayed: 0,
    notAllowed: 0,
    busy: 0,
    failed: 0,
  };
  readonly subject: string;
  private readonly seen = new Map<string, Seen>();
  /** Newest `issuedAt` among forgotten ids: commands issued up to it may be replays. */
  private forgottenUpTo = -1;
  private running = 0;
  private served: RequestServer | undefined;
  private closed = false;

  private constructor(private readonly options: MitigationResponderOptions) {
    this.subject = mitigateSubject(options.host);
  }

  static async start(
    nc: NatsConnection,
    options: Partial<MitigationResponderOptions> &
      Pick<MitigationResponderOptions, "host" | "allowlist" | "execute">,
  ): Promise<MitigationResponder> {
    const opts: MitigationResponderOptions = { ...DEFAULT_MITIGATION_RESPONDER_OPTIONS, ...options };
    const responder = new MitigationResponder(opts);
    responder.served = await serveRequests(nc, responder.subject, {
      queue: opts.queue,
      what: "mitigate",
      answer: (text) => {
        responder.stats.requests++;
        return responder.handle(text);
      },
      log: opts.log,
    });
    return responder;
  }

  /**
   * A responder without a subscription: commands go through `handle(text)`. For in-process
   * agents (the closed-loop simulator) and tests.
   */
  static detached(
    options: Partial<MitigationResponderOptions> &
      Pick<MitigationResponderOptions, "host" | "allowlist" | "execute">,
  ): MitigationResponder {
    return new MitigationResponder({ ...DEFAULT_MITIGATION_RESPONDER_OPTIONS, ...options });
  }

  get host(): string {
    return this.options.host;
  }

  /** Unsubscribes and waits for the commands in hand. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.served?.close();
  }

  /** Answers one command given as text (the NATS handler; also usable without NATS). */
  async handle(text: string): Promise<MitigateReply> {
    const parsed = parseRequest(text, MITIGATE_PROTOCOL);
    const input = parsed.input;
    if (!parsed.ok) return this.refused(input, parsed.refusal);
    const req = parsed.value;
    if (req.host !== this.options.host)
      return this.refused(
        input,
        new Refusal("bad-request", `this agent is host ${this.options.host}`, "host", req.host),
      );

    const fingerprint = fingerprintOf(req);
    const earlier = this.seen.get(req.id);
    if (earlier !== undefined) {
      if (earlier.fingerprint !== fingerprint)
        return this.refused(
          input,
          new Refusal("replayed", `command ${req.id} was seen before with other content`, "id", req.id),
        );
      this.stats.duplicates++;
      return asDuplicate(await earlier.result);
    }
    if (req.issuedAt <= this.forgottenUpTo)
      return this.refused(
        input,
        new Refusal(
          "replayed",
          `command ${req.id} was issued no later than commands this agent no longer remembers (${this.forgottenUpTo}); it cannot be told from a replay`,
          "issuedAt",
          req.issuedAt,
        ),
      );

    const at = req.at ?? this.options.now();
    if (at > req.expiresAt)
      return this.remember(
        req,
        fingerprint,
        this.refused(
          input,
          new Refusal("expired", `command expired ${at - req.expiresAt} ms ago`, "expiresAt", req.expiresAt),
        ),
      );
    if (!agentAllows(this.options.allowlist, req.action, req.component, req.script)) {
      const what = req.action === "custom" ? `${req.component}/${req.script}` : req.component;
      return this.remember(
        req,
        fingerprint,
        this.refused(
          input,
          new Refusal(
            "not-allowed",
            `${req.action} is not allowed for ${what} on ${this.options.host}`,
            "action",
            req.action,
          ),
        ),
      );
    }
    if (this.closed) return this.refused(input, new Refusal("busy", "agent is shutting down"));
    if (this.running >= this.options.maxConcurrent)
      return this.refused(
        input,
        new Refusal(
          "busy",
          `this agent runs ${this.running} command(s) already (at most ${this.options.maxConcurrent})`,
        ),
      );
    return await this.remember(req, fingerprint, this.run(req, at, input));
  }

  private async run(req: MitigateRequest, at: number, input: unknown): Promise<MitigateReply> {
    this.running++;
    const startedAt = at;
    try {
      if (req.dryRun) {
        this.stats.dryRuns++;
        return this.ok(req, "dry-run", startedAt, startedAt, "dry run: checked, not executed");
      }
      const { detail } = await this.options.execute(req, at);
      this.stats.executed++;
      const finishedAt = req.at !== undefined ? req.at : this.options.now();
      this.options.log?.info({ id: req.id, action: req.action, component: req.component }, "mitigation done");
      return this.ok(req, "done", startedAt, Math.max(startedAt, finishedAt), detail);
    } catch (err) {
      return this.refused(input, refusalOf(err, MitigateExecuteError, "failed"));
    } finally {
      this.running--;
    }
  }

  private ok(
    req: MitigateRequest,
    outcome: MitigateOkReply["outcome"],
    startedAt: number,
    finishedAt: number,
    detail: string | undefined,
  ): MitigateOkReply {
    return {
      v: MITIGATE_PROTOCOL_VERSION,
      ok: true,
      id: req.id,
      host: this.options.host,
      action: req.action,
      outcome,
      startedAt,
      finishedAt,
      ...(detail !== undefined ? { detail } : {}),
    };
  }

  private remember<T extends MitigateReply>(
    req: MitigateRequest,
    fingerprint: string,
    result: T | Promise<T>,
  ): Promise<T> {
    const promise = Promise.resolve(result);
    this.seen.set(req.id, { fingerprint, issuedAt: req.issuedAt, result: promise });
    while (this.seen.size > this.options.rememberIds) {
      const [oldest, entry] = this.seen.entries().next().value as [string, Seen];
      this.seen.delete(oldest);
      this.forgottenUpTo = Math.max(this.forgottenUpTo, entry.issuedAt);
    }
    return promise;
  }

  private refused(input: unknown, r: Refusal<MitigateErrorCode>): MitigateErrorReply {
    const counter: Partial<Record<string, keyof MitigationResponderStats>> = {
      "bad-request": "invalid",
      "unsupported-version": "invalid",
      expired: "expired",
      replayed: "replayed",
      "not-allowed": "notAllowed",
      busy: "busy",
    };
    this.stats[counter[r.code] ?? "failed"]++;
    if (r.code !== "bad-request" && r.code !== "unsupported-version")
      this.options.log?.warn(
        { code: r.code, field: r.field, value: r.value, err: r.message },
        "mitigation command refused",
      );
    return {
      v: MITIGATE_PROTOCOL_VERSION,
      ok: false,
      host: this.options.host,
      ...echoed(input, ["id", "action"]),
      error: errorBody(r),
    };
  }
}

/** What makes two commands with one id the same command (not `at`: a retry may carry a later one). */
function fingerprintOf(r: MitigateRequest): string {
  return JSON.stringify([
    r.host,
    r.action,
    r.component,
    r.process ?? null,
    r.pid ?? null,
    r.script ?? null,
    r.suspect,
    r.issuedAt,
    r.expiresAt,
    r.dryRun,
  ]);
}

function asDuplicate(reply: MitigateReply): MitigateReply {
  return reply.ok ? { ...reply, outcome: "duplicate" as const } : reply;
}
