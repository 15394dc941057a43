import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { type ClosedWindow, WindowCore } from "../operators/window/core.ts";
import { DetectionStage } from "../pipelines/detect.ts";
import type { Telemetry } from "../schemas/telemetry.ts";
import type { BenchRow, BenchSuite } from "./types.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const H = 3_600_000;

/**
 * Runs a fleet through windowing and detection for a few hours and closes every window. A
 * function of its own, so that the last window it passed on is not kept alive by the caller's
 * frame while the heap is measured: a consumed window is not detector state (it held ~55 B per
 * series: its slots, values and counts, and the streams' snapshots).
 */
function feed(core: WindowCore, stage: DetectionStage, hosts: number, procsPerHost: number): void {
  const t0 = 1767571200000;
  for (let t = t0; t < t0 + 4 * H; t += 5 * 60_000) {
    const out: ClosedWindow[] = [];
    for (let h = 0; h < hosts; h++) {
      const msg: Telemetry = {
        v: 1,
        ts: t,
        host: `r${(h % 4).toString().padStart(2, "0")}-h${h.toString().padStart(5, "0")}`,
        component: `svc${h % 7}`,
        attrs: { region: `region${h % 4}`, cluster: `c${h % 40}`, version: "1.0.0" },
        vms: h % 9,
        processes: Array.from({ length: procsPerHost }, (_, p) => ({
          pid: 1000 + p,
          name: `proc-${p}`,
          startedAt: t0 - 86_400_000,
          bytes: 1e8 + ((h * 7919 + p * 104729 + t / 1000) % 1e6),
        })),
      };
      core.push(msg, out);
    }
    for (const w of out) stage.step(w);
    core.releaseEnded();
  }
  for (const w of core.flush()) stage.step(w);
}

/**
 * Bytes of retained state per tracked process series: run a fleet through windowing and
 * detection for a few hours, close every window, and divide the heap growth by the series
 * count. The hourly window being filled is excluded (closed before measuring); the fleet's
 * host/component/process names, which any consumer must hold, are included.
 */
export const stateMemoryBench: BenchSuite = {
  name: "detector state",
  async run({ quick }) {
    const hosts = quick ? 10_000 : 40_000;
    const procsPerHost = 5;
    const before = heapAfterGc();
    const core = new WindowCore();
    const stage = new DetectionStage((slot) => core.seriesInfo(slot));
    feed(core, stage, hosts, procsPerHost);
    const after = heapAfterGc();
    const series = core.trackedSeries;
    const perSeries = (after - before) / series;
    // Keep both alive until measured.
    if (stage.openSuspects < 0) console.log(core);
    const rows: BenchRow[] = [
      {
        name: `state per process series (${series} series, window closed)`,
        value: Math.round(perSeries),
        unit: "bytes",
        target: "<= 256",
        met: perSeries <= 256,
      },
      { name: "  of which detector columns + level ring", value: stage.stateBytesPerSeries, unit: "bytes" },
    ];
    return rows;
  },
};
