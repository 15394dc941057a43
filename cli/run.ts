import { type Command, Option } from "commander";
import { pino } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { DEFAULT_STREAM_LIMITS } from "../lib/jetstream.ts";
import { pulledMetrics } from "../lib/metrics.ts";
import { startOpsServer } from "../lib/ops-server.ts";
import { StateError } from "../lib/state.ts";
import { LiveConfig, LivePipeline, partitionFilter, type SeriesSink } from "../pipelines/live.ts";
import { parseBytes } from "../simulate/index.ts";
import { detectOptions, readDetectConfig } from "./detect-config.ts";
import { CliError, EXIT } from "./errors.ts";
import { addNatsAuthOptions, type NatsFlags, natsSettingsFromFlags } from "./nats-flags.ts";
import { checkLogLevel, intFlag, logLevelOption, parseDurationMs } from "./options.ts";
import { addInfluxOptions, checkInfluxInBackground, influxSinkFromFlags } from "./run-influx.ts";
import {
  addMitigationOptions,
  type MitigationFlags,
  mitigationSettingsFromFlags,
  openMitigation,
  registerMitigationMetrics,
} from "./run-mitigation.ts";
import {
  addSnapshotOptions,
  openSnapshotSinks,
  registerSnapshotMetrics,
  type SnapshotFlags,
  snapshotSettingsFromFlags,
  snapshotStateKey,
} from "./run-snapshots.ts";

interface RunFlags extends NatsFlags, SnapshotFlags, MitigationFlags {
  partition: string;
  batch: string;
  maxAckPending: string;
  checkpointInterval: string;
  maxMessageBytes: string;
  streamMaxAge: string;
  streamMaxBytes: string;
  lateness: string;
  gate: string;
  detectConfig?: string;
  instance?: string;
  resetState: boolean;
  metricsPort: string;
  metricsHost: string;
  logLevel: string;
  [influx: `influx${string}`]: string | boolean | undefined;
}

export function parsePartition(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (m === null) throw new CliError(`--partition: expected INDEX/COUNT such as 0/1 or 2/4, got "${text}"`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || count > 1024 || index >= count)
    throw new CliError(`--partition: index must be below the count (1..1024), got "${text}"`);
  return { index, count };
}

function bytesFlag(flag: string, text: string): number {
  try {
    return parseBytes(text);
  } catch {
    throw new CliError(`${flag}: expected a size like 256KiB, 10GiB or 1048576, got "${text}"`);
  }
}

