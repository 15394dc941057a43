/**
 * What the agents' request/reply protocols (snapshot: protocol.ts, mitigation:
 * mitigate-protocol.ts) have in common, so that each responder holds only its own rules:
 *
 *   - the typed error body and error reply of both protocols (`errorBodySchema`, `errorReplySchema`)
 *   - `Refusal`, the error a responder throws or returns to answer with such a reply, and
 *     `CodedError`, the base of the errors an agent's plug-in throws to choose the code
 *   - `parseRequest`: JSON, then the version, then the protocol's schema, refused in that order
 *   - `serveRequests`: subscribe in a queue group, answer each message as JSON, and on close
 *     unsubscribe and wait for the replies in hand
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { z } from "zod";
import { check, SubjectToken } from "../../schemas/common.ts";

/** The error of a typed error reply: a code this version knows, or any later one. */
export function errorBodySchema<Code extends z.ZodType<string>>(code: Code) {
  return z.looseObject({
    code: code.or(z.string().min(1)),
    message: z.string(),
    field: z.string().optional(),
    value: z.unknown().optional(),
  });
}

/** A typed error reply (`ok: false`) with what it echoes of the request (`echoed`, all optional). */
export function errorReplySchema<
  Version extends number,
  Body extends z.ZodType,
  Echoed extends Record<string, z.ZodOptional>,
>(version: Version, error: Body, echoed: Echoed) {
  return z.looseObject({
    v: z.literal(version),
    ok: z.literal(false),
    host: SubjectToken,
    ...echoed,
    error,
  });
}

/** Thrown by an agent's plug-in (profile source, executor) to choose the error reply's code. */
export class CodedError<Code extends string> extends Error {
  constructor(
    readonly code: Code,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A request refused or failed: what the error reply says (for a bad request the field and value). */
export class Refusal<Code extends string> extends Error {
  constructor(
    readonly code: Code,
    message: string,
    readonly field?: string,
    readonly value?: unknown,
  ) {
    super(message);
  }
}

/**
 * The refusal for an error thrown while answering: a `Refusal` as it is, a `coded` error (the
 * plug-in's) with its code, anything else with `fallback`.
 */
export function refusalOf<Code extends string>(
  err: unknown,
  coded: abstract new (...args: never[]) => CodedError<Code>,
  fallback: Code,
): Refusal<Code> {
  if (err instanceof Refusal) return err as Refusal<Code>;
  if (err instanceof coded) return new Refusal(err.code, err.message);
  return new Refusal(fallback, (err as Error).message);
}

/** The `error` of the reply for `r`. */
export function errorBody<Code extends string>(
  r: Refusal<Code>,
): { code: Code; message: string; field?: string; value?: unknown } {
  return {
    code: r.code,
    message: r.message,
    ...(r.field !== undefined ? { field: r.field } : {}),
    ...(r.value !== undefined ? { value: r.value } : {}),
  };
}

/** The fields `keys` of a request as it came (maybe invalid), those that are strings. */
export function echoed<K extends string>(input: unknown, keys: readonly K[]): Partial<Record<K, string>> {
  const o = (typeof input === "object" && input !== null ? input : {}) as Partial<Record<K, unknown>>;
  const out: Partial<Record<K, string>> = {};
  for (const k of keys) {
    const value = o[k];
    if (typeof value === "string") out[k] = value;
  }
  return out;
}

export interface RequestProtocol<T> {
  /** The protocol's name in words ("snapshot"). */
  name: string;
  version: number;
  /** What a message is called ("request", "command"). */
  noun: string;
  schema: z.ZodType<T>;
}

export type ParsedRequest<T> =
  | { ok: true; input: unknown; value: T }
  | { ok: false; input: unknown; refusal: Refusal<"bad-request" | "unsupported-version"> };

/**
 * Reads one request: not JSON and a wrong field are `bad-request`, a `v` other than the
 * protocol's is `unsupported-version` (checked before the fields, which another version may
 * lay out otherwise). `input` is the JSON as sent, for the fields a reply echoes.
 */
export function parseRequest<T>(text: string, protocol: RequestProtocol<T>): ParsedRequest<T> {
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch {
    const refusal = new Refusal("bad-request", `${protocol.noun} is not JSON`, "(message)");
    return { ok: false, input: undefined, refusal };
  }
  const v = (input as { v?: unknown } | null)?.v;
  if (v !== protocol.version && v !== undefined) {
    const message = `this agent speaks ${protocol.name} protocol version ${protocol.version}`;
    return { ok: false, input, refusal: new Refusal("unsupported-version", message, "v", v) };
  }
  const checked = check(protocol.schema, input);
  if (checked.ok) return { ok: true, input, value: checked.value };
  const first = checked.violations[0]!;
  return { ok: false, input, refusal: new Refusal("bad-request", checked.reason, first.path, first.value) };
}

export interface RequestOptions {
  /** Queue group, so that two responders for one host answer each request once. */
  queue: string;
  /** Names the protocol in log lines ("snapshot"). */
  what: string;
  answer: (text: string) => Promise<unknown>;
  log?: Logger | undefined;
}

export interface RequestServer {
  close(): Promise<void>;
}

/**
 * Answers every message on `subject` with `answer(text)`, as JSON; resolves once the server knows
 * the subscription. `close` unsubscribes and waits for the replies in hand.
 */
export async function serveRequests(
  nc: NatsConnection,
  subject: string,
  { queue, what, answer, log }: RequestOptions,
): Promise<RequestServer> {
  const inFlight = new Set<Promise<void>>();
  const sub = nc.subscribe(subject, {
    queue,
    callback: (err, msg) => {
      if (err) {
        log?.warn({ err: err.message, subject }, `${what} subscription failed`);
        return;
      }
      const work = answer(msg.string())
        .then((reply) => {
          if (msg.reply) msg.respond(JSON.stringify(reply));
        })
        .catch((err: Error) => log?.warn({ err: err.message }, `${what} reply not sent`));
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work));
    },
  });
  // The subscription must be known to the server before anyone is told we answer.
  await nc.flush();
  return {
    async close() {
      sub.unsubscribe();
      await Promise.allSettled([...inFlight]);
    },
  };
}
