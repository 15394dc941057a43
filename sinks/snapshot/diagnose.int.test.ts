/**
 * End to end on a real process: a Node.js service that churns, fills a cache and leaks in
 * retainSessionBuffers is profiled through its inspector; the profiles go through pprof and
 * the diagnosis must name the leaking function, in the fixture's file, at its line.
 */
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  LEAKY_SERVICE_PATH,
  type LeakyService,
  startLeakyService,
} from "../../lib/heap/fixtures/leaky-service.ts";
import { InspectorHeapTracer } from "../../lib/heap/inspector.ts";
import { fromPprof, toPprof } from "../../lib/heap/pprof.ts";
import type { HeapProfile } from "../../lib/heap/profile.ts";
import { diagnose } from "./diagnose.ts";

const PROFILES = 6;
const APART_MS = 500;

describe("diagnosis of a real leaking Node.js process", () => {
  let service: LeakyService | undefined;
  let tracer: InspectorHeapTracer | undefined;

  beforeAll(async () => {
    service = await startLeakyService();
  });

  afterAll(async () => {
    await tracer?.close().catch(() => {});
    await service?.stop();
  });

  it("names retainSessionBuffers, its file and line, from profiles round-tripped through pprof", async () => {
    tracer = await InspectorHeapTracer.connect(await service!.inspectorUrl(), {
      samplingIntervalBytes: 8192,
    });
    await tracer.start();
    const profiles: HeapProfile[] = [await tracer.snapshot()];
    service!.go();
    while (profiles.length < PROFILES) {
      await new Promise((r) => setTimeout(r, APART_MS));
      profiles.push(await tracer.snapshot());
    }
    await tracer.stop();

    const decoded = profiles.map((p) => fromPprof(toPprof(p)));
    expect(decoded).toEqual(profiles);

    // What the detector would estimate from the process's memory telemetry.
    const total = (p: HeapProfile) => p.stacks.reduce((a, s) => a + s.bytes, 0);
    const hours = (decoded.at(-1)!.takenAt - decoded[0]!.takenAt) / 3_600_000;
    const growthBytesPerHour = (total(decoded.at(-1)!) - total(decoded[0]!)) / hours;
    const d = diagnose({ profiles: decoded, estimate: { pattern: "steady", growthBytesPerHour } });

    const report = d.culprits.map(
      (c) => `${c.frames[0]!.fn}:${c.frames[0]!.line} score=${c.score} ${c.reason}`,
    );
    const top = d.culprits[0];
    expect(top?.frames[0]?.fn, report.join("\n")).toBe("retainSessionBuffers");
    expect(top!.frames[0]!.file).toBe(pathToFileURL(LEAKY_SERVICE_PATH).href);
    // V8 reports the line where the allocating function starts.
    const lines = readFileSync(LEAKY_SERVICE_PATH, "utf8").split("\n");
    const definedAt = lines.findIndex((l) => l.startsWith("function retainSessionBuffers(")) + 1;
    expect(top!.frames[0]!.line).toBeGreaterThanOrEqual(definedAt);
    expect(top!.frames[0]!.line).toBeLessThanOrEqual(definedAt + 3);
    expect(top!.growingIntervals).toBeGreaterThanOrEqual(PROFILES - 2);
    expect(d.method).toBe("series");
  });
});
