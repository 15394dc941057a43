import { mkdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { SingleBar } from "cli-progress";
import { type ClosedLoopResult, runClosedLoop } from "../simulate/closed-loop/loop.ts";
import {
  closedLoopJson,
  renderClosedLoopHtml,
  renderClosedLoopTable,
  type SensitivityRow,
  sensitivityRow,
} from "../simulate/closed-loop/report.ts";
import type { SimConfig } from "../simulate/index.ts";
import { CliError } from "./errors.ts";

/** Flags of `resin simulate --closed-loop`. */
export interface ClosedLoopFlags {
  headroom?: string;
  outDir?: string;
}

/** "0.02" or "0.01,0.02,0.05": the first is the main run, all of them make the sensitivity table. */
export function parseHeadrooms(text: string | undefined): number[] {
  if (text === undefined) return [0.02];
  const parts = text.split(",").map((s) => s.trim());
  const values = parts.map((p) => {
    const v = p.endsWith("%") ? Number(p.slice(0, -1)) / 100 : Number(p);
    if (p === "" || !Number.isFinite(v) || v < 0 || v > 0.9)
      throw new CliError(
        `--headroom must be shares of host memory in [0, 0.9] such as 0.02 or 2% (comma separated), got "${text}"`,
      );
    return v;
  });
  return values;
}

/** `resin simulate --closed-loop`: the fleet without and with resin, the outcome table, JSON and HTML. */
export async function runClosedLoopCli(config: SimConfig, flags: ClosedLoopFlags): Promise<void> {
  const headrooms = parseHeadrooms(flags.headroom);
  const outDir = flags.outDir ?? "out";
  try {
    mkdirSync(outDir, { recursive: true });
  } catch (err) {
    throw new CliError(`--out-dir: cannot create "${outDir}": ${(err as Error).message}`);
  }
  const tty = process.stderr.isTTY === true;
  const began = performance.now();
  const results: ClosedLoopResult[] = [];
  for (const headroom of headrooms) {
    const label = `headroom ${(100 * headroom).toFixed(1)}%`;
    const bar = tty
      ? new SingleBar({
          stream: process.stderr,
          format: `closed loop (${label}, {run} resin) [{bar}] {percentage}% | day {day} | eta {eta}s`,
          hideCursor: true,
          clearOnComplete: true,
        })
      : undefined;
    let current = "";
    const t0 = performance.now();
    try {
      results.push(
        runClosedLoop({
          sim: config,
          world: { headroom },
          onProgress: (run, tick, ticks) => {
            if (run !== current) {
              if (current !== "" && !tty)
                process.stderr.write(`resin simulate: ${label}: ${current} resin done\n`);
              current = run;
              bar?.start(ticks, 0, { run, day: 0 });
            }
            if (tick % 32 === 0 || tick === ticks)
              bar?.update(tick, { run, day: Math.floor((tick * config.intervalMs) / 86_400_000) });
          },
        }),
      );
    } finally {
      bar?.stop();
    }
    process.stderr.write(
      `resin simulate: closed loop, ${label}: both runs in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
    );
  }
  const main = results[0]!;
  const sensitivity: SensitivityRow[] = results.length > 1 ? results.map(sensitivityRow) : [];
  const jsonPath = join(outDir, "closed-loop.json");
  const htmlPath = join(outDir, "closed-loop.html");
  await writeFile(jsonPath, `${JSON.stringify(closedLoopJson(main, sensitivity), null, 2)}\n`);
  await writeFile(htmlPath, renderClosedLoopHtml(main, sensitivity));
  process.stdout.write(renderClosedLoopTable(main, sensitivity));
  process.stderr.write(
    `resin simulate: wrote ${jsonPath}, ${htmlPath}; total ${((performance.now() - began) / 1000).toFixed(1)} s\n`,
  );
}