export function registerRun(program: Command): void {
  const cmd = program
    .command("run")
    .description(
      "Run the detection pipeline live: telemetry from NATS JetStream, suspects and dead letters back to " +
        "NATS, series to InfluxDB; checkpointed in NATS so a restart resumes where it stopped.",
    )
    .addOption(
      new Option(
        "--nats <urls>",
        "NATS server URL(s), comma separated (env RESIN_NATS_URL) [default: nats://127.0.0.1:4222]",
      ),
    )
    .addOption(
      new Option("--partition <i/n>", "own partition i of n of the components (see README: partitioning)")
        .env("RESIN_PARTITION")
        .default("0/1"),
    )
    .addOption(new Option("--batch <n>", "messages per fetch").env("RESIN_BATCH").default("2000"))
    .addOption(
      new Option("--max-ack-pending <n>", "unacknowledged messages at most (backpressure)")
        .env("RESIN_MAX_ACK_PENDING")
        .default("50000"),
    )
    .addOption(
      new Option("--checkpoint-interval <duration>", "save state and acknowledge at least this often")
        .env("RESIN_CHECKPOINT_INTERVAL")
        .default("5s"),
    )
    .addOption(
      new Option("--max-message-bytes <size>", "larger telemetry messages are dead letters")
        .env("RESIN_MAX_MESSAGE_BYTES")
        .default("256KiB"),
    )
    .addOption(
      new Option("--stream-max-age <duration>", "telemetry retention when resin creates the stream")
        .env("RESIN_STREAM_MAX_AGE")
        .default("7d"),
    )
    .addOption(
      new Option("--stream-max-bytes <size>", "telemetry size limit when resin creates the stream")
        .env("RESIN_STREAM_MAX_BYTES")
        .default("10GiB"),
    )
    .addOption(
      new Option("--lateness <duration>", "allowed lateness of samples").env("RESIN_LATENESS").default("10m"),
    )
    .addOption(
      new Option("--gate <mode>", "none: every process; bucket: only hosts behind an anomalous bucket")
        .env("RESIN_GATE")
        .default("none"),
    )
    .addOption(
      new Option(
        "--detect-config <file>",
        "detector settings as JSON: {window, detect, buckets, lifecycle, gate} (README: detector settings)",
      ).env("RESIN_DETECT_CONFIG"),
    )
    .addOption(new Option("--instance <name>", "instance name (default: host name)").env("RESIN_INSTANCE"))
    .addOption(
      new Option(
        "--reset-state",
        "discard this partition's saved state and rebuild it from the telemetry the stream still holds",
      ).env("RESIN_RESET_STATE"),
    )
    .addOption(
      new Option("--metrics-port <port>", "port of /metrics and /healthz (0: off)")
        .env("RESIN_METRICS_PORT")
        .default("9464"),
    )
    .addOption(
      new Option("--metrics-host <host>", "address of /metrics and /healthz")
        .env("RESIN_METRICS_HOST")
        .default("0.0.0.0"),
    )
    .addOption(logLevelOption());
  addNatsAuthOptions(cmd);
  addInfluxOptions(cmd);
  addSnapshotOptions(cmd);
  addMitigationOptions(cmd);
  cmd
    .addHelpText(
      "after",
      `
Every flag can also be set with the environment variable shown. Settings are validated at
start-up; a bad one exits with code 2 and names it. SIGTERM or SIGINT drains: the messages in
hand are processed, outputs published, the state checkpointed and acknowledged, points flushed.

Outputs: suspect events on resin.suspects.<component> (stream RESIN_SUSPECTS), dead letters on
resin.deadletter (stream RESIN_DEADLETTER), checkpoints in KV bucket resin_checkpoints with the
state in Object Store bucket resin_state.

With --snapshots, each leaking component's best-ranked suspects are heap-profiled through the
agents (request/reply on resin.agent.<host>.snapshot; profiles in Object Store bucket
resin_profiles), the leaking stacks diagnosed, and a ticket written (--tickets-dir), published on
resin.tickets (stream RESIN_TICKETS) and POSTed to --ticket-webhook. Traces survive a restart
(KV bucket resin_snapshots). Simulated fleets: run \`resin agent-sim\` with the simulation's flags
and keep the default --snapshot-clock event; real agents: --snapshot-clock wall.

Example:
  resin run --nats nats://127.0.0.1:4222 --influx-url http://127.0.0.1:8086 \\
    --influx-org resin --influx-bucket resin --influx-token "$INFLUX_TOKEN"
  resin simulate --nats nats://127.0.0.1:4222 --hosts 200 --days 5 --speed 3600`,
    )
    .action(async (flags: RunFlags) => {
      await runCommand(flags);
    });
}

