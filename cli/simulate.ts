import { closeSync, openSync } from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { SingleBar } from "cli-progress";
import type { Command } from "commander";
import { DateTime } from "luxon";
import { TELEMETRY_STREAM } from "../lib/jetstream.ts";
import { connectWithRetry, type NatsSettings } from "../lib/nats.ts";
import { LineWriter } from "../lib/ndjson.ts";
import { ValidationError } from "../schemas/common.ts";
import {
  createSimulation,
  formatDuration,
  PRESET_DESCRIPTIONS,
  PRESETS,
  parseDuration,
  resolveScenario,
  ScenarioNotFoundError,
  type SimConfig,
  type SimOverrides,
  type SimStats,
  type Simulation,
  writeLines,
} from "../simulate/index.ts";
import {
  PublishError,
  type PublishProgress,
  type PublishResult,
  publishTelemetry,
} from "../simulate/publish.ts";
import { type ClosedLoopFlags, runClosedLoopCli } from "./closed-loop.ts";
import { CliError, EXIT } from "./errors.ts";
import { addNatsAuthOptions, type NatsFlags, natsSettingsFromFlags } from "./nats-flags.ts";
import { intFlag, parseDurationMs } from "./options.ts";

/** The flags that describe a simulated fleet, shared by the commands that rebuild one. */
export interface FleetFlags {
  scenario?: string;
  hosts?: string;
  days?: string;
  interval?: string;
  seed?: string;
  start?: string;
  lateness?: string;
}

interface SimulateFlags extends NatsFlags, FleetFlags, ClosedLoopFlags {
  closedLoop?: boolean;
  out?: string;
  truth?: string;
  summary: boolean;
  speed?: string;
  rate?: string;
  maxInFlight?: string;
  connectTimeout?: string;
}

/** Turns the flags into scenario overrides; only flags actually given override the scenario. */
export function overridesFromFlags(flags: FleetFlags): SimOverrides {
  const o: SimOverrides = {};
  if (flags.hosts !== undefined) o.hosts = intFlag("--hosts", flags.hosts, 1, 1_000_000);
  if (flags.days !== undefined) {
    const d = Number(flags.days);
    if (flags.days.trim() === "" || !Number.isFinite(d) || d <= 0 || d > 3660) {
      throw new CliError(
        `--days must be a number of days > 0 (fractions allowed, at most 3660), got "${flags.days}"`,
      );
    }
    o.days = d;
  }
  if (flags.interval !== undefined) {
    let ms: number;
    try {
      ms = parseDuration(flags.interval);
    } catch {
      throw new CliError(`--interval must be a duration such as 30s, 1m or 5m, got "${flags.interval}"`);
    }
    if (ms < 1000 || ms > 86_400_000) {
      throw new CliError(`--interval must be between 1s and 1d, got "${flags.interval}"`);
    }
    o.interval = ms;
  }
  if (flags.seed !== undefined) o.seed = intFlag("--seed", flags.seed, 0, Number.MAX_SAFE_INTEGER);
  if (flags.start !== undefined) {
    const dt = DateTime.fromISO(flags.start, { zone: "utc" });
    if (!dt.isValid || dt.toMillis() < 0) {
      throw new CliError(
        `--start must be an ISO-8601 time such as 2026-01-05T00:00:00Z, got "${flags.start}"`,
      );
    }
    o.start = dt.toMillis();
  }
  if (flags.lateness !== undefined) o.lateness = intFlag("--lateness", flags.lateness, 0, 100);
  return o;
}

/** Resolves a scenario for a command: an unknown name or a bad value is a usage error, an invalid file is invalid input. */
export function resolveForCli(scenario: string, overrides: SimOverrides): SimConfig {
  try {
    return resolveScenario(scenario, overrides);
  } catch (err) {
    if (err instanceof ScenarioNotFoundError) throw new CliError(`--scenario: ${err.message}`, EXIT.usage);
    if (err instanceof ValidationError) {
      // An invalid scenario file is invalid input; a bad override value is a usage error.
      const fromFile = err.what.startsWith("scenario file");
      throw new CliError(err.message, fromFile ? EXIT.invalidInput : EXIT.usage);
    }
    throw err;
  }
}

