import { existsSync } from "node:fs";
import type { Command } from "commander";
import { DateTime } from "luxon";
import { openInput, readLineBatches } from "../lib/ndjson.ts";
import { replayLines } from "../pipelines/replay.ts";
import { CliError } from "./errors.ts";
import { parseDurationMs } from "./options.ts";

interface ExplainFlags {
  input: string;
  host: string;
  component: string;
  process?: string;
  lateness: string;
}

/**
 * Folds runs of the same word over consecutive windows, per series (a component's processes are
 * judged in the same windows), then merges the series in time order: "2026-01-05 12:00–17:00
 * not above yesterday", with the end's date too when the run ends on another day.
 */
export function fold(lines: { at: number; what: string; series: string }[]): string[] {
  const bySeries = new Map<string, { at: number; what: string }[]>();
  for (const line of lines) {
    const list = bySeries.get(line.series) ?? [];
    list.push(line);
    bySeries.set(line.series, list);
  }
  const out: { at: number; text: string }[] = [];
  for (const list of bySeries.values()) {
    let i = 0;
    while (i < list.length) {
      let j = i;
      while (j + 1 < list.length && list[j + 1]!.what === list[i]!.what) j++;
      const first = DateTime.fromMillis(list[i]!.at, { zone: "utc" });
      const last = DateTime.fromMillis(list[j]!.at, { zone: "utc" });
      const from = first.toFormat("yyyy-LL-dd HH:mm");
      const to = last.toFormat(last.hasSame(first, "day") ? "HH:mm" : "yyyy-LL-dd HH:mm");
      const what = list[i]!.what;
      out.push({ at: list[i]!.at, text: j > i ? `${from}–${to}  ${what}` : `${from}        ${what}` });
      i = j + 1;
    }
  }
  // Stable: within a window, each series' lines keep their order.
  return out.sort((a, b) => a.at - b.at).map((o) => o.text);
}

/**
 * A series' word for a window, given what it said before in the same window: the last candidate
 * interval's test, with the long climb's (tried after every interval) added rather than put in
 * its place; any later word (a pass, a cohort's verdict) replaces both.
 */
export function windowWord(before: string | undefined, reason: string): string {
  if (before === undefined || !/^(no )?long climb/.test(reason) || /long climb|^passes/.test(before))
    return reason;
  return `${before}; ${reason}`;
}

export function registerExplain(program: Command): void {
  program
    .command("explain")
    .description("Replay telemetry and tell, window by window, why one target was or was not flagged.")
    .requiredOption("-i, --input <file>", "telemetry NDJSON (contract v1), or - for stdin")
    .requiredOption("--host <host>", "host of the target")
    .requiredOption("--component <component>", "component of the target")
    .option("--process <name>", "process name (or kernel pool tag); all of the component's when absent")
    .option("--lateness <duration>", "allowed lateness of samples behind the newest one", "10m")
    .addHelpText(
      "after",
      `
For each window (UTC, start shown) in which the detector considered the target, prints the
test that decided against it ("not above yesterday", "one step", ...: of several candidate
intervals the last one tried, "lows: ..." when tried on a sawtooth's lows, then the long
climb's over day medians) or that it passed ("passes (1 of 2 windows)": a suspect opens when
enough recent windows pass), folded over consecutive windows, and the suspect events it
produced. Windows without a candidate interval (no growth at all) are not listed.

Example:
  resin explain --input t.ndjson --host r00-h00042 --component storage-cache`,
    )
    .action(async (flags: ExplainFlags) => {
      if (flags.input !== "-" && !existsSync(flags.input))
        throw new CliError(`--input: no such file: ${flags.input}`);
      const lines: { at: number; what: string; series: string; event?: true }[] = [];
      const matches = (host: string, component: string, name: string) =>
        host === flags.host &&
        component === flags.component &&
        (flags.process === undefined || name === flags.process);
      await replayLines(readLineBatches(openInput(flags.input)), {
        window: { allowedLatenessMs: parseDurationMs(flags.lateness, "--lateness") },
        trace: (info, at, reason) => {
          if (!matches(info.host, info.component, info.name)) return;
          const series = `${info.name}/${info.pid}`;
          // Several tests may speak for a series in one window (candidate intervals, then the long
          // climb): one line per window and series (see `windowWord`). An event is dated at its
          // window's end, the next window's start: it stays.
          const last = lines.findLast((l) => l.at === at && l.series === series && l.event === undefined);
          const what = `${series}: ${windowWord(last?.what.slice(series.length + 2), reason)}`;
          if (last !== undefined) last.what = what;
          else lines.push({ at, what, series });
        },
        onEvent: (e) => {
          if (!matches(e.host, e.component, e.process)) return;
          const series = `${e.process}/${e.pid}`;
          lines.push({
            at: e.detectedAt,
            what: `${series}: EVENT ${e.state} ${e.pattern} severity ${e.severity}`,
            series,
            event: true,
          });
        },
      });
      lines.sort((a, b) => a.at - b.at);
      if (lines.length === 0) {
        process.stdout.write(
          `no window considered ${flags.host}/${flags.component}${flags.process ? `/${flags.process}` : ""}: it never grew\n`,
        );
        return;
      }
      for (const line of fold(lines)) process.stdout.write(`${line}\n`);
    });
}
