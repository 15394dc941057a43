/**
 * The tracer against a fake inspector on loopback (a ws server and its /json/list), for what a
 * real Node.js process will not do on demand: answer late, never, or with malformed profiles.
 */
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type WebSocket, WebSocketServer } from "ws";
import {
  activateInspector,
  InspectorClosedError,
  InspectorError,
  InspectorHeapTracer,
  InspectorProtocolError,
  InspectorTimeoutError,
  InspectorUnreachableError,
  resolveInspectorUrl,
} from "./inspector.ts";

type Request = { id: number; method: string; params: Record<string, unknown> };

const profileAnswer = {
  profile: {
    head: {
      callFrame: { functionName: "(root)", url: "", lineNumber: -1, columnNumber: -1, scriptId: "0" },
      selfSize: 0,
      id: 1,
      children: [
        {
          callFrame: {
            functionName: "leak",
            url: "file:///a.js",
            lineNumber: 4,
            columnNumber: 2,
            scriptId: "7",
          },
          selfSize: 4096,
          id: 2,
          children: [],
        },
      ],
    },
    samples: [{ size: 4096, nodeId: 2, ordinal: 1 }],
  },
};

/** A fake inspector; `answer` decides each reply (undefined: never answer). */
async function fakeInspector(answer: (req: Request, ws: WebSocket) => unknown) {
  const http: Server = createServer((req, res) => {
    if (req.url === "/json/list") {
      const { port } = http.address() as AddressInfo;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify([{ type: "node", webSocketDebuggerUrl: `ws://127.0.0.1:${port}/session-1` }]));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  const wss = new WebSocketServer({ server: http });
  const requests: Request[] = [];
  wss.on("connection", (ws) => {
    ws.on("message", (data) => {
      const req = JSON.parse(data.toString()) as Request;
      requests.push(req);
      const reply = answer(req, ws);
      if (reply !== undefined) ws.send(JSON.stringify({ id: req.id, ...reply }));
    });
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  const { port } = http.address() as AddressInfo;
  cleanups.push(async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    await new Promise((r) => http.close(r));
  });
  return { port, requests, wss };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe("InspectorHeapTracer", () => {
  it("finds the session via host:port, starts sampling with the interval, and turns answers into profiles", async () => {
    const fake = await fakeInspector((req, ws) => {
      ws.send(JSON.stringify({ method: "HeapProfiler.lastSeenObjectId", params: {} })); // events are ignored
      return {
        result:
          req.method.endsWith("SamplingProfile") || req.method.endsWith("stopSampling") ? profileAnswer : {},
      };
    });
    const tracer = await InspectorHeapTracer.connect(`127.0.0.1:${fake.port}`, {
      samplingIntervalBytes: 4096,
      now: () => 42,
    });
    expect(tracer.url).toBe(`ws://127.0.0.1:${fake.port}/session-1`);
    await tracer.start();
    const profile = await tracer.snapshot();
    expect(profile).toEqual({
      takenAt: 42,
      stacks: [{ frames: [{ fn: "leak", file: "file:///a.js", line: 5 }], bytes: 4096, objects: 1 }],
    });
    expect(await tracer.stop()).toEqual(profile);
    await tracer.close();
    expect(fake.requests.map((r) => [r.method, r.params])).toEqual([
      ["HeapProfiler.enable", {}],
      ["HeapProfiler.startSampling", { samplingInterval: 4096 }],
      ["HeapProfiler.collectGarbage", {}],
      ["HeapProfiler.getSamplingProfile", {}],
      ["HeapProfiler.collectGarbage", {}],
      ["HeapProfiler.stopSampling", {}],
      ["HeapProfiler.disable", {}],
    ]);
    await expect(tracer.snapshot()).rejects.toThrow(
      /cannot call HeapProfiler.collectGarbage: tracer for .* was closed/,
    );
  });

  it("reports a protocol error with the method and the inspector's message", async () => {
    const fake = await fakeInspector(() => ({
      error: { code: -32000, message: "V8 sampling heap profiler was not started." },
    }));
    const tracer = await InspectorHeapTracer.connect(`ws://127.0.0.1:${fake.port}/session-1`, {
      collectGarbageFirst: false,
    });
    const err = await tracer.snapshot().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InspectorProtocolError);
    expect(err).toMatchObject({ method: "HeapProfiler.getSamplingProfile", code: -32000 });
    expect((err as Error).message).toBe(
      `HeapProfiler.getSamplingProfile failed at ws://127.0.0.1:${fake.port}/session-1: V8 sampling heap profiler was not started. (code -32000)`,
    );
    await tracer.close();
  });

  it("rejects a malformed profile, saying which call returned it", async () => {
    const fake = await fakeInspector(() => ({ result: { profile: { head: { selfSize: "lots" } } } }));
    const tracer = await InspectorHeapTracer.connect(`127.0.0.1:${fake.port}`, {
      collectGarbageFirst: false,
    });
    await expect(tracer.snapshot()).rejects.toThrow(
      /HeapProfiler.getSamplingProfile at .* returned no sampling heap profile/,
    );
    await tracer.close();
  });

  it("times out a call that gets no answer, and fails waiting calls when the connection drops", async () => {
    const fake = await fakeInspector(() => undefined);
    const tracer = await InspectorHeapTracer.connect(`127.0.0.1:${fake.port}`, { timeoutMs: 200 });
    const timedOut = await tracer.start().catch((e: unknown) => e);
    expect(timedOut).toBeInstanceOf(InspectorTimeoutError);
    expect((timedOut as Error).message).toMatch(/^HeapProfiler.enable at ws:.*: no answer in 200 ms$/);

    const slow = await InspectorHeapTracer.connect(`127.0.0.1:${fake.port}`, { timeoutMs: 10_000 });
    const waiting = slow.snapshot().catch((e: unknown) => e);
    while (fake.requests.length < 2) await new Promise((r) => setTimeout(r, 10));
    for (const c of fake.wss.clients) c.terminate();
    const closed = await waiting;
    expect(closed).toBeInstanceOf(InspectorClosedError);
    expect((closed as Error).message).toMatch(
      /HeapProfiler.collectGarbage got no answer: connection to .* closed/,
    );
    await tracer.close();
    await slow.close();
  });

  it("says when nothing answers, or the inspector lists no target", async () => {
    const nothing = await InspectorHeapTracer.connect("127.0.0.1:1", { timeoutMs: 1000 }).catch(
      (e: unknown) => e,
    );
    expect(nothing).toBeInstanceOf(InspectorUnreachableError);
    expect((nothing as Error).message).toMatch(/^no inspector answers at http:\/\/127.0.0.1:1\/json\/list: /);

    const empty = createServer((_req, res) => res.end("[]"));
    await new Promise<void>((r) => empty.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => empty.close(() => r())));
    const { port } = empty.address() as AddressInfo;
    await expect(resolveInspectorUrl(`http://127.0.0.1:${port}/`, 1000)).rejects.toThrow(
      `inspector at http://127.0.0.1:${port} lists no debuggable target`,
    );
    await expect(InspectorHeapTracer.connect("ws://127.0.0.1:1/x", { timeoutMs: 1000 })).rejects.toThrow(
      /^cannot connect to inspector at ws:\/\/127.0.0.1:1\/x: /,
    );
    await expect(InspectorHeapTracer.connect("127.0.0.1:1", { samplingIntervalBytes: 0 })).rejects.toThrow(
      RangeError,
    );
  });

  it("refuses to signal a process that does not run node, which stays alive", async () => {
    const sleeper = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      await new Promise((r) => sleeper.once("spawn", r));
      const pid = sleeper.pid!;
      const err = await activateInspector(pid, { timeoutMs: 500 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InspectorError);
      expect((err as Error).message).toMatch(
        new RegExp(`^refusing to send SIGUSR1 to process ${pid}: it runs \\S*sleep\\b.*not node`),
      );
      await new Promise((r) => setTimeout(r, 50));
      expect(sleeper.exitCode).toBeNull();
      expect(sleeper.signalCode).toBeNull();
      expect(() => process.kill(pid, 0)).not.toThrow();
    } finally {
      sleeper.kill();
    }
  });

  it("cannot activate the inspector of a process that does not exist", async () => {
    const err = await activateInspector(2 ** 22 + 12345).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InspectorError);
    expect((err as Error).message).toBe(`cannot send SIGUSR1 to process ${2 ** 22 + 12345}: no such process`);
  });
});
