import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LineWriter } from "../lib/ndjson.ts";
import { createSimulation, resolveScenario, writeLines } from "../simulate/index.ts";
import type { BenchRow, BenchSuite } from "./types.ts";

const TARGET_MSGS_PER_S = 200_000;

async function pump(lines: Iterable<string>, path: string, limit: number): Promise<number> {
  const writer = new LineWriter(path);
  const n = await writeLines(lines, writer, { limit });
  await writer.close();
  return n;
}

function* repeatStringify(message: unknown, count: number): Generator<string> {
  for (let i = 0; i < count; i++) yield JSON.stringify(message);
}

/**
 * Simulator throughput: the `mixed` scenario (200 hosts, as many days as needed) generated and
 * serialized to a temporary NDJSON file through LineWriter, against a baseline that writes the
 * same number of `JSON.stringify` copies of one representative message to the same kind of sink.
 */
export const simulateBench: BenchSuite = {
  name: "simulate",
  async run({ quick }) {
    const count = quick ? 200_000 : 1_000_000;
    const dir = mkdtempSync(join(tmpdir(), "resin-bench-sim-"));
    try {
      const probe = createSimulation(resolveScenario("mixed", { hosts: 200, days: 1, seed: 1 }));
      const perDay = probe.expectedSamples;
      const days = Math.max(1, Math.ceil(((count * 1.1) / perDay) * 10) / 10);

      const planStart = performance.now();
      const sim = createSimulation(resolveScenario("mixed", { hosts: 200, days, seed: 1 }));
      const planMs = performance.now() - planStart;

      // A representative message: the one closest to the average line length among the first 20k.
      const sample: string[] = [];
      for (const line of sim.lines()) {
        sample.push(line);
        if (sample.length >= 20_000) break;
      }
      const avg = sample.reduce((s, l) => s + l.length, 0) / sample.length;
      const representative = JSON.parse(
        sample.reduce((best, l) => (Math.abs(l.length - avg) < Math.abs(best.length - avg) ? l : best)),
      ) as unknown;

      const simPath = join(dir, "sim.ndjson");
      const t0 = performance.now();
      const written = await pump(sim.lines(), simPath, count);
      const simS = (performance.now() - t0) / 1000;
      const simBytes = statSync(simPath).size;

      const basePath = join(dir, "baseline.ndjson");
      const t1 = performance.now();
      await pump(repeatStringify(representative, count), basePath, count);
      const baseS = (performance.now() - t1) / 1000;
      const baseBytes = statSync(basePath).size;

      const rate = written / simS;
      const baseRate = count / baseS;
      const rows: BenchRow[] = [
        {
          name: `simulate: ${written.toLocaleString("en-US")} messages to a file`,
          value: Math.round(rate),
          unit: "msg/s",
          baseline: { name: "JSON.stringify of one message", value: Math.round(baseRate) },
          ratio: rate / baseRate,
          target: `>= ${TARGET_MSGS_PER_S.toLocaleString("en-US")} msg/s`,
          met: rate >= TARGET_MSGS_PER_S,
        },
        {
          name: "simulate: output bandwidth",
          value: simBytes / 1e6 / simS,
          unit: "MB/s",
          baseline: { name: "JSON.stringify of one message", value: baseBytes / 1e6 / baseS },
          ratio: simBytes / simS / (baseBytes / baseS),
        },
        { name: "simulate: average message size", value: simBytes / written, unit: "bytes" },
        { name: "simulate: planning (200 hosts)", value: planMs, unit: "ms" },
        {
          name: "simulate: peak RSS of the process so far",
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
