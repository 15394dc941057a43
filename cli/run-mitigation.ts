/**
 * `resin run --mitigate`: the flags of the mitigation sink, their validation (a usage error
 * naming the flag, its variable and the value; a bad rules file exits 3 naming the field), the
 * sink they make on top of the other sinks, and its metrics.
 */
import { accessSync, constants, mkdirSync, readFileSync } from "node:fs";
import { type Command, Option } from "commander";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { pulledMetrics } from "../lib/metrics.ts";
import { connectWithRetry, type NatsSettings } from "../lib/nats.ts";
import { partitionStateKey, type SeriesSink } from "../pipelines/live.ts";
import { ValidationError } from "../schemas/common.ts";
import { type MitigationConfig, parseMitigationConfig } from "../sinks/mitigation/config.ts";
import { targetKey } from "../sinks/mitigation/engine.ts";
import { MitigationSeriesTap } from "../sinks/mitigation/series.ts";
import {
  MitigationSink,
  type MitigationSinkConfig,
  parseMitigationSinkConfig,
} from "../sinks/mitigation/sink.ts";
import { isActive } from "../sinks/snapshot/core.ts";
import type { SnapshotSeriesTap } from "../sinks/snapshot/series.ts";
import { CliError, EXIT } from "./errors.ts";
import { parseDurationMs } from "./options.ts";

export interface MitigationFlags {
  mitigate?: boolean | string;
  [mitigation: `mitigation${string}`]: string | boolean | undefined;
}

const truthy = (v: unknown) =>
  v === true || (typeof v === "string" && v !== "false" && v !== "0" && v !== "");

export function addMitigationOptions(cmd: Command): void {
  cmd.addOption(
    new Option(
      "--mitigate",
      "mitigate suspects through the agents (resin.agent.<host>.mitigate): restart, migrate, reboot by the rules; a dry run unless --mitigation-live",
    ).env("RESIN_MITIGATE"),
  );
  cmd.addOption(
    new Option(
      "--mitigation-rules <file>",
      "JSON rules file: decision tree, allowlists, budgets (sinks/mitigation/README.md) [default: the built-in tree, nothing allowlisted]",
    ).env("RESIN_MITIGATION_RULES"),
  );
  cmd.addOption(
    new Option(
      "--mitigation-audit-dir <dir>",
      "append every mitigation decision to <dir>/mitigation-audit.ndjson",
    ).env("RESIN_MITIGATION_AUDIT_DIR"),
  );
  cmd.addOption(
    new Option(
      "--mitigation-live",
      "send commands for real (without it, agents only check them: dry run)",
    ).env("RESIN_MITIGATION_LIVE"),
  );
  cmd.addOption(
    new Option(
      "--mitigation-clock <event|wall>",
      'time budgets and verification run on: "event" (telemetry time; simulated agents) or "wall" (real agents) [default: event]',
    ).env("RESIN_MITIGATION_CLOCK"),
  );
  cmd.addOption(
    new Option(
      "--mitigation-timeout <duration>",
      "wall-clock time an agent has to answer a command; then it counts as failed [default: 10m]",
    ).env("RESIN_MITIGATION_TIMEOUT"),
  );
}

