/**
 * Settings of the InfluxDB sink: one strict schema, read from flags first and then from the
 * environment (`RESIN_INFLUX_*`), parsed once at start-up with an error that names the field
 * and the value.
 */
import { z } from "zod";
import { checkOrThrow } from "../../schemas/common.ts";

/** An integer given as a number or as a decimal string (flags and env vars are strings). */
function integerFrom(value: unknown): unknown {
  return typeof value === "string" && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
}

/** A boolean given as one, or spelled out: `z.coerce.boolean()` would read "false" as true. */
function booleanFrom(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const text = value.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(text)) return true;
  if (["false", "0", "no", "off"].includes(text)) return false;
  return value;
}

const count = (min: number) => z.preprocess(integerFrom, z.number().int().min(min));

const httpUrl = z.string().refine((text) => {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}, "must be an http:// or https:// URL");

/** Which per-process memory series (`resin_memory`) are written. */
export const ProcessSeries = z.enum(["all", "suspects", "none"]);
export type ProcessSeries = z.infer<typeof ProcessSeries>;

export const InfluxSinkConfig = z
  .object({
    /** Base URL of the server, e.g. http://127.0.0.1:8086 (no /api/v2 suffix). */
    url: httpUrl,
    /**
     * "v2": InfluxDB 2.x/3.x and VictoriaMetrics (`/api/v2/write`, org + bucket + token).
     * "v1": InfluxDB 1.x (`/write?db=`, database + retention policy + user/password).
     */
    api: z.enum(["v2", "v1"]).default("v2"),
    /** v2: organization name (VictoriaMetrics ignores it, but the write path carries it). */
    org: z.string().min(1).optional(),
    /** v2: bucket the points go to. */
    bucket: z.string().min(1).optional(),
    /** v2: API token (`Authorization: Token …`); may be empty for VictoriaMetrics. */
    token: z.string().optional(),
    /** v1: database the points go to. */
    database: z.string().min(1).optional(),
    /** v1: retention policy; the database's default policy when unset. */
    retentionPolicy: z.string().min(1).optional(),
    /** v1: user name, sent as the `u` query parameter. */
    username: z.string().min(1).optional(),
    /** v1: password, sent as the `p` query parameter (only with `username`). */
    password: z.string().optional(),
    /** v1: the healthcheck issues `CREATE DATABASE` (idempotent in InfluxDB 1.x). */
    createDatabase: z.preprocess(booleanFrom, z.boolean()).default(true),
    /** Lines per write request; a batch is also sent every `flushIntervalMs`. */
    batchSize: count(1).default(5000),
    /** Longest time a line waits in the write buffer; 0: only full batches and `flush()` send. */
    flushIntervalMs: count(0).default(1000),
    /** Retries of one failed batch (network errors, 429 and 5xx); 4xx are never retried. */
    maxRetries: count(0).default(8),
    /** First retry delay; it doubles per attempt (with jitter) up to `maxRetryDelayMs`. */
    minRetryDelayMs: count(1).default(1000),
    /** Longest delay between two attempts (a server's Retry-After may ask for more). */
    maxRetryDelayMs: count(1).default(60_000),
    /** How long after its first attempt a batch may still be retried; then it is dropped. */
    maxRetryTimeMs: count(1).default(600_000),
    /** Lines kept for retry at most; beyond that the oldest batches are dropped (counted). */
    maxBufferLines: count(1).default(100_000),
    /** Socket timeout of one HTTP request. */
    timeoutMs: count(1).default(10_000),
    /** Longest time `flush()` (and so `close()`) waits for the server. */
    flushTimeoutMs: count(0).default(10_000),
    /** Which per-process hourly memory series to write: every one, only suspects', or none. */
    processSeries: ProcessSeries.default("all"),
  })
  .strict()
  .superRefine((s, ctx) => {
    const need = (field: "org" | "bucket" | "database", hint = "") => {
      if (s[field] === undefined)
        ctx.addIssue({
          code: "custom",
          path: [field],
          message: `${field} is required when api is "${s.api}"${hint}`,
        });
    };
    if (s.api === "v2") {
      const hint = s.database !== undefined ? ' (database is set: did you mean api "v1"?)' : "";
      need("org", hint);
      need("bucket", hint);
    } else {
      need("database");
    }
    if (s.password !== undefined && s.username === undefined)
      ctx.addIssue({ code: "custom", path: ["password"], message: "password needs username" });
    if (s.minRetryDelayMs > s.maxRetryDelayMs)
      ctx.addIssue({
        code: "custom",
        path: ["minRetryDelayMs"],
        message: `must not exceed maxRetryDelayMs (${s.maxRetryDelayMs})`,
      });
  });
export type InfluxSinkConfig = z.infer<typeof InfluxSinkConfig>;
export type InfluxSinkConfigInput = z.input<typeof InfluxSinkConfig>;

/** Parses settings, throwing a `ValidationError` that names every bad field and its value. */
export function parseInfluxSinkConfig(raw: unknown): InfluxSinkConfig {
  return checkOrThrow(InfluxSinkConfig, raw, "InfluxDB sink settings");
}

/** The environment variables that fill settings not given as flags. */
export const INFLUX_ENV: Partial<Record<keyof InfluxSinkConfig, string>> = {
  url: "RESIN_INFLUX_URL",
  token: "RESIN_INFLUX_TOKEN",
  org: "RESIN_INFLUX_ORG",
  bucket: "RESIN_INFLUX_BUCKET",
  api: "RESIN_INFLUX_API",
  database: "RESIN_INFLUX_DB",
  username: "RESIN_INFLUX_USER",
  password: "RESIN_INFLUX_PASSWORD",
};

export type InfluxFlags = Partial<Record<keyof InfluxSinkConfig, string | number | boolean | undefined>>;

/**
 * Settings from flags first, then the environment (`RESIN_INFLUX_*`), unparsed. Unset (and
 * empty) stays unset, so the schema's defaults apply; no `url` means no sink.
 */
export function influxSettingsFrom(
  flags: InfluxFlags,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string | number | boolean> {
  const raw: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(flags)) if (value !== undefined && value !== "") raw[key] = value;
  for (const [key, envName] of Object.entries(INFLUX_ENV)) {
    if (raw[key] !== undefined) continue;
    const v = env[envName];
    if (v !== undefined && v !== "") raw[key] = v;
  }
  return raw;
}
