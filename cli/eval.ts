import { access, writeFile } from "node:fs/promises";
import type { Command } from "commander";
import {
  DEFAULT_MIN_GROWTH,
  evaluate,
  InputError,
  loadSuspects,
  loadTruth,
  renderHtml,
  renderTable,
  toJsonReport,
} from "../eval/index.ts";
import type { TruthRecord } from "../schemas/truth.ts";
import { createSimulation } from "../simulate/index.ts";
import { CliError, EXIT } from "./errors.ts";
import { type FleetFlags, overridesFromFlags, resolveForCli } from "./simulate.ts";

/** The fleet flags describe the simulation for --diagnose-sim (its scenario is that flag's value). */
interface EvalFlags extends Omit<FleetFlags, "scenario"> {
  telemetry: string;
  truth: string;
  suspects?: string;
  json?: string;
  html?: string;
  minGrowth: string;
  staticHosts: string;
  plotCap: string;
  baselines: boolean;
  diagnoseSim?: string;
  diagnoseReferences?: string;
}

/**
 * Rebuilds the simulation that produced the truth (the same scenario and flags as `resin
 * simulate`) and checks that it does: its truth must equal the file's, record by record, on
 * target, pattern and start.
 */
function simulationFor(flags: EvalFlags, truth: readonly TruthRecord[]) {
  const config = resolveForCli(flags.diagnoseSim!, overridesFromFlags(flags));
  const sim = createSimulation(config);
  const simulated = sim.truth();
  const id = (r: TruthRecord) => `${r.host}/${r.component}/${r.process} ${r.pattern} from ${r.startTs}`;
  const n = Math.max(simulated.length, truth.length);
  for (let i = 0; i < n; i++) {
    const a = simulated[i];
    const b = truth[i];
    if (a === undefined || b === undefined || id(a) !== id(b)) {
      throw new CliError(
        `--diagnose-sim: scenario ${config.name} (seed ${config.seed}, ${config.hosts} hosts, ${config.days} days) ` +
          `does not reproduce --truth: record ${i + 1} is ${b ? id(b) : "missing"} in the file, ` +
          `${a ? id(a) : "missing"} in the simulation (give the flags resin simulate was run with)`,
        EXIT.invalidInput,
      );
    }
  }
  return sim;
}

function number(flag: string, text: string, min: number, integer = false): number {
  const v = Number(text);
  if (text.trim() === "" || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
    throw new CliError(
      `${flag} must be ${integer ? "an integer" : "a number"} >= ${min}, got ${JSON.stringify(text)}`,
    );
  }
  return v;
}

async function load<T>(what: () => Promise<T>, path: string): Promise<T> {
  try {
    return await what();
  } catch (err) {
    if (err instanceof InputError) throw new CliError(err.message, EXIT.invalidInput);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "EISDIR" || code === "EACCES") {
      throw new CliError(`cannot read ${path}: ${(err as Error).message}`, EXIT.invalidInput);
    }
    throw err;
  }
}

