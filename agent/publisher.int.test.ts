/**
 * The agent's publisher and the agent itself on a real nats-server: telemetry buffered while
 * NATS is away (before the first connect and across a server restart) arrives once, in order;
 * beyond the buffer the oldest are dropped and counted. The agent samples this machine's real
 * /proc and its messages are valid telemetry v1 on the contract's subjects.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TELEMETRY_STREAM } from "../lib/jetstream.ts";
import { connectWithRetry, NatsSettings } from "../lib/nats.ts";
import { streamMessages } from "../lib/testing/live.ts";
import { startNats, type TestServer, waitFor } from "../lib/testing/servers.ts";
import { checkTelemetry, type Telemetry } from "../schemas/telemetry.ts";
import { Agent } from "./agent.ts";
import { parseAgentConfig } from "./config.ts";
import { TelemetryPublisher } from "./publisher.ts";

let server: TestServer;
let nc: NatsConnection;

beforeAll(async () => {
  server = await startNats();
});
afterAll(async () => {
  await nc?.close();
  await server?.dispose();
});

const message = (ts: number): Telemetry => ({
  v: 1,
  ts,
  host: "h1",
  component: "api",
  processes: [{ pid: 42, name: "api", startedAt: 1000, bytes: 1e6 + ts }],
});

const stored = async (): Promise<number[]> =>
  (await streamMessages(nc, TELEMETRY_STREAM))
    .filter((m) => m.subject === "resin.telemetry.api.h1")
    .map((m) => (JSON.parse(m.payload) as Telemetry).ts);

describe("TelemetryPublisher", () => {
  it("buffers before the first connection and across a server restart, dropping the oldest beyond its bound", async () => {
    const pub = new TelemetryPublisher({ maxBuffered: 5, ackTimeoutMs: 1000 });
    pub.enqueue([1, 2, 3, 4, 5, 6, 7].map((i) => message(i * 1000)));
    expect(pub.stats).toMatchObject({ enqueued: 7, dropped: 2, buffered: 5 });

    nc = await connectWithRetry(NatsSettings.parse({ servers: server.url }));
    pub.attach(nc);
    await waitFor("the buffer published", () => pub.stats.published === 5);
    expect(await stored()).toEqual([3000, 4000, 5000, 6000, 7000]);

    await server.stop();
    pub.enqueue([message(8000)]);
    pub.enqueue([message(9000)]);
    await server.start();
    await waitFor("the messages sent while NATS was away", () => pub.stats.published === 7, 60_000);
    expect(await stored()).toEqual([3000, 4000, 5000, 6000, 7000, 8000, 9000]);
    expect(await pub.close()).toBe(0);
    expect(pub.stats).toMatchObject({ dropped: 2, rejected: 0, buffered: 0 });
  });
});

describe("Agent", () => {
  it("publishes this machine's real /proc as telemetry v1, one message per component per pass", async () => {
    const agent = await Agent.start({
      config: parseAgentConfig({
        interval: "300ms",
        host: "real-host",
        metricsPort: 0,
        attrs: { region: "test" },
      }),
      host: "real-host",
      nats: NatsSettings.parse({ servers: server.url }),
      log: pino({ level: "silent" }),
    });
    await waitFor(
      "three passes published",
      () => agent.stats.passes >= 3 && agent.publisher.stats.buffered === 0,
    );
    expect(await agent.stop()).toBe(0);
    const messages = (await streamMessages(nc, TELEMETRY_STREAM)).filter((m) =>
      m.subject.endsWith(".real-host"),
    );
    const parsed = messages.map((m) => JSON.parse(m.payload) as Telemetry);
    for (const [i, t] of parsed.entries()) {
      expect(checkTelemetry(t).ok).toBe(true);
      expect(messages[i]!.subject).toBe(`resin.telemetry.${t.component}.real-host`);
      expect(messages[i]!.msgId).toBe(`real-host/${t.component}/${t.ts}`);
    }
    // This test's own process is there with its real start time, and so is the kernel.
    const me = parsed.flatMap((t) => t.processes).find((p) => p.pid === process.pid);
    expect(me?.bytes).toBeGreaterThan(1024 * 1024);
    const started = Date.now() - process.uptime() * 1000;
    expect(Math.abs(me!.startedAt! - started)).toBeLessThan(2000);
    expect(
      parsed.some((t) => t.component === "kernel" && t.processes.some((p) => p.name === "SUnreclaim")),
    ).toBe(true);
    expect(parsed[0]).toMatchObject({
      attrs: { region: "test" },
      hostMemory: { totalBytes: expect.any(Number) },
    });
    // Each pass: one message per component, all with the pass's ts.
    const perPass = new Map<number, string[]>();
    for (const t of parsed) perPass.set(t.ts, [...(perPass.get(t.ts) ?? []), t.component]);
    for (const components of perPass.values()) expect(new Set(components).size).toBe(components.length);
  });
});
