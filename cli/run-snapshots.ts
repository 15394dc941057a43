/**
 * `resin run --snapshots`: the flags of the snapshot and ticket sinks, their validation (a
 * usage error naming the flag, its variable and the value), the sinks they make and their
 * metrics.
 */
import { accessSync, constants, mkdirSync } from "node:fs";
import { type Command, Option } from "commander";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { pulledMetrics } from "../lib/metrics.ts";
import { connectWithRetry, type NatsSettings } from "../lib/nats.ts";
import { partitionStateKey, type SeriesSink } from "../pipelines/live.ts";
import { describeViolations, ValidationError } from "../schemas/common.ts";
import { parseBytes } from "../simulate/index.ts";
import { parseSnapshotSinkConfig, type SnapshotSinkConfig } from "../sinks/snapshot/config.ts";
import { SnapshotSeriesTap } from "../sinks/snapshot/series.ts";
import { SnapshotSink } from "../sinks/snapshot/sink.ts";
import { parseTicketSinkConfig, type TicketSinkConfig } from "../sinks/ticket/config.ts";
import { TicketSink } from "../sinks/ticket/sink.ts";
import { CliError } from "./errors.ts";
import { intFlag, parseDurationMs } from "./options.ts";

export interface SnapshotFlags {
  snapshots?: boolean | string;
  ticketsDir?: string;
  ticketWebhook?: string;
  ticketSubject?: string;
  [snapshot: `snapshot${string}`]: string | boolean | undefined;
}

type Kind = "duration" | "int" | "size" | "clock";

/** Flag (without `--snapshot-`), setting, kind, help. Defaults are the schema's, shown in the help. */
const FLAGS: [string, keyof SnapshotSinkConfig, Kind, string][] = [
  [
    "clock",
    "clock",
    "clock",
    'time the schedule runs on: "event" (telemetry time; simulated agents, replays) or "wall" (real agents) [default: event]',
  ],
  [
    "interval",
    "collectIntervalMs",
    "duration",
    "time between two heap profiles of a traced process [default: 30m]",
  ],
  [
    "hosts",
    "tracesPerCase",
    "int",
    "hosts traced at once per leaking component, the best ranked [default: 3]",
  ],
  ["ring", "ringSize", "int", "profiles kept per trace; older ones are deleted [default: 24]"],
  ["min-profiles", "minProfiles", "int", "a trace is never complete with fewer profiles [default: 3]"],
  [
    "max-trace",
    "maxTraceMs",
    "duration",
    "a trace ends after this long and is diagnosed as it is [default: 24h]",
  ],
  [
    "cluster-limit",
    "maxCollectionsPerClusterHour",
    "int",
    "heap profiles per cluster in any hour, over all traces [default: 5]",
  ],
  ["timeout", "requestTimeoutMs", "duration", "wall-clock timeout of one request to an agent [default: 60s]"],
  [
    "sampling",
    "samplingIntervalBytes",
    "size",
    "mean bytes allocated between two heap samples [default: 512KiB]",
  ],
  [
    "cooldown",
    "caseCooldownMs",
    "duration",
    "after a diagnosis, new suspects of the component wait this long for another [default: 24h]",
  ],
  [
    "reference-refresh",
    "referenceRefreshMs",
    "duration",
    "reference profiles from healthy hosts are taken again when older than this [default: 24h]",
  ],
  [
    "reference-max-age",
    "referenceMaxAgeMs",
    "duration",
    "reference profiles older than this are deleted [default: 7d]",
  ],
];

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const flagKey = (name: string) => camel(`snapshot-${name}`);
const envOf = (name: string) => `RESIN_SNAPSHOT_${name.toUpperCase().replace(/-/g, "_")}`;

export function addSnapshotOptions(cmd: Command): void {
  cmd.addOption(
    new Option(
      "--snapshots",
      "profile suspects' heaps through the agents (resin.agent.<host>.snapshot), diagnose the leaking stacks and file tickets",
    ).env("RESIN_SNAPSHOTS"),
  );
  for (const [name, , kind, help] of FLAGS) {
    const value =
      kind === "duration" ? "duration" : kind === "size" ? "size" : kind === "clock" ? "event|wall" : "n";
    cmd.addOption(new Option(`--snapshot-${name} <${value}>`, help).env(envOf(name)));
  }
  cmd.addOption(
    new Option("--tickets-dir <dir>", "write each ticket there as <id>.json, <id>.md and <id>.html").env(
      "RESIN_TICKETS_DIR",
    ),
  );
  cmd.addOption(
    new Option(
      "--ticket-webhook <url>",
      "POST each ticket as JSON to this URL (retried with backoff; failures counted, never fatal)",
    ).env("RESIN_TICKET_WEBHOOK"),
  );
  cmd.addOption(
    new Option("--ticket-subject <subject>", "JetStream subject of the tickets [default: resin.tickets]").env(
      "RESIN_TICKET_SUBJECT",
    ),
  );
}

