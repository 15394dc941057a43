import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { TELEMETRY_STREAM, telemetryMsgId, telemetrySubject } from "../lib/jetstream.ts";
import { connectWithRetry, NatsSettings } from "../lib/nats.ts";
import { type StoredMessage, streamMessages } from "../lib/testing/live.ts";
import { startNats, type TestServer } from "../lib/testing/servers.ts";
import { createSimulation, resolveScenario } from "./index.ts";
import { PublishError, publishTelemetry, telemetryKey } from "./publish.ts";

const ROOT = resolve(import.meta.dirname, "..");

/** Everything in the telemetry stream, in stream order. */
const readStream = (nc: NatsConnection) => streamMessages(nc, TELEMETRY_STREAM);

/** A small fleet's lines, and what the stream should hold: each message id once, first delivery first. */
function fleet(hosts: number, days: number, seed: number) {
  const lines = [...createSimulation(resolveScenario("mixed", { hosts, days, seed })).lines()];
  const seen = new Map<string, string>();
  const expected: string[] = [];
  for (const line of lines) {
    const id = telemetryMsgId(telemetryKey(line)!);
    const first = seen.get(id);
    if (first === undefined) {
      seen.set(id, line);
      expected.push(line);
    } else {
      // The simulator's duplicates repeat a message byte for byte: dedup by id loses nothing.
      expect(line).toBe(first);
    }
  }
  return { lines, expected };
}

function expectStreamHolds(stored: StoredMessage[], expected: string[]): void {
  expect(stored.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const key = telemetryKey(expected[i]!)!;
    const s = stored[i]!;
    if (s.payload !== expected[i] || s.subject !== telemetrySubject(key.component, key.host)) {
      expect({ at: i, ...s }).toEqual({
        at: i,
        subject: telemetrySubject(key.component, key.host),
        msgId: telemetryMsgId(key),
        payload: expected[i],
      });
    }
    expect(s.msgId).toBe(telemetryMsgId(key));
  }
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function resin(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("RESIN_NATS_")));
  return new Promise((done) => {
    execFile(
      process.execPath,
      [join(ROOT, "bin/resin.js"), ...args],
      { cwd: ROOT, env: { ...clean, ...env }, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : null;
        done({ code, stdout, stderr });
      },
    );
  });
}

describe("telemetryKey", () => {
  it("reads host, component and ts from the simulator's lines and from any valid JSON", () => {
    const key = { host: "r00-h00042", component: "storage-cache", ts: 1767571200000 };
    expect(
      telemetryKey(
        '{"v":1,"ts":1767571200000,"host":"r00-h00042","component":"storage-cache","attrs":{},"processes":[]}',
      ),
    ).toEqual(key);
    expect(
      telemetryKey(
        '{ "component": "storage-cache", "processes": [], "v": 1, "host": "r00-h00042", "ts": 1767571200000 }',
      ),
    ).toEqual(key);
    expect(telemetryMsgId(key)).toBe("r00-h00042/storage-cache/1767571200000");
  });

  it("rejects lines whose host, component or ts cannot be a subject token or a time", () => {
    expect(telemetryKey("not json")).toBeUndefined();
    expect(telemetryKey('{"v":1,"ts":1,"host":"a.b","component":"c","processes":[]}')).toBeUndefined();
    expect(telemetryKey('{"v":1,"ts":1,"host":"a","component":"c>","processes":[]}')).toBeUndefined();
    expect(telemetryKey('{"v":1,"ts":1.5,"host":"a","component":"c","processes":[]}')).toBeUndefined();
    expect(telemetryKey('{"v":1,"ts":"1","host":"a","component":"c","processes":[]}')).toBeUndefined();
    expect(telemetryKey('{"v":1,"host":"a","component":"c","processes":[]}')).toBeUndefined();
  });
});