export function registerEval(program: Command): void {
  program
    .command("eval")
    .description(
      "measure the leak detector against ground truth, side by side with baselines (static threshold,\n" +
        "Prometheus predict_linear, Precog-style trend); prints a table, optionally writes JSON and HTML",
    )
    .requiredOption("--telemetry <file>", "telemetry NDJSON (contract §1)")
    .requiredOption("--truth <file>", "ground truth NDJSON (contract §3)")
    .option(
      "--suspects <file>",
      "resin's suspect events NDJSON (contract §2); default: run the detector in-process",
    )
    .option("--json <file>", "write every number and the TP/FP/miss lists as JSON")
    .option("--html <file>", "write a self-contained HTML report with a plot per case")
    .option(
      "--min-growth <fraction>",
      "eligible leaks grew by at least this fraction of normal size",
      String(DEFAULT_MIN_GROWTH),
    )
    .option("--static-hosts <n>", "static baseline: alert when >= n hosts exceed the threshold", "1")
    .option("--plot-cap <n>", "HTML: at most n plots per category", "60")
    .option("--no-baselines", "evaluate resin only")
    .option(
      "--diagnose-sim <name|file>",
      "also measure the root-cause diagnosis: rebuild the simulation that made the telemetry (the\n" +
        "scenario and the --hosts/--days/--interval/--seed/--start/--lateness it was simulated with),\n" +
        "profile each leak resin found on simulated heap profiles and report top-1/top-3 accuracy",
    )
    .option(
      "--diagnose-references <policy>",
      "with --diagnose-sim: how references are chosen, baseline (default: the version most hosts run,\n" +
        "similar load, memory not growing), lineage (RESIN's same-fingerprint rule: same cluster, OS and version),\n" +
        "or sink: run the snapshot sink's own core over the detector's output (one diagnosis per leaking\n" +
        "component, its hosts, references, budget and completion rules) and score its reports",
    )
    .option("--hosts <n>", "with --diagnose-sim: as given to resin simulate")
    .option("--days <d>", "with --diagnose-sim: as given to resin simulate")
    .option("--interval <duration>", "with --diagnose-sim: as given to resin simulate")
    .option("--seed <n>", "with --diagnose-sim: as given to resin simulate")
    .option("--start <iso>", "with --diagnose-sim: as given to resin simulate")
    .option("--lateness <n>", "with --diagnose-sim: as given to resin simulate")
    .action(async (flags: EvalFlags) => {
      const minGrowth = number("--min-growth", flags.minGrowth, 0);
      const staticHosts = number("--static-hosts", flags.staticHosts, 1, true);
      const plotCap = number("--plot-cap", flags.plotCap, 0, true);
      if (flags.telemetry === "-" && !flags.suspects) {
        throw new CliError(
          "--telemetry - (stdin) needs --suspects: the in-process detector reads the file itself",
        );
      }
      if (flags.truth === "-" && (flags.telemetry === "-" || flags.suspects === "-")) {
        throw new CliError("only one input can be stdin");
      }
      const simFlags = [
        "hosts",
        "days",
        "interval",
        "seed",
        "start",
        "lateness",
        "diagnoseReferences",
      ] as const;
      const stray = simFlags.filter((f) => flags[f] !== undefined);
      if (flags.diagnoseSim === undefined && stray.length > 0) {
        const flag = stray[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
        throw new CliError(`--${flag} only goes with --diagnose-sim`);
      }
      const policy = flags.diagnoseReferences ?? "baseline";
      if (policy !== "baseline" && policy !== "lineage" && policy !== "sink") {
        throw new CliError(
          `--diagnose-references must be baseline, lineage or sink, got ${JSON.stringify(policy)}`,
        );
      }
      if (policy === "sink" && flags.telemetry === "-")
        throw new CliError(
          "--diagnose-references sink re-reads the telemetry: give --telemetry a file, not -",
        );
      const truth = await load(() => loadTruth(flags.truth), flags.truth);
      const sim = flags.diagnoseSim === undefined ? undefined : simulationFor(flags, truth);
      const suspects = flags.suspects
        ? await load(() => loadSuspects(flags.suspects!), flags.suspects)
        : undefined;
      if (flags.telemetry !== "-") {
        // Fail early and clearly on a missing telemetry file.
        await load(() => access(flags.telemetry), flags.telemetry);
      }
      const result = await evaluate({
        telemetryPath: flags.telemetry,
        truth,
        ...(suspects ? { suspects } : {}),
        minGrowth,
        baselines: flags.baselines ? { static: { minHosts: staticHosts } } : false,
        plotCap,
        ...(sim ? { diagnosis: { plan: sim.plan, options: { referencePolicy: policy } } } : {}),
        ...(process.stderr.isTTY
          ? {
              onProgress: (lines: number) =>
                process.stderr.write(`\rresin eval: ${lines.toLocaleString("en")} lines`),
            }
          : {}),
      });
      if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
      process.stdout.write(renderTable(result));
      if (flags.json) await writeFile(flags.json, `${JSON.stringify(toJsonReport(result), null, 2)}\n`);
      if (flags.html) await writeFile(flags.html, renderHtml(result));
    });
}
