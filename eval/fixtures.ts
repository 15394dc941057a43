// Small helpers for the eval tests: deterministic noise and NDJSON fixtures in temp dirs.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { vi } from "vitest";
import { registerEval } from "../cli/eval.ts";
import { testTempDir } from "../lib/testing/temp.ts";
import type { SuspectEvent } from "../schemas/suspect.ts";
import type { TruthRecord } from "../schemas/truth.ts";
import { HOUR_MS } from "./types.ts";

export const MiB = 1024 * 1024;
export const T0 = Date.UTC(2026, 0, 5);

/** Deterministic uniform numbers in [0, 1). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export function tempDir(): string {
  return testTempDir("eval");
}

export function writeNdjson(dir: string, name: string, rows: readonly (object | string)[]): string {
  const path = join(dir, name);
  writeFileSync(path, `${rows.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n")}\n`);
  return path;
}

export interface ProcSpec {
  host: string;
  component: string;
  name: string;
  /** Bytes at time t (ms). */
  bytes: (t: number) => number;
  /** pid at time t (a change is a restart). */
  pid?: (t: number) => number;
  startedAt?: (t: number) => number;
}

/** Telemetry lines, one per (host, component) per step, from t0 for `hours`. */
export function telemetryRows(
  procs: readonly ProcSpec[],
  opts: { t0?: number; hours: number; stepMs?: number; hostTotal?: number },
): object[] {
  const t0 = opts.t0 ?? T0;
  const step = opts.stepMs ?? 5 * 60_000;
  const rows: object[] = [];
  for (let t = t0; t < t0 + opts.hours * HOUR_MS; t += step) {
    for (const p of procs) {
      const bytes = Math.max(0, Math.round(p.bytes(t)));
      const row: Record<string, unknown> = {
        v: 1,
        ts: t,
        host: p.host,
        component: p.component,
        processes: [
          {
            pid: p.pid ? p.pid(t) : 100,
            name: p.name,
            startedAt: p.startedAt ? p.startedAt(t) : t0 - HOUR_MS,
            bytes,
          },
        ],
      };
      if (opts.hostTotal !== undefined) {
        row.hostMemory = {
          totalBytes: opts.hostTotal,
          usedBytes: Math.min(opts.hostTotal, bytes + 4096 * MiB),
        };
      }
      rows.push(row);
    }
  }
  return rows;
}

export function truth(over: Partial<TruthRecord> & Pick<TruthRecord, "host">): TruthRecord {
  return {
    component: "svc",
    process: "svc",
    kind: "process",
    pattern: "steady",
    startTs: T0,
    ratePerHour: MiB,
    ...over,
  };
}

export function suspect(over: Partial<SuspectEvent> & Pick<SuspectEvent, "host">): SuspectEvent {
  return {
    v: 1,
    id: `svc/${over.host}/${over.process ?? "svc"}`,
    state: "open",
    kind: "process",
    component: "svc",
    process: "svc",
    pid: 100,
    start: T0,
    end: T0 + HOUR_MS,
    detectedAt: T0 + HOUR_MS,
    severity: 5,
    pattern: "steady",
    growthBytesPerHour: MiB,
    ...over,
  };
}

/** 6 hosts, 60 h: leaks on h1 (detected), h2 (missed) and h3 (restart mid-leak); resin also flags h0 (FP). */
export function scenarioFixture(extraLines: string[] = []) {
  const dir = tempDir();
  const start = T0 + 30 * HOUR_MS;
  const restart = T0 + 45 * HOUR_MS;
  const procs = [0, 1, 2, 3, 4, 5].map((i) => {
    const r = lcg(10 + i);
    const leaky = i >= 1 && i <= 3;
    return {
      host: `h${i}`,
      component: "svc",
      name: "svc",
      bytes: (t: number) => {
        const base = 100 * MiB + (r() - 0.5) * 2 * MiB;
        if (!leaky || t <= start) return base;
        const from = i === 3 && t >= restart ? restart : start;
        return base + ((t - from) / HOUR_MS) * 8 * MiB;
      },
      pid: (t: number) => (i === 3 && t >= restart ? 200 : 100),
      startedAt: (t: number) => (i === 3 && t >= restart ? restart : T0 - HOUR_MS),
    };
  });
  const rows: (object | string)[] = telemetryRows(procs, { hours: 60, hostTotal: 16 * 1024 * MiB });
  rows.splice(10, 0, ...extraLines);
  const telemetry = writeNdjson(dir, "telemetry.ndjson", rows);
  const records = [1, 2, 3].map((i) =>
    truth({ host: `h${i}`, startTs: start, ratePerHour: 8 * MiB, pattern: i === 2 ? "stair" : "steady" }),
  );
  records.push(
    truth({
      host: "k1",
      component: "kernel",
      process: "Pool",
      kind: "kernel",
      startTs: start,
      ratePerHour: MiB,
    }),
  );
  const truthPath = writeNdjson(dir, "truth.ndjson", records);
  const events = [
    suspect({ host: "h1", start, end: start + 4 * HOUR_MS, detectedAt: start + 4 * HOUR_MS }),
    suspect({
      host: "h1",
      state: "update",
      start,
      end: start + 8 * HOUR_MS,
      detectedAt: start + 8 * HOUR_MS,
    }),
    suspect({ host: "h3", start, end: start + 3 * HOUR_MS, detectedAt: start + 3 * HOUR_MS }),
    suspect({
      host: "h0",
      start: T0 + 10 * HOUR_MS,
      end: T0 + 20 * HOUR_MS,
      detectedAt: T0 + 20 * HOUR_MS,
      pattern: "spike",
    }),
  ];
  const suspectsPath = writeNdjson(dir, "suspects.ndjson", events);
  return { dir, telemetry, truthPath, suspectsPath, records, events, start, restart };
}

/** A `resin` program with only `eval`, whose stdout is collected into `out` (restore mocks after). */
export function evalProgram(out: string[]): Command {
  const p = new Command("resin").exitOverride();
  registerEval(p);
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
  return p;
}