describe("publishTelemetry on a real nats-server", () => {
  let server: TestServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startNats();
    nc = await connectWithRetry(NatsSettings.parse({ servers: server.url }));
  });

  afterAll(async () => {
    await nc?.close();
    await server?.dispose();
  });

  /** Yields `lines`, killing nats-server at a third of them and starting it again half a second later. */
  function restartingAtThird(lines: readonly string[]) {
    let restarting: Promise<void> | undefined;
    const killAt = Math.floor(lines.length / 3);
    function* input(): Generator<string> {
      for (let i = 0; i < lines.length; i++) {
        if (i === killAt) {
          restarting = server
            .kill()
            .then(() => new Promise((r) => setTimeout(r, 500)))
            .then(() => server.start());
        }
        yield lines[i]!;
      }
    }
    return { input, restarted: () => restarting };
  }

  beforeEach(async () => {
    // A fresh stream: no messages and no remembered message ids.
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(TELEMETRY_STREAM).catch(() => undefined);
  });

  it("stores every message once, on its subject, byte for byte and in order", async () => {
    const { lines, expected } = fleet(5, 0.5, 11);
    expect(lines.length).toBeGreaterThan(expected.length); // the fleet has duplicate deliveries
    const progress: number[] = [];
    const r = await publishTelemetry(nc, lines, {
      onProgress: (p) => progress.push(p.sent),
      progressIntervalMs: 50,
    });
    expect(r).toMatchObject({
      published: expected.length,
      duplicates: lines.length - expected.length,
      invalid: 0,
      undelivered: 0,
      retries: 0,
      aborted: false,
    });
    expect(r.bytes).toBe(lines.reduce((sum, l) => sum + Buffer.byteLength(l), 0));
    expect(progress.at(-1)).toBe(lines.length); // a final progress report
    expectStreamHolds(await readStream(nc), expected);

    // Publishing the same fleet again stores nothing new.
    const again = await publishTelemetry(nc, lines);
    expect(again).toMatchObject({ published: 0, duplicates: lines.length });
    expect((await readStream(nc)).length).toBe(expected.length);
  });

  it("loses nothing and stores nothing twice when nats-server is killed and restarted mid-stream", async () => {
    const { lines, expected } = fleet(5, 0.5, 12);
    const { input, restarted } = restartingAtThird(lines);
    let sawRetrying = false;
    const r = await publishTelemetry(nc, input(), {
      ackTimeoutMs: 1000,
      progressIntervalMs: 50,
      onProgress: (p) => {
        sawRetrying ||= p.retrying;
      },
    });
    await restarted();
    expect(r.retries).toBeGreaterThan(0);
    expect(sawRetrying).toBe(true);
    expect(r.undelivered).toBe(0);
    // Messages stored before the kill whose acks were lost come back as duplicates when retried.
    expect(r.published + r.duplicates).toBe(lines.length);
    expect(r.published).toBeLessThanOrEqual(expected.length);

    const stored = await readStream(nc);
    expect(stored.length).toBe(expected.length);
    expect(new Set(stored.map((s) => s.msgId)).size).toBe(expected.length);
    expect(new Set(stored.map((s) => s.payload))).toEqual(new Set(expected));
    for (const s of stored) {
      const key = telemetryKey(s.payload)!;
      expect(s.subject).toBe(telemetrySubject(key.component, key.host));
      expect(s.msgId).toBe(telemetryMsgId(key));
    }
    // Retries go out oldest first, so a message lands at most one window away from its place.
    const position = new Map(expected.map((l, i) => [l, i]));
    const displaced = stored.map((s, i) => Math.abs(position.get(s.payload)! - i));
    expect(Math.max(...displaced)).toBeLessThanOrEqual(1024);
  });

  it("keeps the order exactly when nats-server is killed and restarted while publishing is paced", async () => {
    const { lines, expected } = fleet(2, 0.25, 17);
    const { input, restarted } = restartingAtThird(lines);
    // Six simulated hours in about three seconds: the window (1024) never fills, so nothing but
    // the disconnect itself can make the publisher wait for the publishes the restart lost.
    const r = await publishTelemetry(nc, input(), { speed: 7200, ackTimeoutMs: 1000 });
    await restarted();
    expect(r.retries).toBeGreaterThan(0);
    expect(r.undelivered).toBe(0);
    expect(r.published + r.duplicates).toBe(lines.length);
    expectStreamHolds(await readStream(nc), expected);
  });

  it("keeps the input order when pacing by event time (--speed) or by rate", async () => {
    const { lines, expected } = fleet(3, 0.5, 13);
    // Half a simulated day in about a quarter of a second; only the order is checked.
    const r = await publishTelemetry(nc, lines, { speed: 4 * 43_200 });
    expect(r).toMatchObject({ published: expected.length, undelivered: 0 });
    expectStreamHolds(await readStream(nc), expected);

    await (await jetstreamManager(nc)).streams.delete(TELEMETRY_STREAM);
    const byRate = await publishTelemetry(nc, lines, { rate: 20_000, maxInFlight: 16 });
    expect(byRate).toMatchObject({ published: expected.length, undelivered: 0 });
    expectStreamHolds(await readStream(nc), expected);
  });

  it("takes async input in batches, and skips and counts invalid lines", async () => {
    const { lines, expected } = fleet(2, 0.25, 14);
    async function* batches(): AsyncGenerator<string[]> {
      for (let i = 0; i < lines.length; i += 100) {
        const batch = lines.slice(i, i + 100);
        if (i === 0) batch.push("", "not telemetry", '{"v":1,"ts":1,"host":"a b","component":"c"}');
        yield batch;
      }
    }
    const r = await publishTelemetry(nc, batches(), { maxInFlight: 64 });
    expect(r).toMatchObject({ published: expected.length, invalid: 2, undelivered: 0 });
    expectStreamHolds(await readStream(nc), expected);
  });

  it("stops reading at the signal and reports it", async () => {
    const { lines } = fleet(2, 0.25, 15);
    const abort = new AbortController();
    function* input(): Generator<string> {
      for (let i = 0; i < lines.length; i++) {
        if (i === 100) abort.abort();
        yield lines[i]!;
      }
    }
    const r = await publishTelemetry(nc, input(), { signal: abort.signal });
    expect(r.aborted).toBe(true);
    expect(r.undelivered).toBe(0);
    // The line being read when the signal fired still goes out; nothing after it.
    expect(r.published + r.duplicates).toBe(101);
    expect((await readStream(nc)).length).toBe(r.published);
  });

  describe("resin simulate --nats", () => {
    it("publishes the fleet and exits 0", async () => {
      const dir = mkdtempSync(join(tmpdir(), "resin-sim-nats-"));
      try {
        const args = ["simulate", "--hosts", "3", "--days", "0.25", "--seed", "16"];
        const run = await resin([
          ...args,
          "--nats",
          server.url,
          "--speed",
          "1000000",
          "--out",
          join(dir, "t.ndjson"),
          "--truth",
          join(dir, "g.ndjson"),
        ]);
        expect(run.stderr).toContain("stored");
        expect(run.code).toBe(0);
        expect(run.stdout).toBe("");
        const { lines, expected } = fleet(3, 0.25, 16);
        expect(readFileSync(join(dir, "t.ndjson"), "utf8")).toBe(`${lines.join("\n")}\n`);
        expect(readFileSync(join(dir, "g.ndjson"), "utf8").length).toBeGreaterThan(0);
        expectStreamHolds(await readStream(nc), expected);
        expect(run.stderr).toMatch(new RegExp(`nats +${expected.length.toLocaleString("en-US")} stored`));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("takes the server from RESIN_NATS_URL for a bare --nats", async () => {
      const run = await resin(["simulate", "--hosts", "2", "--days", "0.1", "--nats", "--no-summary"], {
        RESIN_NATS_URL: server.url,
      });
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expect((await readStream(nc)).length).toBe(fleet(2, 0.1, 1).expected.length);
    });

    it("exits 2 naming the flag and the value for a bad --rate, before connecting", async () => {
      const run = await resin([
        "simulate",
        "--hosts",
        "2",
        "--days",
        "0.1",
        "--nats",
        server.url,
        "--rate",
        "abc",
      ]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/--rate .*"abc"/);
      const both = await resin(["simulate", "--nats", server.url, "--rate", "5", "--speed", "60"]);
      expect(both.code).toBe(2);
      expect(both.stderr).toContain("mutually exclusive");
      const noNats = await resin(["simulate", "--speed", "60"]);
      expect(noNats.code).toBe(2);
      expect(noNats.stderr).toContain("--speed only applies with --nats");
    });

    it("exits 1 when the server cannot be reached within --connect-timeout", async () => {
      const run = await resin([
        "simulate",
        "--hosts",
        "2",
        "--days",
        "0.1",
        "--nats",
        "nats://127.0.0.1:1",
        "--connect-timeout",
        "1s",
      ]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain("cannot connect to NATS at nats://127.0.0.1:1 within 1 s");
    });
  });
});

describe("publishTelemetry giving up", () => {
  it("counts every message taken from the input and never acknowledged as undelivered", async () => {
    const server = await startNats();
    const nc = await connectWithRetry(NatsSettings.parse({ servers: server.url }));
    try {
      const { lines } = fleet(2, 0.25, 18);
      let taken = 0;
      let killed: Promise<void> | undefined;
      function* input(): Generator<string> {
        for (const line of lines) {
          // The server goes away for good while the window (16) is full.
          if (taken === 200) killed = server.kill();
          taken++;
          yield line;
        }
      }
      const failure = await publishTelemetry(nc, input(), {
        maxInFlight: 16,
        ackTimeoutMs: 200,
        giveUpAfterMs: 500,
      }).then(
        () => undefined,
        (err: unknown) => err,
      );
      await killed;
      expect(failure).toBeInstanceOf(PublishError);
      const r = (failure as PublishError).result;
      expect(r.undelivered).toBeGreaterThan(0);
      expect(r.published + r.duplicates + r.undelivered).toBe(taken);
    } finally {
      await nc.close();
      await server.dispose();
    }
  });
});

describe("resin simulate --nats with token authentication", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startNats({ token: "s3cret" });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it("publishes with the right token (flag or env) and exits 1 with a wrong one", async () => {
    const base = ["simulate", "--hosts", "2", "--days", "0.05", "--nats", server.url, "--no-summary"];
    const ok = await resin([...base, "--nats-token", "s3cret"]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    const fromEnv = await resin(base, { RESIN_NATS_TOKEN: "s3cret" });
    expect(fromEnv.code).toBe(0);
    const wrong = await resin([...base, "--nats-token", "wrong", "--connect-timeout", "5s"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/cannot connect to NATS .*authorization/i);
    expect(wrong.stderr).not.toContain("wrong");
  });
});
