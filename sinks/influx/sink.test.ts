/**
 * The sink's accounting on answers real servers rarely give on demand (429, 5xx, partial
 * writes): a scripted HTTP server on loopback answers each write request in turn.
 */
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { HttpError } from "@influxdata/influxdb-client";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { InfluxSinkConfigInput } from "./config.ts";
import {
  InfluxHealthcheckError,
  InfluxSink,
  partialWriteDropped,
  retryAfterInMs,
  v1WritePath,
} from "./sink.ts";

interface Answer {
  status: number;
  body?: string;
  headers?: Record<string, string>;
  /** Answer only once this resolves (a slow or hung server). */
  after?: Promise<void>;
}

let server: Server;
let url: string;
let script: Answer[] = [];
let requests: { path: string; lines: string[] }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => {
      body += d;
    });
    req.on("end", () => {
      requests.push({ path: req.url ?? "", lines: body === "" ? [] : body.split("\n") });
      const a = script.shift() ?? { status: 204 };
      void (a.after ?? Promise.resolve()).then(() => {
        res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
        res.end(a.body ?? "");
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

beforeEach(() => {
  script = [];
  requests = [];
});

function sink(over: Partial<InfluxSinkConfigInput> = {}): InfluxSink {
  return new InfluxSink({
    url,
    org: "o",
    bucket: "b",
    flushIntervalMs: 0,
    minRetryDelayMs: 5,
    maxRetryDelayMs: 10,
    ...over,
  });
}

const lines = (n: number, tag = "a") => Array.from({ length: n }, (_, i) => `m,t=${tag} v=${i}i ${1000 + i}`);

async function settled(s: InfluxSink, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (s.stats.pending > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

async function until(what: string, done: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = () => {};
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { opened, open };
}

/**
 * A process of its own (no test runner's timers in it): a sink with three batches in its
 * retries, closed when stdin says so; it reports what close() returned and the timers still
 * keeping it alive once its sockets are gone (unref'd ones are not listed), then should exit.
 */
const CLOSE_IN_A_CHILD = `
const { InfluxSink } = await import(process.env.SINK_MODULE);
const sink = new InfluxSink({
  url: process.env.INFLUX_URL, org: "o", bucket: "b", flushIntervalMs: 0, batchSize: 1, flushTimeoutMs: 50,
});
for (const tag of ["a", "b", "c"]) sink.write(["m,t=" + tag + " v=1i 1000"]);
process.stdin.once("data", async () => {
  process.stdin.destroy();
  const { undelivered } = await sink.close();
  // Once the sockets close() destroyed are gone, whatever their requests' failure set off has run.
  while (process.getActiveResourcesInfo().includes("TCPSocketWrap")) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  const timers = process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
  process.stdout.write(JSON.stringify({ undelivered, timers }) + "\\n");
});
`;

function balanced(s: InfluxSink): void {
  const { accepted, written, dropped, pending } = s.stats;
  expect(written + dropped + pending).toBe(accepted);
}

describe("InfluxSink accounting", () => {
  it("retries 5xx and 429 until written, counting each retried attempt", async () => {
    script = [{ status: 503 }, { status: 429, headers: { "retry-after": "0" } }];
    const s = sink({ batchSize: 3 });
    s.write(lines(3));
    balanced(s);
    expect(s.pendingLines()).toHaveLength(3);
    await settled(s);
    expect(s.stats).toMatchObject({ accepted: 3, written: 3, dropped: 0, retried: 6, pending: 0 });
    expect(requests).toHaveLength(3);
    expect(await s.close()).toEqual({ undelivered: 0 });
  });

  it("drops a batch the server rejects (4xx), without retrying", async () => {
    script = [{ status: 400, body: '{"code":"invalid","message":"unable to parse"}' }];
    const s = sink({ batchSize: 2 });
    s.write(lines(2));
    await settled(s);
    expect(s.stats).toMatchObject({ written: 0, dropped: 2, retried: 0, pending: 0 });
    expect(requests).toHaveLength(1);
    await s.close();
  });

  it("counts the points an InfluxDB 1.x partial write kept as written", async () => {
    script = [{ status: 400, body: '{"error":"partial write: field type conflict: … dropped=1"}' }];
    const s = sink({ batchSize: 4 });
    s.write(lines(4));
    await settled(s);
    expect(s.stats).toMatchObject({ written: 3, dropped: 1, pending: 0 });
    await s.close();
  });

  it("counts an InfluxDB 2 partial write (422) by the points it says it dropped", async () => {
    const conflict =
      "failure writing points to database: partial write: field type conflict: " +
      'input field \\"v\\" on measurement \\"m\\" is type float, already exists as type integer dropped=1';
    script = [{ status: 422, body: `{"code":"unprocessable entity","message":"${conflict}"}` }];
    const s = sink({ batchSize: 4 });
    s.write(lines(4));
    await settled(s);
    expect(s.stats).toMatchObject({ accepted: 4, written: 3, dropped: 1, retried: 0, pending: 0 });
    balanced(s);
    expect(requests).toHaveLength(1);
    await s.close();
  });

  it("drops the whole batch on a 422 that does not say how many points were dropped", async () => {
    script = [{ status: 422, body: '{"code":"unprocessable entity","message":"schema violation"}' }];
    const s = sink({ batchSize: 3 });
    s.write(lines(3));
    await settled(s);
    expect(s.stats).toMatchObject({ accepted: 3, written: 0, dropped: 3, pending: 0 });
    await s.close();
  });

  it("drops a batch whose retries are exhausted", async () => {
    script = [{ status: 500 }, { status: 500 }, { status: 500 }];
    const s = sink({ batchSize: 2, maxRetries: 2 });
    s.write(lines(2));
    await settled(s);
    expect(s.stats).toMatchObject({ written: 0, dropped: 2, retried: 4, pending: 0 });
    expect(requests).toHaveLength(3);
    await s.close();
  });

  it("drops a batch still failing when its retry time is over", async () => {
    script = Array.from({ length: 1000 }, () => ({ status: 503 }));
    const s = sink({ batchSize: 2, maxRetries: 1000, maxRetryTimeMs: 100 });
    s.write(lines(2));
    await settled(s);
    expect(s.stats).toMatchObject({ written: 0, dropped: 2, pending: 0 });
    expect(s.stats.retried).toBeGreaterThan(0);
    await s.close();
  });

  it("drops the oldest batches when the retry buffer is full", async () => {
    script = Array.from({ length: 3 }, () => ({ status: 503 }));
    const s = sink({ batchSize: 2, maxBufferLines: 3, minRetryDelayMs: 200, maxRetryDelayMs: 400 });
    s.write(lines(2, "a"));
    s.write(lines(2, "b"));
    s.write(lines(2, "c"));
    // all three batches fail once; only one batch of two fits in a buffer of three lines
    const deadline = Date.now() + 5000;
    while (s.stats.dropped < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    balanced(s);
    await settled(s);
    expect(s.stats).toMatchObject({ accepted: 6, written: 2, dropped: 4, pending: 0 });
    await s.close();
  });

  it("keeps identical lines apart in pendingLines and settles each", async () => {
    const s = sink({ batchSize: 100 });
    s.write(["m v=1i 1", "m v=1i 1"]);
    s.requeue(["m v=1i 1"]);
    expect(s.stats.pending).toBe(3);
    expect(s.pendingLines()).toEqual(["m v=1i 1"]);
    await s.flush();
    expect(s.stats).toMatchObject({ accepted: 3, written: 3, pending: 0 });
    expect(s.pendingLines()).toEqual([]);
    await s.close();
  });

  it("flush sends the write buffer at once, not after the requests in flight", async () => {
    const slow = gate();
    script = [{ status: 204, after: slow.opened }];
    const s = sink({ batchSize: 2, flushTimeoutMs: 1000 });
    s.write(lines(2, "a")); // a full batch: sent now, and the server sits on it
    await until("the first request", () => requests.length === 1);
    s.write(lines(1, "b")); // waits in the write buffer
    await s.flush(); // gives up on the first request after flushTimeoutMs
    expect(requests.map((r) => r.lines)).toEqual([lines(2, "a"), lines(1, "b")]);
    expect(s.stats).toMatchObject({ accepted: 3, written: 1, pending: 2 });
    slow.open();
    await settled(s);
    expect(await s.close()).toEqual({ undelivered: 0 });
    expect(s.stats).toMatchObject({ written: 3, dropped: 0 });
  });

  it("close leaves no timer behind, so the process exits, with a retry in flight and others scheduled", async () => {
    const hung = gate();
    const soon = { status: 429, headers: { "retry-after": "0" } };
    const inAnHour = { status: 429, headers: { "retry-after": "3600" } };
    // The first batch to arrive is retried at once, and that retry hangs; the other two wait.
    script = [soon, inAnHour, inAnHour, { status: 204, after: hung.opened }];
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", CLOSE_IN_A_CHILD],
      {
        env: { ...process.env, SINK_MODULE: join(import.meta.dirname, "sink.ts"), INFLUX_URL: url },
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    try {
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
      let out = "";
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (d: string) => {
        out += d;
      });
      await until("the retry to reach the server", () => requests.length === 4, 30_000);
      child.stdin.end("close\n");
      await until("the child's report", () => out.endsWith("\n"), 30_000);
      expect(JSON.parse(out)).toEqual({ undelivered: 3, timers: 0 });
      expect(await exited).toBe(0);
    } finally {
      child.kill("SIGKILL");
      hung.open();
    }
  });

  it("after close, write neither throws nor sends: the lines are dropped", async () => {
    const s = sink();
    expect(await s.close()).toEqual({ undelivered: 0 });
    s.write(lines(2));
    expect(s.stats).toMatchObject({ accepted: 2, dropped: 2, pending: 0 });
    expect(await s.close()).toEqual({ undelivered: 0 });
    expect(requests).toHaveLength(0);
  });
});

describe("InfluxSink healthcheck", () => {
  it("passes on a healthy v2 server and names the failure otherwise", async () => {
    const s = sink();
    await expect(s.healthcheck()).resolves.toBeUndefined();
    script = [{ status: 503, body: '{"status":"fail","message":"not ready"}' }];
    await expect(s.healthcheck()).rejects.toThrow(/GET \/health failed: not ready/);
    expect(requests.map((r) => r.path)).toEqual(["/health", "/health"]);
    await s.close();
  });

  it("v1: pings, then creates the database with the credentials, and reports an InfluxQL error", async () => {
    const s = sink({ api: "v1", database: 'my "db"', username: "me", password: "secret" });
    script = [{ status: 204 }, { status: 200, body: '{"results":[{"statement_id":0,"error":"not admin"}]}' }];
    await expect(s.healthcheck()).rejects.toThrow(InfluxHealthcheckError);
    expect(requests.map((r) => r.path)).toEqual(["/ping", "/query?u=me&p=secret"]);
    expect(decodeURIComponent(requests[1]!.lines.join("\n").replace(/\+/g, " "))).toBe(
      'q=CREATE DATABASE "my \\"db\\""',
    );
    await s.close();
  });

  it("rejects with InfluxHealthcheckError when nothing listens", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const s = new InfluxSink({ url: `http://127.0.0.1:${port}`, org: "o", bucket: "b" });
    await expect(s.healthcheck()).rejects.toThrow(/ECONNREFUSED/);
    await s.close();
  });
});

describe("helpers", () => {
  it("v1WritePath rewrites the v2 write path and only it", () => {
    const v2 = "/api/v2/write?org=o&bucket=b&precision=ms";
    expect(v1WritePath(v2, { database: "resin" })).toBe("/write?db=resin&precision=ms");
    expect(
      v1WritePath(v2, { database: "my db", retentionPolicy: "autogen", username: "u", password: "p&q" }),
    ).toBe("/write?db=my+db&rp=autogen&precision=ms&u=u&p=p%26q");
    expect(v1WritePath("/ping", { database: "resin" })).toBe("/ping");
  });

  it("retryAfterInMs reads Retry-After as seconds", () => {
    const e = new HttpError(429, "Too Many Requests", "", "3", "text/plain", undefined, {
      "retry-after": "3",
    });
    expect(e.retryAfter()).toBe(3); // the library's reading
    expect((retryAfterInMs(e) as HttpError).retryAfter()).toBe(3000);
    const plain = new Error("ECONNREFUSED");
    expect(retryAfterInMs(plain)).toBe(plain);
  });

  it("partialWriteDropped", () => {
    const body = '{"error":"partial write: points beyond retention policy dropped=2"}';
    expect(partialWriteDropped(new HttpError(400, "Bad Request", body))).toBe(2);
    expect(partialWriteDropped(new HttpError(400, "Bad Request", "unable to parse"))).toBeUndefined();
    const v2 =
      '{"code":"unprocessable entity","message":"failure writing points to database: partial write: ' +
      "dropped 3 points outside retention policy of duration 24h0m0s - oldest point m at 1970-01-01T00:00:01Z " +
      'dropped because it violates a Retention Policy Lower Bound at 2026-01-01T00:00:00Z dropped=3 for database: x"}';
    expect(partialWriteDropped(new HttpError(422, "Unprocessable Entity", v2))).toBe(3);
    expect(
      partialWriteDropped(new HttpError(422, "Unprocessable Entity", '{"code":"invalid"}')),
    ).toBeUndefined();
    expect(partialWriteDropped(new Error("partial write dropped=2"))).toBeUndefined();
  });
});