/** The validated settings, or undefined without `--mitigate`. Checked before anything connects. */
export function mitigationSettingsFromFlags(flags: MitigationFlags): MitigationSinkConfig | undefined {
  const get = (key: string) => (flags as Record<string, unknown>)[key];
  const text = (key: string) => {
    const v = get(key);
    return typeof v === "string" ? v : undefined;
  };
  if (!truthy(flags.mitigate)) {
    const stray = (
      [
        ["--mitigation-rules", "mitigationRules"],
        ["--mitigation-audit-dir", "mitigationAuditDir"],
        ["--mitigation-live", "mitigationLive"],
        ["--mitigation-clock", "mitigationClock"],
        ["--mitigation-timeout", "mitigationTimeout"],
      ] as const
    ).find(([, key]) => get(key) !== undefined && get(key) !== false);
    if (stray !== undefined) throw new CliError(`${stray[0]} needs --mitigate (or RESIN_MITIGATE=1)`);
    return undefined;
  }
  const live = truthy(get("mitigationLive"));
  const rulesFile = text("mitigationRules");
  let engine: MitigationConfig;
  if (rulesFile === undefined) engine = parseMitigationConfig({ dryRun: !live });
  else {
    const rules = readRules(rulesFile);
    if (rules.dryRun === false && !live)
      throw new CliError(
        `--mitigation-rules ${rulesFile}: "dryRun": false needs --mitigation-live as well (live mitigation is never switched on by a file alone)`,
      );
    engine = { ...rules, dryRun: !live };
  }
  const clock = text("mitigationClock");
  if (clock !== undefined && clock !== "event" && clock !== "wall")
    throw new CliError(
      `--mitigation-clock (RESIN_MITIGATION_CLOCK): expected "event" or "wall", got "${clock}"`,
    );
  const dir = text("mitigationAuditDir");
  if (dir !== undefined) {
    try {
      mkdirSync(dir, { recursive: true });
      accessSync(dir, constants.W_OK);
    } catch (err) {
      throw new CliError(
        `--mitigation-audit-dir: cannot write to "${dir}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  const timeout = text("mitigationTimeout");
  try {
    return parseMitigationSinkConfig({
      engine,
      ...(clock !== undefined ? { clock } : {}),
      ...(dir !== undefined ? { auditDir: dir } : {}),
      ...(timeout !== undefined
        ? { requestTimeoutMs: parseDurationMs(timeout, "--mitigation-timeout") }
        : {}),
    });
  } catch (err) {
    // A value the sink's schema refuses (e.g. a timeout under its minimum) is a bad flag.
    if (err instanceof ValidationError) throw new CliError(`--mitigation-*: ${err.message}`);
    throw err;
  }
}

/** A rules file, parsed and validated; errors name the file, the field and the value (exit 3). */
export function readRules(path: string): MitigationConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== undefined) throw new CliError(`--mitigation-rules: cannot read "${path}": ${code}`);
    throw new CliError(`--mitigation-rules ${path}: not JSON: ${(err as Error).message}`, EXIT.invalidInput);
  }
  try {
    return parseMitigationConfig(raw);
  } catch (err) {
    if (err instanceof ValidationError)
      throw new CliError(`--mitigation-rules ${path}: ${err.message}`, EXIT.invalidInput);
    throw err;
  }
}

/** Name of a partition's mitigation state (one per partition, like the checkpoints). */
export function mitigationStateKey(partition: { index: number; count: number }): string {
  return partitionStateKey("mitigation", partition);
}

/**
 * The processes the snapshot sink traces now, as target keys (host/component/process):
 * mitigation waits for what would end a trace (engine.setTracing).
 */
export function tracingHostsOf(tap: SnapshotSeriesTap): () => string[] {
  return () => {
    const keys: string[] = [];
    for (const c of tap.snapshots.core.cases())
      for (const t of c.traces) if (isActive(t)) keys.push(targetKey(t.host, t.component, t.process));
    return keys;
  };
}

/**
 * Connects (waiting for the server like the pipeline does), opens the mitigation sink and returns
 * the `SeriesSink` that feeds it and `inner`.
 */
export async function openMitigationSink(
  settings: MitigationSinkConfig,
  nats: NatsSettings,
  stateKey: string,
  inner: SeriesSink | undefined,
  log: Logger,
  extra: {
    instance: string;
    tracingHosts?: () => Iterable<string>;
    writeLines?: (lines: string[]) => void;
  },
): Promise<MitigationSeriesTap> {
  const nc = await connectWithRetry({ ...nats, name: `${nats.name}-mitigation` }, (attempt, err) =>
    log.warn({ attempt, err: err.message }, "NATS not reachable for the mitigation sink, retrying"),
  );
  const sink = await MitigationSink.open(nc, settings, {
    log: log.child({ sink: "mitigation" }),
    stateKey,
    instance: extra.instance,
    ...(extra.tracingHosts !== undefined ? { tracingHosts: extra.tracingHosts } : {}),
    ...(extra.writeLines !== undefined ? { writeLines: extra.writeLines } : {}),
  });
  log.info(
    {
      dryRun: settings.engine.dryRun,
      clock: settings.clock,
      rules: settings.engine.rules.map((r) => r.name),
      allowlisted: Object.keys(settings.engine.allow),
      auditDir: settings.auditDir,
    },
    settings.engine.dryRun ? "mitigation sink ready (dry run)" : "mitigation sink ready (LIVE)",
  );
  return new MitigationSeriesTap(sink, inner, async () => {
    const { undelivered } = await sink.close();
    if (undelivered > 0)
      log.warn({ undelivered }, "mitigation audit records not published on NATS (in the file)");
    await nc.drain().catch(() => undefined);
  });
}

export function registerMitigationMetrics(registry: Registry, tap: MitigationSeriesTap): void {
  const { counter, gauge } = pulledMetrics(registry);
  const s = () => tap.mitigation.stats;
  counter(
    "resin_mitigation_commands_total",
    "mitigation commands issued (dry runs included)",
    () => s().issued,
  );
  counter(
    "resin_mitigation_succeeded_total",
    "commands the agents ran (or checked, dry run)",
    () => s().succeeded,
  );
  counter("resin_mitigation_failed_total", "commands refused, failed or unanswered", () => s().failed);
  counter(
    "resin_mitigation_escalations_total",
    "next steps taken after a failure or a leak that stayed",
    () => s().escalated,
  );
  counter(
    "resin_mitigation_returns_total",
    "leaks flagged again after a step had worked",
    () => s().returned,
  );
  counter(
    "resin_mitigation_resolved_total",
    "targets the detector resolved (mitigation stopped)",
    () => s().resolved,
  );
  counter(
    "resin_mitigation_gave_up_total",
    "targets with no step left (a human must look)",
    () => s().gaveUp,
  );
  counter(
    "resin_mitigation_skipped_total",
    "ladder steps skipped (guard, not allowlisted, no script)",
    () => s().skipped,
  );
  counter(
    "resin_mitigation_deferred_budget_total",
    "commands held back by the per-cluster or per-region budget",
    () => s().deferredClusterBudget + s().deferredRebootBudget,
  );
  counter(
    "resin_mitigation_deferred_tracing_total",
    "commands held back by a heap trace on the host",
    () => s().deferredTracing,
  );
  counter("resin_mitigation_timeouts_total", "commands agents did not answer in time", () => s().timeouts);
  counter(
    "resin_mitigation_no_responders_total",
    "commands no agent was there to answer",
    () => s().noResponders,
  );
  counter(
    "resin_mitigation_unknown_results_total",
    "results for commands the engine no longer waits for",
    () => s().unknownResults,
  );
  counter(
    "resin_mitigation_audit_published_total",
    "audit records published on NATS",
    () => s().auditPublished,
  );
  counter(
    "resin_mitigation_audit_dropped_total",
    "audit records dropped (backlog full or never drained)",
    () => s().auditDropped + s().auditBacklogDropped,
  );
  counter(
    "resin_mitigation_state_write_errors_total",
    "failed saves of the mitigation state (retried)",
    () => s().stateWriteErrors,
  );
  gauge("resin_mitigation_audit_backlog", "audit records waiting to be published", () => s().auditBacklog);
}

/**
 * The mitigation sink on top of whatever `resin run` already has: it waits for the snapshot
 * sink's heap traces and writes its audit points through the InfluxDB sink.
 */
export async function openMitigation(
  settings: MitigationSinkConfig,
  nats: NatsSettings,
  partition: { index: number; count: number },
  instance: string,
  snapshots: SnapshotSeriesTap | undefined,
  influx: { series: SeriesSink; sink: { write(lines: readonly string[]): void } } | undefined,
  log: Logger,
): Promise<MitigationSeriesTap> {
  return await openMitigationSink(
    settings,
    nats,
    mitigationStateKey(partition),
    snapshots ?? influx?.series,
    log,
    {
      instance,
      ...(snapshots !== undefined ? { tracingHosts: tracingHostsOf(snapshots) } : {}),
      ...(influx !== undefined ? { writeLines: (lines: string[]) => influx.sink.write(lines) } : {}),
    },
  );
}