export interface SnapshotSettings {
  snapshot: SnapshotSinkConfig;
  ticket: TicketSinkConfig;
}

/** The validated settings, or undefined without `--snapshots`. Checked before anything connects. */
export function snapshotSettingsFromFlags(flags: SnapshotFlags): SnapshotSettings | undefined {
  const enabled =
    flags.snapshots === true || (typeof flags.snapshots === "string" && flags.snapshots !== "false");
  const given = (key: string) => {
    const v = (flags as Record<string, unknown>)[key];
    return typeof v === "string" ? v : undefined;
  };
  if (!enabled) {
    const stray = [
      ...FLAGS.map(([name]) => [`--snapshot-${name}`, flagKey(name)]),
      ["--tickets-dir", "ticketsDir"],
      ["--ticket-webhook", "ticketWebhook"],
      ["--ticket-subject", "ticketSubject"],
    ].find(([, key]) => given(key!) !== undefined);
    if (stray !== undefined) throw new CliError(`${stray[0]} needs --snapshots (or RESIN_SNAPSHOTS=1)`);
    return undefined;
  }

  const raw: Record<string, unknown> = {};
  for (const [name, key, kind] of FLAGS) {
    const text = given(flagKey(name));
    if (text === undefined) continue;
    const flag = `--snapshot-${name}`;
    if (kind === "duration") raw[key] = parseDurationMs(text, flag);
    else if (kind === "int") raw[key] = intFlag(flag, text, 1, 1_000_000);
    else if (kind === "size") {
      try {
        raw[key] = parseBytes(text);
      } catch {
        throw new CliError(`${flag}: expected a size like 512KiB or 1MiB, got "${text}"`);
      }
    } else raw[key] = text;
  }
  let snapshot: SnapshotSinkConfig;
  try {
    snapshot = parseSnapshotSinkConfig(raw);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const nameOf = new Map<string, string>(FLAGS.map((f) => [f[1], f[0]]));
    const named = err.violations.map((v) => {
      const name = nameOf.get(v.path);
      return { ...v, path: name === undefined ? v.path : `--snapshot-${name} (${envOf(name)})` };
    });
    throw new CliError(`snapshot settings: ${describeViolations(named)}`);
  }

  const dir = given("ticketsDir");
  if (dir !== undefined) {
    try {
      mkdirSync(dir, { recursive: true });
      accessSync(dir, constants.W_OK);
    } catch (err) {
      throw new CliError(
        `--tickets-dir: cannot write to "${dir}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  const ticketRaw: Record<string, unknown> = {};
  if (dir !== undefined) ticketRaw.dir = dir;
  const webhook = given("ticketWebhook");
  if (webhook !== undefined) ticketRaw.webhookUrl = webhook;
  const subject = given("ticketSubject");
  if (subject !== undefined) ticketRaw.subject = subject;
  let ticket: TicketSinkConfig;
  try {
    ticket = parseTicketSinkConfig(ticketRaw);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const flagOf: Record<string, string> = {
      webhookUrl: "--ticket-webhook (RESIN_TICKET_WEBHOOK)",
      subject: "--ticket-subject (RESIN_TICKET_SUBJECT)",
      dir: "--tickets-dir (RESIN_TICKETS_DIR)",
    };
    const named = err.violations.map((v) => ({ ...v, path: flagOf[v.path] ?? v.path }));
    throw new CliError(`ticket settings: ${describeViolations(named)}`);
  }
  return { snapshot, ticket };
}

/**
 * Connects (waiting for the server like the pipeline does), opens both sinks and returns the
 * `SeriesSink` that feeds the snapshot sink and `inner`.
 */
export async function openSnapshotSinks(
  settings: SnapshotSettings,
  nats: NatsSettings,
  stateKey: string,
  inner: SeriesSink | undefined,
  log: Logger,
): Promise<SnapshotSeriesTap> {
  const nc = await connectWithRetry({ ...nats, name: `${nats.name}-snapshots` }, (attempt, err) =>
    log.warn({ attempt, err: err.message }, "NATS not reachable for the snapshot sink, retrying"),
  );
  const tickets = await TicketSink.open(nc, settings.ticket, { log: log.child({ sink: "ticket" }) });
  const snapshots = await SnapshotSink.open(nc, settings.snapshot, {
    log: log.child({ sink: "snapshot" }),
    stateKey,
    onDiagnosis: async (report) => {
      await tickets.deliver(report);
    },
  });
  log.info(
    {
      clock: settings.snapshot.clock,
      intervalMs: settings.snapshot.collectIntervalMs,
      ticketsDir: settings.ticket.dir,
      webhook: settings.ticket.webhookUrl !== undefined,
    },
    "snapshot and ticket sinks ready",
  );
  return new SnapshotSeriesTap(snapshots, tickets, inner, log, nc);
}

/** Name of a partition's snapshot state (one per partition, like the checkpoints). */
export function snapshotStateKey(partition: { index: number; count: number }): string {
  return partitionStateKey("snapshots", partition);
}

export function registerSnapshotMetrics(registry: Registry, tap: SnapshotSeriesTap): void {
  const { counter, gauge } = pulledMetrics(registry);
  const s = () => tap.snapshots.stats;
  const t = () => tap.tickets.stats;
  counter(
    "resin_snapshot_cases_opened_total",
    "leaking components taken up for diagnosis",
    () => s().casesOpened,
  );
  counter(
    "resin_snapshot_cases_suppressed_total",
    "suspects not diagnosed because their component was diagnosed within the cool-down",
    () => s().casesSuppressed,
  );
  counter("resin_snapshot_diagnoses_total", "leaks diagnosed and ticketed", () => s().casesDiagnosed);
  counter(
    "resin_snapshot_cases_failed_total",
    "leaking components given up: no candidate host could be traced",
    () => s().casesFailed,
  );
  counter("resin_snapshot_traces_started_total", "hosts chosen for tracing", () => s().tracesStarted);
  counter(
    "resin_snapshot_hosts_given_up_total",
    "traced hosts given up after failures (the next candidate is traced)",
    () => s().hostsGivenUp,
  );
  counter(
    "resin_snapshot_traces_lost_total",
    "traces an agent no longer had, started again",
    () => s().tracesLost,
  );
  counter("resin_snapshot_collections_total", "heap profiles requested", () => s().collections);
  counter(
    "resin_snapshot_collections_deferred_total",
    "collections held back by the per-cluster hourly limit",
    () => s().collectionsDeferred,
  );
  counter("resin_snapshot_requests_total", "requests sent to agents", () => s().requests);
  counter(
    "resin_snapshot_request_failures_total",
    "start or collect requests that failed",
    () => s().requestFailures,
  );
  counter(
    "resin_snapshot_request_timeouts_total",
    "requests agents did not answer in time",
    () => s().requestTimeouts,
  );
  counter(
    "resin_snapshot_no_responders_total",
    "requests no agent was there to answer",
    () => s().noResponders,
  );
  counter("resin_snapshot_refusals_total", "requests agents answered with an error", () => s().refusals);
  counter(
    "resin_snapshot_invalid_replies_total",
    "agent replies that were not of the protocol",
    () => s().invalidReplies,
  );
  counter(
    "resin_snapshot_diagnose_errors_total",
    "diagnoses that could not be made",
    () => s().diagnoseErrors,
  );
  counter(
    "resin_snapshot_report_errors_total",
    "diagnoses the ticket sink did not take (retried)",
    () => s().reportErrors,
  );
  counter(
    "resin_snapshot_references_total",
    "reference profile series taken from healthy hosts",
    () => s().referencesTaken,
  );
  counter(
    "resin_snapshot_references_removed_total",
    "reference profile series removed as stale",
    () => s().referencesRemoved,
  );
  counter(
    "resin_snapshot_profiles_deleted_total",
    "profiles deleted from the Object Store",
    () => s().profilesDeleted,
  );
  counter(
    "resin_snapshot_profile_delete_errors_total",
    "profiles that could not be deleted (the bucket's max age removes them)",
    () => s().deleteErrors,
  );
  counter(
    "resin_snapshot_suspects_ignored_total",
    "kernel suspects (no heap profile)",
    () => s().kernelSkipped,
  );
  counter(
    "resin_snapshot_state_write_errors_total",
    "failed saves of the snapshot state (retried)",
    () => s().stateWriteErrors,
  );
  gauge("resin_snapshot_active_cases", "leaking components being diagnosed", () => s().activeCases);
  gauge("resin_snapshot_active_traces", "traces running on agents", () => s().activeTraces);
  counter("resin_tickets_total", "tickets written", () => t().tickets);
  counter(
    "resin_ticket_publish_errors_total",
    "tickets not published on NATS (retried)",
    () => t().publishErrors,
  );
  counter("resin_ticket_webhook_delivered_total", "tickets the webhook accepted", () => t().webhookDelivered);
  counter("resin_ticket_webhook_failures_total", "failed webhook attempts", () => t().webhookFailures);
  counter(
    "resin_ticket_webhook_dropped_total",
    "tickets the webhook never got (refused, retries exhausted, queue full)",
    () => t().webhookDropped,
  );
  gauge("resin_ticket_webhook_pending", "tickets waiting for the webhook", () => t().webhookPending);
}
