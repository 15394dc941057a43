import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { LineWriter, openInput, readLineBatches } from "../lib/ndjson.ts";
import { replayLines } from "../pipelines/replay.ts";
import { createSimulation, resolveScenario, writeLines } from "../simulate/index.ts";
import type { BenchRow, BenchSuite } from "./types.ts";

const TARGET_RATIO = 0.5;
const TARGET_SAMPLES_PER_S = 500_000;
const HOSTS = 200;
const RSS_SAMPLE_MS = 20;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

interface Pass {
  seconds: number;
  messages: number;
  /** Process samples the pass accounted for (replay: accepted by the windowing stage). */
  samples: number;
  /** Highest RSS seen while the pass ran (sampled), bytes. */
  peakRss: number;
}

/** Samples the process RSS on a timer while `work` runs; the timer fires between input chunks. */
async function measured(work: () => Promise<{ messages: number; samples: number }>): Promise<Pass> {
  gc();
  let peakRss = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, RSS_SAMPLE_MS);
  const t0 = performance.now();
  try {
    const { messages, samples } = await work();
    const seconds = (performance.now() - t0) / 1000;
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    return { seconds, messages, samples, peakRss };
  } finally {
    clearInterval(timer);
  }
}

/** The baseline: read the file in line batches and JSON.parse every line, nothing else. */
function parseOnly(path: string): Promise<Pass> {
  return measured(async () => {
    let messages = 0;
    for await (const batch of readLineBatches(openInput(path))) {
      for (const line of batch) if (JSON.parse(line) !== null) messages++;
    }
    return { messages, samples: 0 };
  });
}

/** resin's replay of the same file, exactly as `resin replay` runs it (events kept in memory, not written). */
function replay(path: string): Promise<Pass> {
  return measured(async () => {
    const { stats } = await replayLines(readLineBatches(openInput(path)));
    return { messages: stats.decode.decoded + stats.decode.invalid, samples: stats.window.samples };
  });
}

const faster = (a: Pass | undefined, b: Pass): Pass => (a === undefined || b.seconds < a.seconds ? b : a);
const mb = (bytes: number) => bytes / 2 ** 20;

/**
 * Replay throughput against the rate at which Node merely reads and `JSON.parse`s the same
 * telemetry file (DESIGN.md: ≥ 50% of it, and ≥ 500k process samples/s). The file is a `mixed`
 * fleet of 200 hosts, as many days as give ~1M lines (~200k with --quick), in a temporary
 * directory. Both passes run twice, alternating; the faster run of each is reported.
 */
export const replayBench: BenchSuite = {
  name: "replay",
  async run({ quick }) {
    const target = quick ? 200_000 : 1_000_000;
    const dir = mkdtempSync(join(tmpdir(), "resin-bench-replay-"));
    try {
      const probe = createSimulation(resolveScenario("mixed", { hosts: HOSTS, days: 1, seed: 1 }));
      const days = Math.max(0.1, Math.round((target / probe.expectedSamples) * 10) / 10);
      const sim = createSimulation(resolveScenario("mixed", { hosts: HOSTS, days, seed: 1 }));
      const path = join(dir, "telemetry.ndjson");
      const writer = new LineWriter(path);
      const lines = await writeLines(sim.lines(), writer);
      await writer.close();
      const fileBytes = statSync(path).size;

      let base: Pass | undefined;
      let resin: Pass | undefined;
      const runs = [];
      for (let i = 0; i < 2; i++) {
        const b = await parseOnly(path);
        const r = await replay(path);
        runs.push(r);
        base = faster(base, b);
        resin = faster(resin, r);
      }
      if (base === undefined || resin === undefined) throw new Error("no measurement");
      if (resin.messages !== lines || base.messages !== lines)
        throw new Error(
          `line count mismatch: file ${lines}, parsed ${base.messages}, replayed ${resin.messages}`,
        );

      const baseRate = base.messages / base.seconds;
      const rate = resin.messages / resin.seconds;
      const ratio = rate / baseRate;
      const samplesRate = resin.samples / resin.seconds;
      const peak = Math.max(...runs.map((r) => r.peakRss));
      const rows: BenchRow[] = [
        {
          name: "replay: throughput relative to read + JSON.parse",
          value: ratio,
          unit: "×",
          baseline: { name: "read + JSON.parse msg/s", value: Math.round(baseRate) },
          ratio,
          target: `>= ${TARGET_RATIO}`,
          met: ratio >= TARGET_RATIO,
        },
        {
          name: "replay: process samples/s",
          value: Math.round(samplesRate),
          unit: "samples/s",
          target: `>= ${TARGET_SAMPLES_PER_S.toLocaleString("en-US")}`,
          met: samplesRate >= TARGET_SAMPLES_PER_S,
        },
        {
          name: "replay: messages/s",
          value: Math.round(rate),
          unit: "msg/s",
          baseline: { name: "read + JSON.parse", value: Math.round(baseRate) },
          ratio,
        },
        { name: "read + JSON.parse: messages/s (baseline)", value: Math.round(baseRate), unit: "msg/s" },
        {
          name: `replay: input (mixed, ${HOSTS} hosts × ${days} d, ${(fileBytes / 1e6).toFixed(0)} MB)`,
          value: lines,
          unit: "lines",
        },
        {
          name: "replay: process samples per message",
          value: resin.samples / resin.messages,
          unit: "samples/msg",
        },
        { name: "replay: best of 2 runs", value: resin.seconds, unit: "s" },
        { name: "read + JSON.parse: best of 2 runs", value: base.seconds, unit: "s" },
        {
          name: "replay: peak RSS while replaying (sampled)",
          value: mb(peak),
          unit: "MB",
        },
        {
          name: "replay: peak RSS of the process so far",
          value: process.resourceUsage().maxRSS / 1024,
          unit: "MB",
        },
      ];
      return rows;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
