import type { Command } from "commander";
import type { BenchRow, BenchSuite } from "../bench/types.ts";

async function loadSuites(): Promise<BenchSuite[]> {
  const suites: BenchSuite[] = [];
  for (const [file, name] of [
    ["../bench/simulate.ts", "simulateBench"],
    ["../bench/replay.ts", "replayBench"],
    ["../bench/state-memory.ts", "stateMemoryBench"],
    ["../bench/live.ts", "liveBench"],
    ["../bench/agent.ts", "agentBench"],
  ] as const) {
    const mod = (await import(file).catch(() => undefined)) as Record<string, BenchSuite> | undefined;
    const suite = mod?.[name];
    if (suite !== undefined) suites.push(suite);
  }
  return suites;
}

function formatRow(r: BenchRow): string {
  const value = `${r.value.toLocaleString("en-US", { maximumFractionDigits: 2 })} ${r.unit}`;
  const ratio =
    r.ratio === undefined ? "" : `  ratio ${r.ratio.toFixed(2)} vs ${r.baseline?.name ?? "baseline"}`;
  const target = r.target === undefined ? "" : `  target ${r.target} ${r.met ? "met" : "NOT MET"}`;
  return `  ${r.name.padEnd(58)} ${value.padStart(22)}${ratio}${target}`;
}

export function registerBench(program: Command): void {
  program
    .command("bench")
    .description("Measure throughput and memory against baselines measured in the same run (npm run bench).")
    .option("--quick", "smaller inputs (for a fast look; numbers are noisier)")
    .option("--only <names>", "comma-separated suite names to run")
    .action(async (opts: { quick?: boolean; only?: string }) => {
      const only = opts.only?.split(",").map((s) => s.trim());
      const suites = (await loadSuites()).filter(
        (s) => only === undefined || only.some((o) => s.name.includes(o)),
      );
      let missed = 0;
      for (const suite of suites) {
        process.stdout.write(`${suite.name}\n`);
        const rows = await suite.run({ quick: opts.quick === true });
        for (const r of rows) {
          process.stdout.write(`${formatRow(r)}\n`);
          if (r.met === false) missed++;
        }
      }
      process.stdout.write(missed === 0 ? "all targets met\n" : `${missed} target(s) not met\n`);
    });
}