function checkWritable(flag: string, path: string): void {
  if (path === "-") return;
  try {
    closeSync(openSync(path, "w"));
  } catch (err) {
    throw new CliError(
      `${flag}: cannot write "${path}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

const n = (x: number) => x.toLocaleString("en-US");
const plural = (k: number, word: string) => `${k} ${word}${k === 1 ? "" : word.endsWith("sh") ? "es" : "s"}`;

function summary(stats: SimStats, out: string, truth: string | undefined, seconds: number): string {
  const d = stats.delivery;
  const l = stats.leaks;
  const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");
  const lines = [
    `resin simulate: scenario ${stats.scenario}, seed ${stats.seed}, ${n(stats.hosts)} hosts (${plural(stats.regions, "region")}, ` +
      `${plural(stats.clusters, "cluster")}), ${stats.ticks} ticks of ${formatDuration(stats.intervalMs)} from ${iso(stats.start)}`,
    `  messages  ${n(d.messages)} to ${out === "-" ? "stdout" : out} in ${seconds.toFixed(1)} s ` +
      `(${n(Math.round(d.messages / Math.max(seconds, 1e-3)))}/s); lost ${n(d.lost)}, duplicated ${n(d.duplicated)}, late ${n(d.late)}`,
    `  events    ${plural(stats.deploys.length, "deploy")}, ${plural(stats.restarts.crash, "crash")}, ` +
      `${plural(stats.hostDeaths, "host death")} ` +
      `(${stats.hostComebacks} back), config step ${stats.configChange ? `on ${stats.configChange.component}` : "none"}`,
    `  leaks     ${l.total}: steady ${l.byPattern.steady}, stair ${l.byPattern.stair}, spike ${l.byPattern.spike} | ` +
      `process ${l.byKind.process}, kernel ${l.byKind.kernel} | isolated ${l.byCause.isolated}, canary ${l.byCause.canary}, ` +
      `kernel ${l.byCause.kernel}${stats.canary ? ` (canary ${stats.canary.component} ${stats.canary.version})` : ""}`,
  ];
  if (truth !== undefined)
    lines.push(`  truth     ${n(l.total)} records to ${truth === "-" ? "stdout" : truth}`);
  return `${lines.join("\n")}\n`;
}

// --- Publishing to NATS JetStream (`--nats`) ---------------------------------------------------

/** Flags that only mean something with --nats. */
const PUBLISH_FLAGS: [keyof SimulateFlags, string][] = [
  ["speed", "--speed"],
  ["rate", "--rate"],
  ["maxInFlight", "--max-in-flight"],
  ["connectTimeout", "--connect-timeout"],
  ["natsToken", "--nats-token"],
  ["natsUser", "--nats-user"],
  ["natsPass", "--nats-pass"],
  ["natsCreds", "--nats-creds"],
  ["natsTlsCa", "--nats-tls-ca"],
  ["natsTlsCert", "--nats-tls-cert"],
  ["natsTlsKey", "--nats-tls-key"],
];

const DEFAULT_CONNECT_TIMEOUT = "30s";
const DEFAULT_MAX_IN_FLIGHT = 1024;

/** What `--nats` and its companions ask for, validated. */
export interface PublishPlan {
  settings: NatsSettings;
  speed?: number;
  rate?: number;
  maxInFlight: number;
  /** How long to wait for the server: at start-up, and for a message mid-stream. */
  connectTimeoutMs: number;
}

function positiveNumberFlag(flag: string, value: string, example: string): number {
  const x = Number(value.trim());
  if (value.trim() === "" || !Number.isFinite(x) || x <= 0) {
    throw new CliError(`${flag} must be a number > 0 such as ${example}, got "${value}"`);
  }
  return x;
}

/**
 * Validates the publishing flags (NATS settings from flags, then RESIN_NATS_* variables);
 * undefined without --nats. A bad value is a usage error naming the flag (or variable) and value.
 */
export function publishPlanFromFlags(
  flags: SimulateFlags,
  env: NodeJS.ProcessEnv = process.env,
): PublishPlan | undefined {
  if (flags.nats === undefined) {
    for (const [key, flag] of PUBLISH_FLAGS) {
      if (flags[key] !== undefined) throw new CliError(`${flag} only applies with --nats <urls>`);
    }
    return undefined;
  }
  if (flags.speed !== undefined && flags.rate !== undefined) {
    throw new CliError(
      `--speed and --rate are mutually exclusive (got --speed "${flags.speed}" and --rate "${flags.rate}")`,
    );
  }
  if (typeof flags.nats === "string" && flags.nats.trim() === "") {
    throw new CliError('--nats must be NATS server URL(s) such as nats://127.0.0.1:4222, got ""');
  }
  const settings = natsSettingsFromFlags(flags, "resin simulate", env);

  const plan: PublishPlan = {
    settings,
    maxInFlight:
      flags.maxInFlight === undefined
        ? DEFAULT_MAX_IN_FLIGHT
        : intFlag("--max-in-flight", flags.maxInFlight, 1, 65_536),
    connectTimeoutMs: parseDurationMs(flags.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT, "--connect-timeout"),
  };
  if (plan.connectTimeoutMs < 1) {
    throw new CliError(`--connect-timeout must be longer than 0, got "${flags.connectTimeout}"`);
  }
  if (flags.speed !== undefined) {
    plan.speed = positiveNumberFlag("--speed", flags.speed, "3600 (one simulated hour per second)");
  }
  if (flags.rate !== undefined) {
    plan.rate = positiveNumberFlag("--rate", flags.rate, "5000 (messages per second)");
  }
  return plan;
}

const secondsText = (ms: number) => `${+(ms / 1000).toFixed(1)} s`;
const minuteIso = (ms: number) => `${new Date(ms).toISOString().slice(0, 16)}Z`;

/**
 * Connects, waiting for the server at most `timeoutMs` (connectWithRetry alone waits forever).
 * Unreachable or refused: a CliError with exit code 1.
 */
async function connectWithin(settings: NatsSettings, timeoutMs: number): Promise<NatsConnection> {
  const abort = new AbortController();
  let lastError: Error | undefined;
  const pending = connectWithRetry(
    settings,
    (attempt, err) => {
      lastError = err;
      if (attempt === 0) {
        process.stderr.write(
          `resin simulate: NATS not reachable at ${settings.servers} (${err.message}); waiting up to ${secondsText(timeoutMs)}\n`,
        );
      }
    },
    abort.signal,
  );
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const why = lastError === undefined ? "" : ` (last error: ${lastError.message})`;
      reject(
        new CliError(
          `cannot connect to NATS at ${settings.servers} within ${secondsText(timeoutMs)}${why}; check --nats or raise --connect-timeout`,
          EXIT.failure,
        ),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([pending, timedOut]);
  } catch (err) {
    abort.abort();
    // A connection that comes up after we gave up is closed at once.
    pending.then(
      (nc) => nc.close(),
      () => undefined,
    );
    if (err instanceof CliError) throw err;
    throw new CliError(
      `cannot connect to NATS at ${settings.servers}: ${(err as Error).message}`,
      EXIT.failure,
    );
  } finally {
    clearTimeout(timer);
  }
}

/** Writes every line to the writer (waiting when it asks) and passes them on in batches. */
async function* teeBatches(
  lines: Iterable<string>,
  writer: LineWriter,
  size = 512,
): AsyncGenerator<string[]> {
  let batch: string[] = [];
  for (const line of lines) {
    const wait = writer.write(line);
    if (wait !== undefined) await wait;
    batch.push(line);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

interface ProgressReporter {
  update(p: PublishProgress): void;
  stop(): void;
}

/** A progress bar on a terminal; otherwise a plain line every few seconds. */
function publishProgress(sim: Simulation, tty: boolean): ProgressReporter {
  let lastAcked = 0;
  let lastMs = 0;
  let lastPrintMs = 0;
  const rateOf = (p: PublishProgress): number => {
    const acked = p.published + p.duplicates;
    const dt = p.elapsedMs - lastMs;
    const rate = dt > 0 ? ((acked - lastAcked) * 1000) / dt : 0;
    lastAcked = acked;
    lastMs = p.elapsedMs;
    return rate;
  };
  const status = (p: PublishProgress) =>
    !p.connected
      ? " | NATS disconnected, reconnecting"
      : p.retrying
        ? ` | retrying${p.lastError === undefined ? "" : `: ${p.lastError.message}`}`
        : "";
  if (tty) {
    const bar = new SingleBar({
      stream: process.stderr,
      format:
        "publish [{bar}] {percentage}% | {simTime} | {rate} msg/s | {stored} stored, {dups} dup{status}",
      hideCursor: true,
      clearOnComplete: true,
    });
    bar.start(sim.ticks, 0, { simTime: minuteIso(sim.start), rate: "0", stored: "0", dups: "0", status: "" });
    return {
      update(p) {
        const tick = Number.isNaN(p.lastTs) ? 0 : Math.floor((p.lastTs - sim.start) / sim.intervalMs) + 1;
        bar.update(Math.max(0, Math.min(sim.ticks, tick)), {
          simTime: Number.isNaN(p.lastTs) ? minuteIso(sim.start) : minuteIso(p.lastTs),
          rate: n(Math.round(rateOf(p))),
          stored: n(p.published),
          dups: n(p.duplicates),
          status: status(p),
        });
      },
      stop() {
        bar.stop();
      },
    };
  }
  return {
    update(p) {
      if (p.elapsedMs - lastPrintMs < 4000) return;
      lastPrintMs = p.elapsedMs;
      const simTime = Number.isNaN(p.lastTs) ? "-" : minuteIso(p.lastTs);
      process.stderr.write(
        `resin simulate: ${n(p.published)} stored, ${n(p.duplicates)} duplicates (${n(Math.round(rateOf(p)))} msg/s), ` +
          `simulated time ${simTime}, ${n(p.inFlight)} in flight${status(p)}\n`,
      );
    },
    stop() {},
  };
}

/** Publishes the simulation to NATS (and to `out` when given); returns what was published. */
async function publishSimulation(
  sim: Simulation,
  plan: PublishPlan,
  out: string | undefined,
): Promise<PublishResult> {
  const nc = await connectWithin(plan.settings, plan.connectTimeoutMs);
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  const tty = process.stderr.isTTY === true;
  const progress = publishProgress(sim, tty);
  const writer = out === undefined ? undefined : new LineWriter(out);
  try {
    const lines = writer === undefined ? sim.lines() : teeBatches(sim.lines(), writer);
    const options: Parameters<typeof publishTelemetry>[2] = {
      maxInFlight: plan.maxInFlight,
      giveUpAfterMs: plan.connectTimeoutMs,
      progressIntervalMs: tty ? 250 : 5000,
      onProgress: (p) => progress.update(p),
      signal: abort.signal,
    };
    if (plan.speed !== undefined) options.speed = plan.speed;
    if (plan.rate !== undefined) options.rate = plan.rate;
    const result = await publishTelemetry(nc, lines, options);
    await writer?.close();
    return result;
  } catch (err) {
    if (err instanceof PublishError) {
      throw new CliError(
        `publishing to NATS at ${plan.settings.servers} failed: ${err.message} ` +
          `(${n(err.result.published)} stored, ${n(err.result.undelivered)} not acknowledged)`,
        EXIT.failure,
      );
    }
    throw err;
  } finally {
    progress.stop();
    process.removeListener("SIGINT", onSigint);
    await nc.close();
  }
}

function natsSummary(r: PublishResult, plan: PublishPlan): string {
  const rate = Math.round(((r.published + r.duplicates) * 1000) / Math.max(r.elapsedMs, 1));
  const invalid = r.invalid > 0 ? `, ${n(r.invalid)} invalid lines skipped` : "";
  const undelivered = r.undelivered > 0 ? `, ${n(r.undelivered)} NOT acknowledged` : "";
  return (
    `  nats      ${n(r.published)} stored, ${n(r.duplicates)} duplicates, ${(r.bytes / 1e6).toFixed(1)} MB in ` +
    `${secondsText(r.elapsedMs)} (${n(rate)} msg/s), ${n(r.retries)} retries${invalid}${undelivered}; ` +
    `stream ${TELEMETRY_STREAM} at ${plan.settings.servers}\n`
  );
}

/** `resin simulate --nats`: publishes (and writes `out` when given), then the truth and the summary. */
async function runPublish(
  sim: Simulation,
  plan: PublishPlan,
  out: string | undefined,
  flags: SimulateFlags,
): Promise<void> {
  const began = performance.now();
  const result = await publishSimulation(sim, plan, out);
  const secs = (performance.now() - began) / 1000;
  if (flags.truth !== undefined) {
    const tw = new LineWriter(flags.truth);
    await writeLines(sim.truthLines(), tw);
    await tw.close();
  }
  if (flags.summary) {
    const dest = out === undefined ? "NATS" : `NATS and ${out === "-" ? "stdout" : out}`;
    process.stderr.write(summary(sim.stats(), dest, flags.truth, secs) + natsSummary(result, plan));
  }
  if (result.aborted) {
    throw new CliError(
      `interrupted: ${n(result.published + result.duplicates)} messages acknowledged, ${n(result.undelivered)} not`,
      130,
    );
  }
}

/** `--closed-loop`: the fleet without and with resin (cli/closed-loop.ts); 30 days unless --days. */
async function runClosedLoop(flags: SimulateFlags): Promise<void> {
  const other: [unknown, string][] = [
    [flags.out, "--out"],
    [flags.truth, "--truth"],
    [flags.nats, "--nats"],
  ];
  for (const [value, flag] of other)
    if (value !== undefined)
      throw new CliError(`${flag} does not apply with --closed-loop (it writes to --out-dir)`);
  const overrides = overridesFromFlags(flags);
  if (overrides.days === undefined) overrides.days = 30;
  const config = resolveForCli(flags.scenario ?? "mixed", overrides);
  await runClosedLoopCli(config, flags);
}

async function runSimulate(flags: SimulateFlags): Promise<void> {
  if (flags.closedLoop === true) {
    await runClosedLoop(flags);
    return;
  }
  if (flags.headroom !== undefined) throw new CliError("--headroom only applies with --closed-loop");
  if (flags.outDir !== undefined) throw new CliError("--out-dir only applies with --closed-loop");
  const publish = publishPlanFromFlags(flags);
  // With --nats, a file is written only when --out is given.
  const out = flags.out ?? (publish === undefined ? "-" : undefined);
  const scenario = flags.scenario ?? "mixed";
  if (flags.truth !== undefined && flags.truth === "-" && out === "-") {
    throw new CliError('--truth "-" needs --out to be a file (both cannot go to stdout)');
  }
  if (flags.truth !== undefined && flags.truth !== "-" && flags.truth === out) {
    throw new CliError(`--truth and --out must be different files, both are "${out}"`);
  }
  const config = resolveForCli(scenario, overridesFromFlags(flags));
  let sim: ReturnType<typeof createSimulation>;
  try {
    sim = createSimulation(config);
  } catch (err) {
    if (err instanceof ValidationError) throw new CliError(err.message, EXIT.invalidInput);
    throw err;
  }
  if (out !== undefined) checkWritable("--out", out);
  if (flags.truth !== undefined) checkWritable("--truth", flags.truth);
  if (publish !== undefined) {
    await runPublish(sim, publish, out, flags);
    return;
  }
  const file = out ?? "-";

  let stdoutClosed = false;
  if (file === "-" || flags.truth === "-") {
    process.stdout.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") stdoutClosed = true;
      else throw err;
    });
  }

  const bar =
    process.stderr.isTTY === true
      ? new SingleBar({
          stream: process.stderr,
          format: "simulate [{bar}] {percentage}% | tick {value}/{total} | eta {eta}s",
          hideCursor: true,
          clearOnComplete: true,
        })
      : undefined;
  bar?.start(sim.ticks, 0);
  const began = performance.now();
  const writer = new LineWriter(file);
  try {
    const onTick = (tick: number) => {
      if (tick % 16 === 0) bar?.update(tick);
    };
    const lines = sim.lines(bar ? { onTick } : {});
    await writeLines(lines, writer, { stop: () => stdoutClosed });
    await writer.close();
  } catch (err) {
    // A closed pipe (e.g. `| head`) ends the output quietly.
    if ((err as NodeJS.ErrnoException).code !== "EPIPE") throw err;
    stdoutClosed = true;
  } finally {
    bar?.update(sim.ticks);
    bar?.stop();
  }
  if (stdoutClosed) return;
  const seconds = (performance.now() - began) / 1000;

  if (flags.truth !== undefined) {
    const tw = new LineWriter(flags.truth);
    await writeLines(sim.truthLines(), tw);
    await tw.close();
  }
  if (flags.summary) process.stderr.write(summary(sim.stats(), file, flags.truth, seconds));
}

export function registerSimulate(program: Command): void {
  const presets = PRESETS.map((p) => `  ${p.padEnd(11)}${PRESET_DESCRIPTIONS[p]}`).join("\n");
  const cmd = program
    .command("simulate")
    .description(
      "Simulate a fleet of hosts whose agents publish memory telemetry (NDJSON, telemetry v1), with " +
        "ground truth for the injected leaks. Deterministic: the same options give identical files.",
    )
    .option("--hosts <n>", "number of hosts (default 200)")
    .option("--days <d>", "simulated days, fractions allowed (default 5)")
    .option("--interval <duration>", "sampling interval, e.g. 30s, 1m, 5m (default 5m)")
    .option("--seed <n>", "random seed, an integer >= 0 (default 1)")
    .option(
      "--scenario <name|file>",
      `preset (${PRESETS.join(", ")}) or a JSON scenario file (default mixed)`,
    )
    .option("--out <file|->", 'telemetry NDJSON output; "-" is stdout (default -; with --nats: none)')
    .option(
      "--truth <file>",
      "ground-truth NDJSON output, one record per injected leak (default: not written)",
    )
    .option("--start <iso>", "simulated start time, ISO-8601 (default 2026-01-05T00:00:00Z)")
    .option(
      "--lateness <n>",
      "allowed lateness in intervals: late messages arrive at most n intervals late (default 2)",
    )
    .option("--no-summary", "do not print the summary on stderr")
    .option(
      "--closed-loop",
      "run the fleet without and with resin (detector + mitigation engine in the loop) and print the " +
        "outcome: low-memory VM reboots, allocation errors, resin's disruption (default 30 days)",
    )
    .option(
      "--headroom <share[,share...]>",
      "with --closed-loop: host memory left unsold beyond the components' healthy peak, e.g. 0.02 or 2%; " +
        "several values add a sensitivity table (the first is the main run) (default 0.02)",
    )
    .option(
      "--out-dir <dir>",
      "with --closed-loop: where closed-loop.json and closed-loop.html go (default out)",
    )
    .option(
      "--nats [urls]",
      "publish to NATS JetStream (stream RESIN_TELEMETRY) instead of writing stdout; URL(s) comma " +
        "separated (default $RESIN_NATS_URL, else nats://127.0.0.1:4222); --out still writes a file",
    )
    .option("--speed <x>", "with --nats: event-time acceleration, 3600 = one simulated hour per second")
    .option("--rate <msgs/s>", "with --nats: messages per second (exclusive with --speed)")
    .option(
      "--connect-timeout <duration>",
      `with --nats: how long to wait for the server, at start and mid-stream (default ${DEFAULT_CONNECT_TIMEOUT})`,
    )
    .option(
      "--max-in-flight <n>",
      `with --nats: publishes awaiting their acknowledgement, at most (default ${DEFAULT_MAX_IN_FLIGHT})`,
    )
    .addHelpText(
      "after",
      `
Presets (--scenario NAME):
${presets}

A scenario file (--scenario path.json) modifies a preset ("base", default mixed): fleet size,
catalog of components and their behaviours, fault rates, events and leaks; see
simulate/examples/. Flags given on the command line override the file.

Defaults come from the scenario; without a file: 200 hosts, 5 days, 5m interval, seed 1, lateness 2.
A progress bar is drawn on stderr when it is a terminal; a summary follows on stderr.

Publishing (--nats): each message goes to resin.telemetry.<component>.<host> in the stream
RESIN_TELEMETRY (created when missing) with the message id <host>/<component>/<ts>, so a retried
publish, or a duplicate delivery the simulator injects, is stored once (counted as duplicates).
Without --speed or --rate, messages go as fast as the server acknowledges them, with at most
--max-in-flight unacknowledged. --speed paces by the messages' ts relative to the first message;
--rate by count. If the server goes away mid-stream (e.g. a restart), the connection comes back by
itself and failed publishes are retried in order; after --connect-timeout without progress, the
command fails. Settings not given as flags come from RESIN_NATS_URL, RESIN_NATS_TOKEN,
RESIN_NATS_USER, RESIN_NATS_PASS, RESIN_NATS_CREDS, RESIN_NATS_TLS_CA, RESIN_NATS_TLS_CERT and
RESIN_NATS_TLS_KEY. Progress (messages/s, simulated time) goes to stderr: a bar on a terminal,
otherwise a line every 5 s. Ctrl-C stops publishing and waits for the acknowledgements in flight.

Closed loop (--closed-loop): the same fleet and seed run twice in-process, left alone and with
resin's detector and mitigation engine in the loop (simulated agents carry out the commands). Hosts
are packed with VMs up to their capacity; leaks that eat the headroom cause low-memory VM reboots
and allocation errors. Prints the outcome table on stdout and writes <out-dir>/closed-loop.json and
closed-loop.html; the world model and its assumptions are in simulate/README.md ("Closed loop").
About 1 min per run pair for 200 hosts × 30 days on 2 cores.

Exit codes: 0 ok, 1 NATS unreachable or publishing failed, 2 bad flag or unknown scenario,
3 invalid scenario file, 130 interrupted.

Examples:
  resin simulate --hosts 200 --days 5 --seed 3 --scenario mixed --out fleet.ndjson --truth truth.ndjson
  resin simulate --hosts 200 --days 5 --nats nats://127.0.0.1:4222 --speed 3600 --truth truth.ndjson
  resin simulate --closed-loop --days 30 --seed 7 --headroom 0.02,0.01,0.05 --out-dir out`,
    );
  addNatsAuthOptions(cmd).action(async (flags: SimulateFlags) => {
    await runSimulate(flags);
  });
}
