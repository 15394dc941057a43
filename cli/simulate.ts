import { closeSync, openSync } from "node:fs";
import { SingleBar } from "cli-progress";
import type { Command } from "commander";
import { DateTime } from "luxon";
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
  writeLines,
} from "../simulate/index.ts";
import { CliError, EXIT } from "./main.ts";

interface SimulateFlags {
  hosts?: string;
  days?: string;
  interval?: string;
  seed?: string;
  scenario?: string;
  out?: string;
  truth?: string;
  start?: string;
  lateness?: string;
  summary: boolean;
}

function intFlag(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    throw new CliError(`${flag} must be an integer from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

/** Turns the flags into scenario overrides; only flags actually given override the scenario. */
export function overridesFromFlags(flags: SimulateFlags): SimOverrides {
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

async function runSimulate(flags: SimulateFlags): Promise<void> {
  const out = flags.out ?? "-";
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
  checkWritable("--out", out);
  if (flags.truth !== undefined) checkWritable("--truth", flags.truth);

  let stdoutClosed = false;
  if (out === "-" || flags.truth === "-") {
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
  const writer = new LineWriter(out);
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
  if (flags.summary) process.stderr.write(summary(sim.stats(), out, flags.truth, seconds));
}

export function registerSimulate(program: Command): void {
  const presets = PRESETS.map((p) => `  ${p.padEnd(11)}${PRESET_DESCRIPTIONS[p]}`).join("\n");
  program
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
    .option("--out <file|->", 'telemetry NDJSON output; "-" is stdout (default -)')
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
Exit codes: 0 ok, 2 bad flag or unknown scenario, 3 invalid scenario file.

Example:
  resin simulate --hosts 200 --days 5 --seed 3 --scenario mixed --out fleet.ndjson --truth truth.ndjson`,
    )
    .action(async (flags: SimulateFlags) => {
      await runSimulate(flags);
    });
}
