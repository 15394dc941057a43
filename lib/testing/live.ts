/**
 * Helpers for end-to-end tests of `resin run`: the real CLI in a child process against real
 * servers, what it logged, and the outputs it left in JetStream and the time-series store.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { from, lastValueFrom } from "rxjs";
import { detectGraph } from "../../pipelines/detect.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import { suspectLine, windowLines } from "../../sinks/influx/points.ts";
import { DEADLETTER_STREAM, SUSPECT_STREAM, TELEMETRY_STREAM } from "../jetstream.ts";
import { waitFor } from "./servers.ts";

const ROOT = resolve(import.meta.dirname, "../..");

/** A `resin run` child process and the JSON log lines it wrote. */
export class ResinProcess {
  readonly logs: Record<string, unknown>[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [resolve(ROOT, "bin/resin.js"), "run", ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let rest = "";
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const p of parts) if (p.trim() !== "") this.logs.push(JSON.parse(p) as Record<string, unknown>);
    });
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => this.stderr.push(chunk));
    this.exited = new Promise((res) => this.child.once("exit", (code, signal) => res({ code, signal })));
  }

  /** The first log line with this message, once it is there. */
  async logged(msg: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await waitFor(
      `resin to log "${msg}"`,
      async () => {
        found = this.logs.find((l) => l.msg === msg);
        return found !== undefined;
      },
      timeoutMs,
    );
    return found!;
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** SIGTERM, then the exit code and the final log line's counters. */
  async stop(): Promise<{ code: number | null; stopped: Record<string, unknown> }> {
    this.kill("SIGTERM");
    const { code } = await this.exited;
    const stopped = this.logs.find((l) => l.msg === "resin run stopped");
    if (stopped === undefined)
      throw new Error(`resin exited (${code}) without its final log line:\n${this.stderr.join("")}`);
    return { code, stopped };
  }
}

/** A child `node` process (run from the repository root) with what it printed kept. */
export interface CapturedProcess {
  child: ChildProcess;
  /** Its stdout so far. */
  stdout: () => string;
  /** Its stdout and stderr so far, as they came. */
  output: () => string;
  exited: Promise<void>;
}

/** Starts `node args...` from the repository root, keeping its output for the test's assertions and failures. */
export function spawnNode(args: string[]): CapturedProcess {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let all = "";
  child.stdout!.on("data", (d) => {
    out += d;
    all += d;
  });
  child.stderr!.on("data", (d) => {
    all += d;
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return { child, stdout: () => out, output: () => all, exited };
}

/** Waits until the partition's consumer has delivered everything and the last delivery is acknowledged (checkpointed). */
export async function drained(nc: NatsConnection, durable: string, timeoutMs = 60_000): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await waitFor(
    `consumer ${durable} to drain`,
    async () => {
      try {
        const ci = await jsm.consumers.info(TELEMETRY_STREAM, durable);
        return ci.num_pending === 0 && ci.num_ack_pending === 0 && ci.delivered.consumer_seq > 0;
      } catch {
        return false;
      }
    },
    timeoutMs,
  );
}

export interface StoredMessage {
  subject: string;
  msgId: string | undefined;
  payload: string;
}

/** Every message of a stream, in stream order (throws when the stream does not exist). */
export async function streamMessages(nc: NatsConnection, stream: string): Promise<StoredMessage[]> {
  const { messages } = (await (await jetstreamManager(nc)).streams.info(stream)).state;
  const out: StoredMessage[] = [];
  if (messages === 0) return out;
  const consumer = await jetstream(nc).consumers.get(stream);
  const batch = await consumer.fetch({ max_messages: messages, expires: 10_000 });
  for await (const m of batch) {
    out.push({ subject: m.subject, msgId: m.headers?.get("Nats-Msg-Id"), payload: m.string() });
    if (m.info.pending === 0) break;
  }
  return out;
}

/** The payloads of a stream, in order (empty when the stream does not exist). */
export async function streamContents(nc: NatsConnection, stream: string): Promise<string[]> {
  const stored = await streamMessages(nc, stream).catch(() => []);
  return stored.map((m) => m.payload);
}

export const suspectsOn = (nc: NatsConnection) => streamContents(nc, SUSPECT_STREAM);
export const deadLettersOn = (nc: NatsConnection) => streamContents(nc, DEADLETTER_STREAM);

/** What a run over `lines` must produce: suspect events (as published) and the series lines (without resin_pipeline). */
export async function expectedOutputs(
  lines: readonly string[],
): Promise<{ events: SuspectEvent[]; suspects: string[]; series: string[] }> {
  const graph = detectGraph(from([lines]), { flushAtEnd: false });
  const events: SuspectEvent[] = [];
  const series: string[] = [];
  graph.windows.subscribe((r) => {
    series.push(...windowLines(r, graph.seriesInfo));
    for (const e of r.events) {
      events.push(e);
      const l = suspectLine(e);
      if (l !== undefined) series.push(l);
    }
  });
  await lastValueFrom(graph.windows, { defaultValue: undefined });
  return { events, suspects: events.map((e) => JSON.stringify(e)), series };
}

/** One stored sample as VictoriaMetrics keeps a line protocol field: `name{labels} value @time`. */
export function samplesOfLines(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (const line of lines) {
    // measurement,tag=v,... field=v,... time   (no escaped separators in resin's tags but "\ ")
    const m = /^((?:[^ \\]|\\.)+) ((?:[^ \\"]|\\.|"[^"]*")+) (\d+)$/.exec(line);
    if (m === null) throw new Error(`unparsable line: ${line}`);
    const [measurement, ...tags] = splitUnescaped(m[1]!, ",");
    const labels = tags
      .map((t) => splitUnescaped(t, "=") as [string, string])
      .map(([k, v]) => `${k}=${unescapeTag(v)}`)
      .sort()
      .join(",");
    for (const f of splitUnescaped(m[2]!, ",")) {
      const [k, v] = splitUnescaped(f, "=") as [string, string];
      const value = Number(v.endsWith("i") ? v.slice(0, -1) : v);
      out.push(`${measurement}_${k}{${labels}} ${value} @${m[3]}`);
    }
  }
  return out;
}

function splitUnescaped(text: string, sep: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "\\" && i + 1 < text.length) {
      cur += c + text[i + 1];
      i++;
    } else if (c === sep) {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out;
}

const unescapeTag = (v: string) => v.replace(/\\(.)/g, "$1");

/** Every stored sample of metrics matching `selector` in VictoriaMetrics, in the form of `samplesOfLines`. */
export async function victoriaSamples(url: string, selector: string): Promise<string[]> {
  await (await fetch(`${url}/internal/force_flush`)).arrayBuffer();
  const res = await fetch(`${url}/api/v1/export?match[]=${encodeURIComponent(selector)}`);
  if (!res.ok) throw new Error(`export: HTTP ${res.status}: ${await res.text()}`);
  const out: string[] = [];
  for (const l of (await res.text()).split("\n")) {
    if (l.trim() === "") continue;
    const s = JSON.parse(l) as { metric: Record<string, string>; values: number[]; timestamps: number[] };
    const { __name__: name, ...rest } = s.metric;
    const labels = Object.entries(rest)
      .map(([k, v]) => `${k}=${v}`)
      .sort()
      .join(",");
    for (let i = 0; i < s.values.length; i++)
      out.push(`${name}{${labels}} ${s.values[i]} @${s.timestamps[i]}`);
  }
  return out;
}
