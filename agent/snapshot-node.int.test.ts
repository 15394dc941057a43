/**
 * The Node.js profile source behind a real responder on a real nats-server, tracing a real
 * leaking process (lib/heap/fixtures/leaky-service.js): profiles land in the Object Store and
 * show the leak growing; a process that is not there is refused as no-such-process.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentRefusedError, SnapshotClient } from "../lib/agent/client.ts";
import { ProfileStore } from "../lib/agent/profiles.ts";
import { SnapshotResponder } from "../lib/agent/responder.ts";
import { type LeakyService, startLeakyService } from "../lib/heap/fixtures/leaky-service.ts";
import type { HeapProfile } from "../lib/heap/profile.ts";
import { connectWithRetry, NatsSettings } from "../lib/nats.ts";
import { startNats, type TestServer } from "../lib/testing/servers.ts";
import { NodeSnapshotSource } from "./snapshot-node.ts";

let server: TestServer;
let nc: NatsConnection;
let service: LeakyService;
let responder: SnapshotResponder;

beforeAll(async () => {
  server = await startNats();
  nc = await connectWithRetry(NatsSettings.parse({ servers: server.url }));
  service = await startLeakyService();
  const url = await service.inspectorUrl();
  responder = await SnapshotResponder.start(nc, {
    host: "h1",
    source: new NodeSnapshotSource({ inspectorFor: async () => url }),
  });
});

afterAll(async () => {
  await responder?.close();
  await service?.stop();
  await nc?.close();
  await server?.dispose();
});

const leakBytes = (p: HeapProfile) =>
  p.stacks.filter((s) => s.frames[0]?.fn === "retainSessionBuffers").reduce((a, s) => a + s.bytes, 0);

describe("NodeSnapshotSource", () => {
  it("traces a real Node.js process through its inspector", async () => {
    const client = new SnapshotClient(nc, 60_000);
    await client.start("h1", {
      trace: "node-1",
      pid: service.pid,
      process: "leaky-service",
      component: "api",
      samplingIntervalBytes: 8192,
      ttlMs: 600_000,
    });
    service.go();
    const store = await ProfileStore.open(nc);
    const leaks: number[] = [];
    while (leaks.length < 3 || leaks.at(-1)! <= leaks[0]!) {
      await new Promise((r) => setTimeout(r, 300));
      const reply = await client.collect("h1", { trace: "node-1" });
      expect(reply).toMatchObject({ host: "h1", pid: service.pid, process: "leaky-service" });
      const profile = await store.get(reply.id);
      expect(profile?.takenAt).toBe(reply.takenAt);
      leaks.push(leakBytes(profile!));
      if (leaks.length > 40) throw new Error(`the leak never grew: ${leaks.join(", ")}`);
    }
    expect(await client.stop("h1", { trace: "node-1" })).toMatchObject({ known: true });
  });

  it("refuses a process that does not exist", async () => {
    const client = new SnapshotClient(nc, 60_000);
    const err = await client
      .start("h1", {
        trace: "ghost",
        pid: 2 ** 22 + 17,
        process: "ghost",
        component: "api",
        samplingIntervalBytes: 8192,
        ttlMs: 600_000,
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentRefusedError);
    expect((err as AgentRefusedError).code).toBe("no-such-process");
  });
});
