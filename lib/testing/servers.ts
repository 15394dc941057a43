/**
 * Real servers for integration tests (`*.int.test.ts`): started from their Debian packages on a
 * free loopback port with a store directory of their own, stopped (or killed) by the test.
 * A missing binary is an error naming the package and the script that installs it.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A free TCP port on 127.0.0.1 (bound and released; good enough for tests). */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Path of an executable, or a clear error saying which Debian package provides it. */
export function requireBinary(name: string, debianPackage: string): string {
  for (const dir of ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"]) {
    try {
      execFileSync("test", ["-x", join(dir, name)]);
      return join(dir, name);
    } catch {
      // not in this directory
    }
  }
  throw new Error(
    `${name} not found: install the Debian package ${debianPackage} (as root: bash scripts/install-servers.sh ${debianPackage})`,
  );
}

export async function waitFor(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  child?: ChildProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child?.exitCode !== null && child?.exitCode !== undefined)
      throw new Error(`${what} exited with code ${child.exitCode} before it was ready`);
    let timer: NodeJS.Timeout | undefined;
    // A probe that hangs (a request to a server that went away) must not hang the wait.
    const expired = new Promise<"expired">((r) => {
      timer = setTimeout(() => r("expired"), Math.max(0, deadline - Date.now()) + 100);
    });
    const answer = await Promise.race([
      (async () => await probe())().catch(() => false), // not up yet
      expired,
    ]);
    clearTimeout(timer);
    if (answer === true) return;
    if (answer === "expired") throw new Error(`${what}: a probe did not answer within ${timeoutMs} ms`);
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function portOpen(port: number): Promise<boolean> {
  const { connect } = await import("node:net");
  return await new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url);
  await res.arrayBuffer();
  return res.ok;
}

/** A server process the test controls: stop politely, kill hard, start again on the same port and data. */
export interface TestServer {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Starts the process (again), keeping port and data; resolves when it answers. */
  start(): Promise<void>;
  /** SIGTERM, then waits for exit. */
  stop(): Promise<void>;
  /** SIGKILL, then waits for exit. */
  kill(): Promise<void>;
  /** Stops and removes the data directory. */
  dispose(): Promise<void>;
  /** Everything the process wrote to stdout/stderr (for failure messages). */
  log(): string;
}

function managed(
  name: string,
  port: number,
  url: string,
  dir: string,
  command: string,
  args: string[],
  ready: () => Promise<boolean>,
): TestServer {
  let child: ChildProcess | undefined;
  let output = "";
  const waitExit = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    c.kill(signal);
    await exited;
    child = undefined;
  };
  return {
    port,
    url,
    dir,
    async start() {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) return;
      const c = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], cwd: dir });
      child = c;
      c.stdout?.on("data", (d: Buffer) => {
        output += d.toString();
      });
      c.stderr?.on("data", (d: Buffer) => {
        output += d.toString();
      });
      await waitFor(name, ready, 30_000, c);
    },
    stop: () => waitExit("SIGTERM"),
    kill: () => waitExit("SIGKILL"),
    async dispose() {
      await waitExit("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => output,
  };
}

export interface NatsServerOptions {
  /**
   * Partition telemetry subjects into this many partitions with a server-side subject mapping:
   * `resin.telemetry.<component>.<host>` becomes `resin.telemetry.<component>.<host>.<p>`.
   */
  partitions?: number;
  /** Require this token from clients. */
  token?: string;
}

/** nats-server with JetStream (file store in its own directory) on a free loopback port. */
export async function startNats(options: NatsServerOptions = {}): Promise<TestServer> {
  const bin = requireBinary("nats-server", "nats-server");
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "resin-nats-"));
  const lines = [
    `listen: "127.0.0.1:${port}"`,
    // The streams reserve their byte limits (10 GiB each) against the store; without a stated
    // limit nats-server takes a share of the free disk, and a full /tmp fails every test.
    `jetstream { store_dir: "${join(dir, "store")}", max_file_store: 1TB }`,
    "max_payload: 1048576",
  ];
  if (options.token !== undefined) lines.push(`authorization { token: "${options.token}" }`);
  if (options.partitions !== undefined && options.partitions > 1)
    lines.push(
      `mappings = { "resin.telemetry.*.*": "resin.telemetry.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(${options.partitions},1)}}" }`,
    );
  const conf = join(dir, "nats.conf");
  writeFileSync(conf, `${lines.join("\n")}\n`);
  const server = managed("nats-server", port, `nats://127.0.0.1:${port}`, dir, bin, ["-c", conf], () =>
    portOpen(port),
  );
  await server.start();
  return server;
}

/** VictoriaMetrics (accepts InfluxDB's /api/v2/write; read back through /api/v1/export). */
export async function startVictoriaMetrics(): Promise<TestServer> {
  const bin = requireBinary("victoria-metrics", "victoria-metrics");
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "resin-vm-"));
  const url = `http://127.0.0.1:${port}`;
  const server = managed(
    "victoria-metrics",
    port,
    url,
    dir,
    bin,
    [
      `-httpListenAddr=127.0.0.1:${port}`,
      `-storageDataPath=${join(dir, "data")}`,
      "-retentionPeriod=100y",
      "-search.disableCache",
      "-search.latencyOffset=0s",
      "-loggerLevel=ERROR",
    ],
    () => httpOk(`${url}/health`),
  );
  await server.start();
  return server;
}

/** InfluxDB 1.x (v1 /write and InfluxQL /query), every port on loopback, data in its own directory. */
export async function startInfluxDb1(): Promise<TestServer> {
  const bin = requireBinary("influxd", "influxdb");
  const port = await freePort();
  const bindPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "resin-influx1-"));
  const conf = join(dir, "influxdb.conf");
  writeFileSync(
    conf,
    [
      "reporting-disabled = true",
      `bind-address = "127.0.0.1:${bindPort}"`,
      "[meta]",
      `  dir = "${join(dir, "meta")}"`,
      "[data]",
      `  dir = "${join(dir, "data")}"`,
      `  wal-dir = "${join(dir, "wal")}"`,
      "  query-log-enabled = false",
      "[http]",
      `  bind-address = "127.0.0.1:${port}"`,
      "  log-enabled = false",
      "[monitor]",
      "  store-enabled = false",
      "[continuous_queries]",
      "  enabled = false",
      "",
    ].join("\n"),
  );
  const url = `http://127.0.0.1:${port}`;
  const server = managed("influxd", port, url, dir, bin, ["-config", conf], async () => {
    const res = await fetch(`${url}/ping`);
    await res.arrayBuffer();
    return res.status === 204;
  });
  await server.start();
  return server;
}
