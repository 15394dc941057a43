/**
 * The agent's "pprof-http" profile source against real endpoints: real child processes
 * (fixtures/pprof-service.ts) that leak in retainOrderHistory and serve Go-style
 * `/debug/pprof/heap` profiles of their own heap, found by the agent's real Sampler over /proc
 * with the rules of a parsed agent config. Two collects show the leak; an endpoint answering
 * 404, text instead of pprof, or nothing at all, and a process that died, fail with the codes
 * resin acts on and messages that say what went wrong.
 */
import type { ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentSourceError } from "../lib/agent/protocol.ts";
import type { TraceSpec } from "../lib/agent/responder.ts";
import type { HeapProfile } from "../lib/heap/profile.ts";
import { spawnNode } from "../lib/testing/live.ts";
import { freePort } from "../lib/testing/servers.ts";
import { diagnose } from "../sinks/snapshot/diagnose.ts";
import { type AgentConfigInput, parseAgentConfig } from "./config.ts";
import { RealProcFs } from "./procfs.ts";
import { DEFAULT_CLOCK_TICKS, DEFAULT_PAGE_SIZE, Sampler } from "./sampler.ts";
import { AgentProfileSource } from "./snapshot-source.ts";

const FIXTURE = resolve(import.meta.dirname, "fixtures/pprof-service.ts");
const LEAK_KIB_PER_S = 1024;
const SAMPLING_INTERVAL_BYTES = 16 * 1024;

interface PprofService {
  child: ChildProcess;
  pid: number;
  port: number;
  base: string;
  exited: Promise<void>;
  output: () => string;
}

const services: PprofService[] = [];

