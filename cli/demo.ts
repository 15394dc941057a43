import { mkdirSync, rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { SingleBar } from "cli-progress";
import type { Command } from "commander";
import { evaluate, renderHtml, renderTable, toJsonReport } from "../eval/index.ts";
import { LineWriter } from "../lib/ndjson.ts";
import { replayLines } from "../pipelines/replay.ts";
import { createSimulation, formatDuration, PRESETS, type Simulation } from "../simulate/index.ts";
import { CliError } from "./errors.ts";
import { overridesFromFlags, resolveForCli } from "./simulate.ts";

interface DemoFlags {
  hosts: string;
  days: string;
  seed: string;
  scenario: string;
  outDir: string;
  keepTelemetry?: boolean;
}

/** Lines handed to the detector per batch: large enough that per-batch overhead vanishes. */
const BATCH_LINES = 2000;

const n = (x: number) => x.toLocaleString("en-US");
const plural = (k: number, word: string) => `${n(k)} ${word}${k === 1 ? "" : "s"}`;

/**
 * Progress on stderr: a cli-progress bar per stage when stderr is a terminal, and in every case
 * one line per finished stage with its duration (so logs and CI output show where time went).
 */
class StageReporter {
  private readonly tty = process.stderr.isTTY === true;
  private readonly began = performance.now();

  async run<T>(
    label: string,
    total: number,
    work: (progress: (value: number) => void) => Promise<T>,
    summary: (result: T) => string,
  ): Promise<T> {
    const bar = this.tty
      ? new SingleBar({
          stream: process.stderr,
          format: `demo: ${label.padEnd(17)} [{bar}] {percentage}% | eta {eta}s`,
          hideCursor: true,
          clearOnComplete: true,
        })
      : undefined;
    bar?.start(Math.max(1, total), 0);
    const t0 = performance.now();
    let result: T;
    try {
      result = await work((value) => bar?.update(Math.min(value, total)));
    } finally {
      bar?.stop();
    }
    this.line(`${label}: ${summary(result)} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    return result;
  }

  line(text: string): void {
    process.stderr.write(`demo: ${text}\n`);
  }

  get elapsedSeconds(): number {
    return (performance.now() - this.began) / 1000;
  }
}

function planSimulation(flags: DemoFlags): Simulation {
  const overrides = overridesFromFlags({
    hosts: flags.hosts,
    days: flags.days,
    seed: flags.seed,
  });
  return createSimulation(resolveForCli(flags.scenario, overrides));
}

/**
 * The simulator's lines in batches for the detector. When `tee` is given, every line is also
 * written there (the file evaluation reads), with one chunk in flight while the next is made.
 */
async function* simulatedBatches(
  sim: Simulation,
  onTick: (tick: number) => void,
  tee: LineWriter | undefined,
): AsyncGenerator<string[]> {
  let batch: string[] = [];
  let inFlight: Promise<void> | undefined;
  for (const line of sim.lines({ onTick })) {
    batch.push(line);
    const wait = tee?.write(line);
    if (wait !== undefined) {
      if (inFlight !== undefined) await inFlight;
      inFlight = wait;
    }
    if (batch.length >= BATCH_LINES) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
  if (inFlight !== undefined) await inFlight;
}

async function runDemo(flags: DemoFlags): Promise<void> {
  const report = new StageReporter();
  const sim = planSimulation(flags);
  const cfg = sim.config;
  const outDir = flags.outDir;
  try {
    mkdirSync(outDir, { recursive: true });
  } catch (err) {
    throw new CliError(`--out-dir: cannot create "${outDir}": ${(err as Error).message}`);
  }
  const leaks = sim.truth().length;
  report.line(
    `scenario ${cfg.name}, seed ${cfg.seed}, ${plural(cfg.hosts, "host")}, ${plural(cfg.days, "day")} ` +
      `(${n(sim.ticks)} ticks of ${formatDuration(sim.intervalMs)}), ${plural(leaks, "injected leak")}`,
  );

  // Evaluation reads telemetry from a file (baselines, eligibility, plots), so the simulated
  // lines are teed to one while the detector consumes them in-process; the file is removed
  // afterwards unless --keep-telemetry.
  const keep = flags.keepTelemetry === true;
  const telemetryPath = join(outDir, keep ? "telemetry.ndjson" : `.telemetry-${process.pid}.tmp.ndjson`);
  const removeTemp = () => {
    if (!keep) rmSync(telemetryPath, { force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    removeTemp();
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    const suspectsPath = join(outDir, "suspects.ndjson");
    const suspects = new LineWriter(suspectsPath);
    const telemetry = new LineWriter(telemetryPath);
    const { events, stats } = await report.run(
      "simulate + detect",
      sim.ticks,
      async (progress) => {
        const onTick = (tick: number) => {
          if (tick % 8 === 0) progress(tick);
        };
        const result = await replayLines(simulatedBatches(sim, onTick, telemetry), {
          onEvent: (e) => void suspects.write(JSON.stringify(e)),
        });
        await Promise.all([suspects.close(), telemetry.close()]);
        return result;
      },
      ({ stats: s }) =>
        `${n(s.decode.decoded)} messages (${n(s.window.samples)} process samples), ` +
        `${plural(s.suspectEvents, "suspect event")}, ${n(s.openSuspects)} open at end; ` +
        `invalid ${n(s.decode.invalid)}, late ${n(s.window.late)}, duplicates ${n(s.window.duplicates)}`,
    );

    if (keep) {
      const truthWriter = new LineWriter(join(outDir, "truth.ndjson"));
      for (const line of sim.truthLines()) await truthWriter.write(line);
      await truthWriter.close();
    }

    const totalLines = stats.decode.decoded + stats.decode.invalid;
    const result = await report.run(
      "evaluate",
      totalLines,
      (progress) =>
        evaluate({
          telemetryPath,
          truth: sim.truth(),
          suspects: events,
          onProgress: progress,
        }),
      (r) => {
        const resin = r.detectors[0]?.overall;
        return (
          `${n(r.telemetry.lines)} lines, ${r.detectors.length - 1} baselines; resin precision ` +
          `${resin?.precision?.toFixed(3) ?? "–"}, recall ${resin?.recallEligible?.toFixed(3) ?? "–"}`
        );
      },
    );
    // The events came from the detector run in this process, not from a suspects file.
    result.resinSource = "in-process-detector";
    const resinRow = result.detectors[0];
    if (resinRow !== undefined)
      resinRow.rule =
        "resin's detector, run in-process on the simulated telemetry (pipelines/replay.ts replayLines)";
    if (!keep) result.telemetry.path = `in-process simulation (${cfg.name}, seed ${cfg.seed})`;

    const jsonPath = join(outDir, "eval.json");
    const htmlPath = join(outDir, "report.html");
    await writeFile(jsonPath, `${JSON.stringify(toJsonReport(result), null, 2)}\n`);
    await writeFile(htmlPath, renderHtml(result));
    process.stdout.write(renderTable(result));
    const written = [suspectsPath, jsonPath, htmlPath];
    if (keep) written.push(telemetryPath, join(outDir, "truth.ndjson"));
    report.line(`wrote ${written.join(", ")}; total ${report.elapsedSeconds.toFixed(1)} s`);
  } finally {
    removeTemp();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description(
      "The embedded demo (npm start): simulate a fleet in-process, run the detector on it, and score it\n" +
        "against the simulator's ground truth next to the baselines. Needs no server.",
    )
    .option("--hosts <n>", "number of hosts", "200")
    .option("--days <d>", "simulated days, fractions allowed", "5")
    .option("--seed <n>", "random seed, an integer >= 0", "1")
    .option("--scenario <name|file>", `preset (${PRESETS.join(", ")}) or a JSON scenario file`, "mixed")
    .option("--out-dir <dir>", "where suspects.ndjson, eval.json and report.html go", "out")
    .option(
      "--keep-telemetry",
      "keep the simulated telemetry and ground truth as <out-dir>/telemetry.ndjson and truth.ndjson",
    )
    .addHelpText(
      "after",
      `
The detector consumes the simulator's lines in-process. Evaluation re-reads the telemetry for its
baselines and plots, so the lines are also written to a temporary file in <out-dir>, deleted at the
end unless --keep-telemetry (about 400 bytes per message: ~700 MB for the default fleet).
--hosts, --days and --seed override a scenario file's values.
Progress goes to stderr, the scorecard to stdout.

Example:
  resin demo --hosts 50 --days 3 --seed 7 --keep-telemetry
  resin eval --telemetry out/telemetry.ndjson --truth out/truth.ndjson --suspects out/suspects.ndjson`,
    )
    .action(async (flags: DemoFlags) => {
      await runDemo(flags);
    });
}
