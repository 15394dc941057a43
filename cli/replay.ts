import { existsSync } from "node:fs";
import type { Command } from "commander";
import { LineWriter, openInput, readLineBatches } from "../lib/ndjson.ts";
import { replayLines } from "../pipelines/replay.ts";
import { detectOptions, readDetectConfig } from "./detect-config.ts";
import { CliError, EXIT } from "./errors.ts";
import { parseDurationMs } from "./options.ts";

export function registerReplay(program: Command): void {
  program
    .command("replay")
    .description(
      "Run the leak detector over a telemetry NDJSON file, in event time; write suspect events as NDJSON.",
    )
    .option("-i, --input <file>", "telemetry NDJSON (contract v1), or - for stdin", "-")
    .option("-o, --out <file>", "suspect events NDJSON (contract §2), or - for stdout", "-")
    .option("--dead-letter <file>", "write invalid lines with their reason here (NDJSON)")
    .option("--lateness <duration>", "allowed lateness of samples behind the newest one", "10m")
    .option(
      "--gate <mode>",
      "none: analyse every process; bucket: only hosts behind an anomalous bucket (RESIN)",
      "none",
    )
    .option("--detect-config <file>", "detector settings as JSON: {window, detect, buckets, lifecycle, gate}")
    .option("--no-flush", "leave the windows still open at the end of input undecided, as `resin run` does")
    .addHelpText(
      "after",
      `
The output depends only on the input's content: replaying the same file, or the same file
with lines shuffled within the allowed lateness, gives byte-identical events. A summary of
what was read, dropped and found goes to stderr.

Example:
  resin simulate --hosts 200 --days 5 --seed 7 --out t.ndjson --truth g.ndjson
  resin replay --input t.ndjson --out suspects.ndjson
  resin eval --telemetry t.ndjson --truth g.ndjson --suspects suspects.ndjson`,
    )
    .action(
      async (opts: {
        input: string;
        out: string;
        deadLetter?: string;
        lateness: string;
        gate: string;
        flush: boolean;
        detectConfig?: string;
      }) => {
        if (opts.input !== "-" && !existsSync(opts.input))
          throw new CliError(`--input: no such file: ${opts.input}`);
        if (opts.gate !== "none" && opts.gate !== "bucket")
          throw new CliError(`--gate: expected "none" or "bucket" (got "${opts.gate}")`);
        const allowedLatenessMs = parseDurationMs(opts.lateness, "--lateness");
        const file = opts.detectConfig === undefined ? undefined : readDetectConfig(opts.detectConfig);
        const out = new LineWriter(opts.out);
        const dead = opts.deadLetter ? new LineWriter(opts.deadLetter) : undefined;
        const started = performance.now();
        const { stats } = await replayLines(readLineBatches(openInput(opts.input)), {
          ...detectOptions(file, { allowedLatenessMs, gate: opts.gate }),
          flushAtEnd: opts.flush,
          onEvent: (e) => void out.write(JSON.stringify(e)),
          onDeadLetter: (d) => void dead?.write(JSON.stringify(d)),
        });
        await out.close();
        await dead?.close();
        const secs = (performance.now() - started) / 1000;
        const w = stats.window;
        process.stderr.write(
          `replay: ${stats.decode.decoded} messages (${w.samples} process samples) in ${secs.toFixed(1)} s; ` +
            `invalid ${stats.decode.invalid}, late ${w.late}, duplicates ${w.duplicates}; ` +
            `${stats.windows} windows, ${stats.suspectEvents} suspect events, ${stats.openSuspects} open at end\n`,
        );
        if (stats.decode.decoded === 0 && stats.decode.invalid > 0) process.exitCode = EXIT.invalidInput;
      },
    );
}