/** Starts the fixture and waits for its port; `role` tells the config's rules the children apart. */
async function startPprofService(role: string, port = 0): Promise<PprofService> {
  const { child, stdout, output, exited } = spawnNode([
    "--import",
    "tsx",
    FIXTURE,
    `--role=${role}`,
    `--leak-kib-per-s=${LEAK_KIB_PER_S}`,
    `--sampling-interval-bytes=${SAMPLING_INTERVAL_BYTES}`,
    "--lifetime-s=90",
    `--port=${port}`,
  ]);
  const service: PprofService = { child, pid: child.pid!, port: 0, base: "", exited, output };
  services.push(service);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = /listening (\d+) (\d+)/.exec(stdout());
    if (m) {
      expect(Number(m[2])).toBe(child.pid);
      service.port = Number(m[1]);
      service.base = `http://127.0.0.1:${service.port}`;
      return service;
    }
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`pprof-service exited before listening: ${output()}`);
    if (Date.now() > deadline) throw new Error(`pprof-service not listening after 20 s: ${output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function kill(service: PprofService): Promise<void> {
  if (service.child.exitCode === null && service.child.signalCode === null) service.child.kill("SIGKILL");
  await service.exited;
}

/**
 * The agent's view of the host, as agent/agent.ts builds it: a parsed config, the Sampler over
 * the real /proc, and the profile source asking the Sampler who a pid is.
 */
function agentFor(role: string, rule: Partial<NonNullable<AgentConfigInput["components"]>[number]>) {
  const config = parseAgentConfig({
    host: "h1",
    unmatched: "skip",
    kernel: { enabled: false },
    components: [
      {
        component: "orders",
        cmdline: `pprof-service\\.ts --role=${role}\\b`,
        process: "orders-api",
        ...rule,
      },
    ],
  });
  const sampler = new Sampler(config, {
    host: "h1",
    fs: new RealProcFs(),
    pageSize: DEFAULT_PAGE_SIZE,
    clockTicks: DEFAULT_CLOCK_TICKS,
  });
  const source = new AgentProfileSource({ identify: (pid) => sampler.identify(pid) });
  return { config, sampler, source };
}

const specOf = (service: PprofService, trace: string, over: Partial<TraceSpec> = {}): TraceSpec => ({
  trace,
  host: "h1",
  pid: service.pid,
  process: "orders-api",
  component: "orders",
  samplingIntervalBytes: SAMPLING_INTERVAL_BYTES,
  ...over,
});

/** The AgentSourceError a call fails with (and fails the test if it does not). */
async function failure(p: Promise<unknown>): Promise<AgentSourceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentSourceError);
  return err as AgentSourceError;
}

/** Live bytes per allocating function (top frame). */
function bytesByTopFrame(p: HeapProfile): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of p.stacks) {
    const fn = s.frames[0]?.fn ?? "?";
    m.set(fn, (m.get(fn) ?? 0) + s.bytes);
  }
  return m;
}

let orders: PprofService;
let doomed: PprofService;

beforeAll(async () => {
  [orders, doomed] = await Promise.all([startPprofService("orders"), startPprofService("doomed")]);
});

afterAll(async () => {
  await Promise.all(services.map(kill));
});

describe("AgentProfileSource, pprof-http, against a real endpoint", () => {
  it("collects the leaking process's heap profiles, which name the leaking function", async () => {
    // {pid} is substituted: the fixture answers 404 to any pid but its own.
    const { config, sampler, source } = agentFor("orders", {
      snapshot: { kind: "pprof-http", url: `${orders.base}/debug/pprof/heap?pid={pid}`, timeoutMs: "5s" },
    });
    expect(config.components[0]?.snapshot).toEqual({
      kind: "pprof-http",
      url: `${orders.base}/debug/pprof/heap?pid={pid}`,
      timeoutMs: 5000,
    });
    expect(sampler.identify(orders.pid)).toMatchObject({ component: "orders", process: "orders-api" });

    const spec = specOf(orders, "orders-1");
    await source.start(spec);
    const first = await source.collect(spec);
    await new Promise((r) => setTimeout(r, 3000));
    const second = await source.collect(spec);
    await source.stop(spec);
    await source.close();

    // time_nanos of the profile, not the agent's clock: the process took it between the requests.
    expect(first.takenAt).toBeGreaterThan(Date.now() - 10_000);
    expect(second.takenAt - first.takenAt).toBeGreaterThanOrEqual(2900);
    expect(second.takenAt).toBeLessThanOrEqual(Date.now());

    // The largest allocator in the live heap, and the stack that grew the most.
    const sizes = [...bytesByTopFrame(second)].sort((a, b) => b[1] - a[1]);
    expect(sizes[0]?.[0], JSON.stringify(sizes.slice(0, 5))).toBe("retainOrderHistory");
    const { culprits } = diagnose({
      profiles: [first, second],
      estimate: { pattern: "steady", growthBytesPerHour: 0 },
    });
    const top = culprits[0]!;
    expect(top.frames[0]).toMatchObject({
      fn: "retainOrderHistory",
      file: expect.stringContaining("pprof-service.ts"),
    });
    expect(top.growthShare).toBeGreaterThan(0.5);
    // V8 estimates the leak's live bytes from 16 KiB samples: near what the fixture retains
    // (less when the busy host delays its ticks, never much more).
    const expected = (LEAK_KIB_PER_S * 1024 * (second.takenAt - first.takenAt)) / 1000;
    expect(top.growthBytes).toBeGreaterThan(0.2 * expected);
    expect(top.growthBytes).toBeLessThan(2 * expected);

    const after = await failure(source.collect(spec));
    expect(after.code).toBe("unknown-trace");
  });

  it("fails with source-failed naming the URL when the endpoint answers 404", async () => {
    const url = `${orders.base}/pprof/heap`; // not where the service serves it
    const { source } = agentFor("orders", { snapshot: { kind: "pprof-http", url, timeoutMs: 5000 } });
    const spec = specOf(orders, "orders-404");
    const err = await failure(source.start(spec));
    expect(err.code).toBe("source-failed");
    expect(err.message).toContain(url);
    expect(err.message).toMatch(/answered 404/);
    expect(err.message).toContain(`pid ${orders.pid}`);
    // A failed start leaves no route behind.
    expect((await failure(source.collect(spec))).code).toBe("unknown-trace");
  });

  it("fails with source-failed saying it is not a pprof profile when the body is text", async () => {
    // Go's debug=1: the legacy text format, with 200 OK.
    const url = `${orders.base}/debug/pprof/heap?debug=1`;
    const text = await (await fetch(url)).text();
    expect(text).toMatch(/^heap profile: /);
    const { source } = agentFor("orders", { snapshot: { kind: "pprof-http", url, timeoutMs: 5000 } });
    const err = await failure(source.start(specOf(orders, "orders-text")));
    expect(err.code).toBe("source-failed");
    expect(err.message).toContain(`${url} did not serve a pprof heap profile`);
    expect(err.message).toMatch(/not a pprof profile/);
  });

  it("fails with unreachable when the process is alive but its endpoint does not answer", async () => {
    const closed = `http://127.0.0.1:${await freePort()}/debug/pprof/heap`;
    const refused = agentFor("orders", { snapshot: { kind: "pprof-http", url: closed, timeoutMs: 5000 } });
    const err = await failure(refused.source.start(specOf(orders, "orders-closed")));
    expect(err.code).toBe("unreachable");
    expect(err.message).toContain(
      `cannot fetch the heap profile of orders-api (pid ${orders.pid}) from ${closed}`,
    );
    expect(String((err.cause as Error).cause)).toMatch(/ECONNREFUSED/);
    // The reason is in the message too, not only fetch's bare "fetch failed".
    expect(err.message).toMatch(/ECONNREFUSED/);

    const hung = `${orders.base}/stall`;
    const stalled = agentFor("orders", { snapshot: { kind: "pprof-http", url: hung, timeoutMs: 500 } });
    const t0 = Date.now();
    const late = await failure(stalled.source.start(specOf(orders, "orders-stall")));
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(late.code).toBe("unreachable");
    expect(late.message).toContain(hung);
    expect(late.message).toMatch(/timeout/i);
  });

  it("fails with no-such-process once the process is killed", async () => {
    const { source, sampler } = agentFor("doomed", {
      snapshot: { kind: "pprof-http", url: `${doomed.base}/debug/pprof/heap`, timeoutMs: 5000 },
    });
    const spec = specOf(doomed, "doomed-1");
    await source.start(spec);
    expect(bytesByTopFrame(await source.collect(spec)).get("retainOrderHistory")).toBeGreaterThan(0);

    await kill(doomed);
    expect(sampler.identify(doomed.pid)).toBeUndefined();
    const err = await failure(source.collect(spec));
    expect(err.code).toBe("no-such-process");
    expect(err.message).toBe(`process ${doomed.pid} is gone`);
    // And a new trace of it is refused before any fetch.
    const again = await failure(source.start(specOf(doomed, "doomed-2")));
    expect(again.code).toBe("no-such-process");
    await source.stop(spec);
  });

  it("fails with no-such-process when another process has taken over the endpoint's port", async () => {
    // A Go service serves its heap on a fixed port: after the traced process dies and its
    // supervisor starts it again, the URL answers for the new process. Its heap must not be
    // passed off as the old pid's (the leak would seem to vanish from the diagnosis).
    const port = await freePort();
    const first = await startPprofService("phoenix", port);
    const { source } = agentFor("phoenix", {
      snapshot: { kind: "pprof-http", url: `http://127.0.0.1:${port}/debug/pprof/heap`, timeoutMs: 5000 },
    });
    const spec = specOf(first, "phoenix-1");
    await source.start(spec);
    await source.collect(spec);
    await kill(first);
    const second = await startPprofService("phoenix", port);
    expect(second.pid).not.toBe(first.pid);
    const err = await failure(source.collect(spec));
    expect(err.code).toBe("no-such-process");
    expect(err.message).toBe(`process ${first.pid} is gone`);
    await source.stop(spec);
  });

  it("refuses a process of another component, and a component without a snapshot route", async () => {
    const routed = agentFor("orders", {
      snapshot: { kind: "pprof-http", url: `${orders.base}/debug/pprof/heap`, timeoutMs: 5000 },
    });
    const other = await failure(
      routed.source.start(specOf(orders, "orders-billing", { component: "billing" })),
    );
    expect(other.code).toBe("no-such-process");
    expect(other.message).toContain("is in component orders, not billing");

    for (const rule of [{}, { snapshot: { kind: "none" as const } }]) {
      const { source } = agentFor("orders", rule);
      const err = await failure(source.start(specOf(orders, "orders-none")));
      expect(err.code).toBe("unreachable");
      expect(err.message).toContain("no heap profile source for component orders");
      expect(err.message).toContain("set components[].snapshot in the agent config");
      expect(err.message).toContain('"pprof-http" with the URL of its heap profile');
    }
  });
});
