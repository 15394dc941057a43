/** `resin run`'s InfluxDB flags and the sink they make. */
import { type Command, Option } from "commander";
import type { Logger } from "pino";
import { describeViolations, ValidationError } from "../schemas/common.ts";
import {
  INFLUX_ENV,
  type InfluxFlags,
  InfluxSeriesSink,
  InfluxSink,
  type InfluxSinkConfig,
  influxSettingsFrom,
  parseInfluxSinkConfig,
} from "../sinks/influx/index.ts";
import { CliError } from "./errors.ts";
import { parseDurationMs } from "./options.ts";

/** Flag name (without `--influx-`), the setting it fills, its value name and help. */
const FLAGS: [string, keyof InfluxSinkConfig, string, string][] = [
  [
    "url",
    "url",
    "url",
    "InfluxDB/VictoriaMetrics base URL, e.g. http://127.0.0.1:8086 (no URL: no series are written)",
  ],
  [
    "api",
    "api",
    "v2|v1",
    'write API: "v2" (InfluxDB 2/3, VictoriaMetrics) or "v1" (InfluxDB 1.x /write) [default: v2]',
  ],
  ["org", "org", "org", "v2: organization"],
  ["bucket", "bucket", "bucket", "v2: bucket"],
  ["token", "token", "token", "v2: API token"],
  ["db", "database", "name", "v1: database (created if missing)"],
  ["rp", "retentionPolicy", "name", "v1: retention policy [default: the database's default]"],
  ["user", "username", "user", "v1: user name"],
  ["password", "password", "password", "v1: password"],
  [
    "series",
    "processSeries",
    "all|suspects|none",
    "hourly per-process memory series to write [default: all]",
  ],
  ["batch", "batchSize", "n", "lines per write request [default: 5000]"],
  [
    "buffer",
    "maxBufferLines",
    "n",
    "lines kept for retry at most; beyond that the oldest are dropped and counted [default: 100000]",
  ],
];

/** Duration flags, given like 30s or 10m, stored in milliseconds. */
const DURATIONS: [string, keyof InfluxSinkConfig, string][] = [
  ["flush-interval", "flushIntervalMs", "longest time a point waits before it is sent [default: 1s]"],
  [
    "retry-time",
    "maxRetryTimeMs",
    "how long a failed batch is retried before it is dropped (counted) [default: 10m]",
  ],
];

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const flagKey = (name: string) => camel(`influx-${name}`);
const envOf = (name: string) => `RESIN_INFLUX_${name.toUpperCase().replace(/-/g, "_")}`;

export function addInfluxOptions(cmd: Command): void {
  for (const [name, key, value, help] of FLAGS) {
    const option = new Option(`--influx-${name} <${value}>`, help);
    cmd.addOption(option.env(INFLUX_ENV[key] ?? envOf(name)));
  }
  for (const [name, , help] of DURATIONS)
    cmd.addOption(new Option(`--influx-${name} <duration>`, help).env(envOf(name)));
}

/** The sink the flags ask for, validated (a `CliError` naming the bad setting), or none without a URL. */
export function influxSinkFromFlags(
  flags: object,
  tags: { instance: string; partition: string },
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
): { series: InfluxSeriesSink; sink: InfluxSink } | undefined {
  const given: InfluxFlags = {};
  for (const [name, key] of FLAGS) {
    const v = (flags as Record<string, unknown>)[flagKey(name)];
    if (typeof v === "string") given[key] = v;
  }
  for (const [name, key] of DURATIONS) {
    const v = (flags as Record<string, unknown>)[flagKey(name)];
    if (typeof v === "string") given[key] = parseDurationMs(v, `--influx-${name}`);
  }
  const raw = influxSettingsFrom(given, env);
  if (raw.url === undefined) return undefined;
  let config: InfluxSinkConfig;
  try {
    config = parseInfluxSinkConfig(raw);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const nameOf = new Map<string, string>([...FLAGS, ...DURATIONS].map((f) => [f[1], f[0]]));
    const named = err.violations.map((v) => {
      const name = nameOf.get(v.path);
      const envName =
        INFLUX_ENV[v.path as keyof InfluxSinkConfig] ?? (name === undefined ? undefined : envOf(name));
      return {
        ...v,
        path: name === undefined ? v.path : `--influx-${name} (${envName})`,
      };
    });
    throw new CliError(`InfluxDB settings: ${describeViolations(named)}`);
  }
  const sink = new InfluxSink(config, { log: log.child({ sink: "influx" }) });
  return { sink, series: new InfluxSeriesSink(sink, tags) };
}

/** Checks the server once at start-up, without holding the pipeline up: a server that is down is retried by the writes. */
export function checkInfluxInBackground(sink: InfluxSink, log: Logger): void {
  sink.healthcheck().then(
    () => log.info({ url: sink.config.url, api: sink.config.api }, "time-series store reachable"),
    (err: Error) =>
      log.warn({ err: err.message }, "time-series store not ready; points are buffered and retried"),
  );
}