async function runCommand(flags: RunFlags): Promise<void> {
  const nats = natsSettingsFromFlags(flags, "resin run");
  if (flags.gate !== "none" && flags.gate !== "bucket")
    throw new CliError(`--gate: expected "none" or "bucket" (got "${flags.gate}")`);
  checkLogLevel(flags.logLevel);
  const partition = parsePartition(flags.partition);
  const metricsPort = intFlag("--metrics-port", flags.metricsPort, 0, 65535);
  const live = LiveConfig.parse({
    partition,
    batchSize: intFlag("--batch", flags.batch, 1, 100_000),
    maxAckPending: intFlag("--max-ack-pending", flags.maxAckPending, 2, 10_000_000),
    checkpointIntervalMs: parseDurationMs(flags.checkpointInterval, "--checkpoint-interval"),
    maxMessageBytes: bytesFlag("--max-message-bytes", flags.maxMessageBytes),
    resetState: flags.resetState === true,
    ...(flags.instance !== undefined ? { instance: flags.instance } : {}),
  });
  const limits = {
    ...DEFAULT_STREAM_LIMITS,
    maxAgeMs: parseDurationMs(flags.streamMaxAge, "--stream-max-age"),
    maxBytes: bytesFlag("--stream-max-bytes", flags.streamMaxBytes),
  };
  const allowedLatenessMs = parseDurationMs(flags.lateness, "--lateness");
  const detectFile = flags.detectConfig === undefined ? undefined : readDetectConfig(flags.detectConfig);
  const snapshotSettings = snapshotSettingsFromFlags(flags);
  const mitigationSettings = mitigationSettingsFromFlags(flags);

  const log = pino({ level: flags.logLevel, base: { instance: live.instance, partition: flags.partition } });
  const influx = influxSinkFromFlags(flags, { instance: live.instance, partition: flags.partition }, log);
  if (influx !== undefined) checkInfluxInBackground(influx.sink, log);
  const snapshots =
    snapshotSettings === undefined
      ? undefined
      : await openSnapshotSinks(snapshotSettings, nats, snapshotStateKey(partition), influx?.series, log);
  const mitigation =
    mitigationSettings === undefined
      ? undefined
      : await openMitigation(mitigationSettings, nats, partition, live.instance, snapshots, influx, log);
  const sink: SeriesSink | undefined = mitigation ?? snapshots ?? influx?.series;
  const pipeline = new LivePipeline(
    live,
    nats,
    detectOptions(detectFile, { allowedLatenessMs, gate: flags.gate }),
    log,
    sink,
    limits,
  );

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerMetrics(registry, pipeline, sink);
  if (snapshots !== undefined) registerSnapshotMetrics(registry, snapshots);
  if (mitigation !== undefined) registerMitigationMetrics(registry, mitigation);
  const server =
    metricsPort === 0
      ? undefined
      : await startOpsServer(metricsPort, flags.metricsHost, registry, () => {
          const connected = pipeline.nc !== undefined && !pipeline.nc.isClosed();
          const stalledMs = Date.now() - pipeline.lastTurnAt;
          return {
            ok: connected && stalledMs < 60_000,
            detail: { nats: connected ? "connected" : "not connected", lastTurnMsAgo: stalledMs },
          };
        }).catch((err: Error) => {
          throw new CliError(`--metrics-port ${metricsPort}: cannot listen: ${err.message}`);
        });

  let signals = 0;
  const onSignal = (signal: string) => {
    signals++;
    if (signals > 1) {
      log.warn(
        { signal },
        "second signal: exiting without draining (state resumes from the last checkpoint)",
      );
      process.exit(1);
    }
    log.info({ signal }, "draining");
    pipeline.stop();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  log.info({ nats: nats.servers, filter: partitionFilter(partition), metricsPort }, "resin run starting");
  try {
    await pipeline.run();
  } catch (err) {
    if (err instanceof StateError) throw new CliError(err.message, EXIT.failure);
    if (signals === 0) throw err;
  } finally {
    const closed = await sink?.close();
    if (closed !== undefined && closed.undelivered > 0)
      log.warn({ undelivered: closed.undelivered }, "points not delivered to the time-series store");
    server?.close();
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
  log.info({ ...pipeline.counters, points: sink?.stats }, "resin run stopped");
}

function registerMetrics(registry: Registry, pipeline: LivePipeline, sink: SeriesSink | undefined): void {
  const { counter, gauge } = pulledMetrics(registry);
  const c = pipeline.counters;
  const s = () => pipeline.graph?.stats;
  counter(
    "resin_messages_consumed_total",
    "telemetry messages taken from the stream (ingest rate: rate() of this)",
    () => c.consumed,
  );
  counter(
    "resin_messages_redelivered_total",
    "redelivered messages already in the checkpoint, skipped",
    () => c.redelivered,
  );
  counter("resin_samples_total", "process samples accepted into windows", () => s()?.window.samples ?? 0);
  counter(
    "resin_messages_invalid_total",
    "telemetry that failed validation (dead letters)",
    () => (s()?.decode.invalid ?? 0) + c.oversized,
  );
  counter("resin_messages_oversized_total", "telemetry messages over --max-message-bytes", () => c.oversized);
  counter(
    "resin_messages_late_total",
    "samples later than the allowed lateness, dropped",
    () => s()?.window.late ?? 0,
  );
  counter("resin_messages_duplicate_total", "duplicate samples, dropped", () => s()?.window.duplicates ?? 0);
  counter("resin_windows_total", "event-time windows closed", () => s()?.windows ?? 0);
  counter("resin_suspect_events_total", "suspect events published", () => c.suspectsPublished);
  counter("resin_deadletters_total", "dead letters published", () => c.deadLetters);
  counter("resin_checkpoints_total", "checkpoints saved", () => c.checkpoints);
  counter("resin_publish_retries_total", "publishes retried", () => c.publishRetries);
  gauge("resin_consumer_lag_messages", "messages waiting in the consumer", () => c.consumerLag);
  gauge("resin_open_suspects", "suspects currently open", () => s()?.openSuspects ?? 0);
  gauge("resin_tracked_series", "process series tracked", () => s()?.trackedSeries ?? 0);
  gauge("resin_checkpoint_bytes", "size of the last checkpoint", () => c.checkpointBytes);
  counter(
    "resin_points_written_total",
    "points the time-series store confirmed",
    () => sink?.stats.written ?? 0,
  );
  counter(
    "resin_points_dropped_total",
    "points given up on (buffer full or retries exhausted)",
    () => sink?.stats.dropped ?? 0,
  );
  gauge("resin_points_pending", "points waiting to be written", () => sink?.stats.pending ?? 0);
}
