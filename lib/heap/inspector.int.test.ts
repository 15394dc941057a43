/**
 * The tracer against real Node.js processes (lib/heap/fixtures/leaky-service.js): found by
 * host:port or by SIGUSR1, sampling only what is allocated after start, and failing with the
 * inspector's own message or a closed connection when the process misbehaves or dies.
 */
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../testing/servers.ts";
import { type LeakyService, startLeakyService } from "./fixtures/leaky-service.ts";
import {
  activateInspector,
  InspectorClosedError,
  InspectorError,
  InspectorHeapTracer,
  InspectorProtocolError,
} from "./inspector.ts";
import type { HeapProfile } from "./profile.ts";

const running: { service: LeakyService; tracer?: InspectorHeapTracer }[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.tracer?.close().catch(() => {});
    await r.service.stop();
  }
});

const leakBytes = (p: HeapProfile) =>
  p.stacks.filter((s) => s.frames[0]?.fn === "retainSessionBuffers").reduce((a, s) => a + s.bytes, 0);

describe("InspectorHeapTracer on a real Node.js process", () => {
  it("connects by host:port and sees only live memory allocated since start", async () => {
    const service = await startLeakyService();
    const hostPort = new URL(await service.inspectorUrl()).host;
    const tracer = await InspectorHeapTracer.connect(hostPort, { samplingIntervalBytes: 8192 });
    running.push({ service, tracer });

    const notStarted = await tracer.snapshot().catch((e: unknown) => e);
    expect(notStarted).toBeInstanceOf(InspectorProtocolError);
    expect((notStarted as Error).message).toMatch(
      /HeapProfiler.getSamplingProfile failed at ws:.*: .*not started/,
    );

    await tracer.start();
    const before = await tracer.snapshot();
    expect(leakBytes(before)).toBe(0); // the workload has not started
    service.go();
    const samples: number[] = [];
    while (samples.length < 3 || samples.at(-1)! <= samples[0]!) {
      await new Promise((r) => setTimeout(r, 300));
      samples.push(leakBytes(await tracer.snapshot()));
      if (samples.length > 30) throw new Error(`the leak never grew: ${samples.join(", ")}`);
    }
    expect(samples.at(-1)!).toBeGreaterThan(0);
    const last = await tracer.stop();
    expect(last.takenAt).toBeGreaterThan(before.takenAt);
    expect(leakBytes(last)).toBeGreaterThan(0);
  });

  it("opens the inspector of a process started without --inspect, by SIGUSR1", async () => {
    const port = await freePort();
    const service = await startLeakyService({ inspectorPort: port });
    running.push({ service });
    const url = await activateInspector(service.pid, { port, timeoutMs: 30_000 });
    expect(url).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:${port}/`));
    const tracer = await InspectorHeapTracer.connect(url);
    running[0]!.tracer = tracer;
    await tracer.start();
    service.go();
    await new Promise((r) => setTimeout(r, 300));
    expect((await tracer.snapshot()).stacks.length).toBeGreaterThan(0);
  });

  it("refuses the inspector of another process that already held the port", async () => {
    const holder = await startLeakyService();
    running.push({ service: holder });
    const port = Number(new URL(await holder.inspectorUrl()).port);
    const service = await startLeakyService({ inspectorPort: port });
    running.push({ service });
    const err = await activateInspector(service.pid, { port, timeoutMs: 30_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InspectorError);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^the inspector on 127\\.0\\.0\\.1:${port} belongs to process ${holder.pid}, not ${service.pid}`,
      ),
    );
  });

  it("leaves nothing running in the target once the tracer disconnects", async () => {
    const service = await startLeakyService();
    const url = await service.inspectorUrl();
    running.push({ service });
    const tracer = await InspectorHeapTracer.connect(url);
    await tracer.start();
    await tracer.snapshot();
    await tracer.close(); // without stop()
    const next = await InspectorHeapTracer.connect(url, { collectGarbageFirst: false });
    running[0]!.tracer = next;
    await expect(next.snapshot()).rejects.toThrow(/not started/);
  });

  it("fails calls with a closed connection when the process dies", async () => {
    const service = await startLeakyService();
    const tracer = await InspectorHeapTracer.connect(await service.inspectorUrl());
    running.push({ service, tracer });
    await tracer.start();
    await service.stop();
    const err = await tracer.snapshot().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InspectorClosedError);
    // Depending on when the loss is noticed: refused up front, unsent, or unanswered.
    expect((err as Error).message).toMatch(/HeapProfiler\.collectGarbage/);
  });
});
