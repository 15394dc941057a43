/**
 * NATS connection settings shared by every command that talks to NATS (`resin run`,
 * `resin simulate --nats`, the agent): one strict schema, read from flags and environment,
 * and a connect that waits for the server with backoff instead of failing at start-up.
 */
import { readFileSync } from "node:fs";
import {
  connect,
  credsAuthenticator,
  type NatsConnection,
  type NodeConnectionOptions,
} from "@nats-io/transport-node";
import { z } from "zod";

export const NatsSettings = z
  .object({
    /** Server URL(s), comma separated. */
    servers: z.string().min(1).default("nats://127.0.0.1:4222"),
    /** Client name shown by the server's monitoring. */
    name: z.string().default("resin"),
    token: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    pass: z.string().optional(),
    /** Path of a `.creds` file (JWT + nkey seed). */
    creds: z.string().min(1).optional(),
    /** TLS: CA bundle, and a client certificate + key for mutual TLS. */
    tlsCa: z.string().min(1).optional(),
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.token !== undefined && (s.user !== undefined || s.creds !== undefined))
      ctx.addIssue({
        code: "custom",
        path: ["token"],
        message: "token cannot be combined with user or creds",
      });
    if ((s.tlsCert === undefined) !== (s.tlsKey === undefined))
      ctx.addIssue({
        code: "custom",
        path: [s.tlsCert === undefined ? "tlsCert" : "tlsKey"],
        message: "a client certificate needs both tlsCert and tlsKey",
      });
  });
export type NatsSettings = z.infer<typeof NatsSettings>;

/** The environment variables that fill settings not given as flags. */
export const NATS_ENV: Record<keyof NatsSettings, string> = {
  servers: "RESIN_NATS_URL",
  name: "RESIN_NATS_NAME",
  token: "RESIN_NATS_TOKEN",
  user: "RESIN_NATS_USER",
  pass: "RESIN_NATS_PASS",
  creds: "RESIN_NATS_CREDS",
  tlsCa: "RESIN_NATS_TLS_CA",
  tlsCert: "RESIN_NATS_TLS_CERT",
  tlsKey: "RESIN_NATS_TLS_KEY",
};

/** Settings from flags first, then the environment (`RESIN_NATS_*`). Unset stays unset. */
export function natsSettingsFrom(
  flags: Partial<Record<keyof NatsSettings, string | undefined>>,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const raw: Record<string, string> = {};
  for (const [key, envName] of Object.entries(NATS_ENV)) {
    const v = flags[key as keyof NatsSettings] ?? env[envName];
    if (v !== undefined && v !== "") raw[key] = v;
  }
  return raw;
}

function readFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${what} ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

/** nats.js options for the settings: reconnect forever with jittered backoff. */
export function connectionOptions(s: NatsSettings): NodeConnectionOptions {
  const opts: NodeConnectionOptions = {
    servers: s.servers.split(",").map((x) => x.trim()),
    name: s.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    reconnectJitter: 500,
    pingInterval: 10_000,
    // Capturing a stack per request costs about 40% of publish throughput; errors still name the subject.
    noAsyncTraces: true,
  };
  if (s.token !== undefined) opts.token = s.token;
  if (s.user !== undefined) {
    opts.user = s.user;
    opts.pass = s.pass ?? "";
  }
  if (s.creds !== undefined) opts.authenticator = credsAuthenticator(readFile(s.creds, "NATS creds file"));
  if (s.tlsCa !== undefined || s.tlsCert !== undefined) {
    opts.tls = {};
    if (s.tlsCa !== undefined) opts.tls.ca = readFile(s.tlsCa, "TLS CA file").toString();
    if (s.tlsCert !== undefined) opts.tls.cert = readFile(s.tlsCert, "TLS certificate").toString();
    if (s.tlsKey !== undefined) opts.tls.key = readFile(s.tlsKey, "TLS key").toString();
  }
  return opts;
}

/** Full-jitter exponential backoff: a random delay up to min(cap, base · 2^attempt). */
export function backoffMs(attempt: number, baseMs = 250, capMs = 10_000): number {
  return Math.random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 16));
}

/** Waits `ms`; an aborted `signal` ends the wait early (without throwing). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Connects, retrying with backoff while the server is unreachable (it may start after us);
 * authentication and TLS errors are not retried. `signal` aborts the wait.
 */
export async function connectWithRetry(
  s: NatsSettings,
  onRetry?: (attempt: number, err: Error) => void,
  signal?: AbortSignal,
): Promise<NatsConnection> {
  const opts = connectionOptions(s);
  for (let attempt = 0; ; attempt++) {
    try {
      return await connect(opts);
    } catch (err) {
      const e = err as Error;
      const msg = `${e.name} ${e.message}`.toLowerCase();
      if (msg.includes("authorization") || msg.includes("authentication") || msg.includes("tls")) throw e;
      if (signal?.aborted) throw e;
      onRetry?.(attempt, e);
      await sleep(backoffMs(attempt), signal);
      if (signal?.aborted) throw e;
    }
  }
}
