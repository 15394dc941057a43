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
import { CliError, EXIT } from "./main.ts";

interface EvalFlags {
  telemetry: string;
  truth: string;
  suspects?: string;
  json?: string;
  html?: string;
  minGrowth: string;
  staticHosts: string;
  plotCap: string;
  baselines: boolean;
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
      const truth = await load(() => loadTruth(flags.truth), flags.truth);
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
