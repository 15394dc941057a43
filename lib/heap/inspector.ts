/**
 * Heap profiles of another running Node.js process, taken through its inspector (the Chrome
 * DevTools protocol over WebSocket): how resin profiles a suspect Node service without a
 * restart or an agent inside it. V8's sampling heap profiler is cheap enough for production
 * (one sample per ~32 KiB allocated by default) and only reports sampled objects that are
 * still alive, i.e. in-use memory allocated since `start()`.
 *
 *   const tracer = await InspectorHeapTracer.connect("127.0.0.1:9229");
 *   await tracer.start();
 *   const profile = await tracer.snapshot(); // as many as wanted, minutes apart
 *   await tracer.stop();
 *   await tracer.close();
 */
import { readFileSync, readlinkSync } from "node:fs";
import { basename } from "node:path";
import WebSocket from "ws";
import type { HeapProfile } from "./profile.ts";
import { V8SamplingHeapProfileSchema, v8ToHeapProfile } from "./v8.ts";

export interface InspectorHeapTracerOptions {
  /** Average bytes allocated between two samples (V8's default: 32768). Smaller is finer and costlier. */
  samplingIntervalBytes: number;
  /** Longest wait for connecting and for each protocol call, ms. A profile of a big heap takes seconds. */
  timeoutMs: number;
  /**
   * Force a full GC in the target before each snapshot, so that garbage not yet collected does not
   * look in use. Costs one major GC pause per snapshot, which at one snapshot per 30 min is cheap
   * next to a wrong diagnosis.
   */
  collectGarbageFirst: boolean;
  /** Clock for `takenAt`, epoch ms. */
  now: () => number;
}

export const DEFAULT_INSPECTOR_HEAP_TRACER_OPTIONS: InspectorHeapTracerOptions = {
  samplingIntervalBytes: 32 * 1024,
  timeoutMs: 30_000,
  collectGarbageFirst: true,
  now: Date.now,
};

/** Anything that went wrong talking to an inspector; the subclasses say what. */
export class InspectorError extends Error {
  override name = "InspectorError";
}
/** No inspector answers at the address, or it lists no target. */
export class InspectorUnreachableError extends InspectorError {
  override name = "InspectorUnreachableError";
}
/** The inspector answered a call with an error. */
export class InspectorProtocolError extends InspectorError {
  override name = "InspectorProtocolError";
  constructor(
    readonly method: string,
    readonly code: number,
    readonly protocolMessage: string,
    url: string,
  ) {
    super(`${method} failed at ${url}: ${protocolMessage} (code ${code})`);
  }
}
/** No answer within `timeoutMs`. */
export class InspectorTimeoutError extends InspectorError {
  override name = "InspectorTimeoutError";
}
/** The connection closed (the process exited, or another client took over) before an answer. */
export class InspectorClosedError extends InspectorError {
  override name = "InspectorClosedError";
}

interface Pending {
  method: string;
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** A heap-profiling session with one Node.js process. Not reusable after `close()`. */
export class InspectorHeapTracer {
  readonly #ws: WebSocket;
  readonly #options: InspectorHeapTracerOptions;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed: string | undefined;

  private constructor(
    ws: WebSocket,
    readonly url: string,
    options: InspectorHeapTracerOptions,
  ) {
    this.#ws = ws;
    this.#options = options;
    ws.on("message", (data) => this.#onMessage(data.toString()));
    ws.on("close", (code, reason) => {
      const why = code === 1006 ? ", abnormally: did the process exit?" : reason.length ? `, ${reason}` : "";
      this.#fail(`connection to ${url} closed (code ${code}${why})`);
    });
    ws.on("error", (err) => this.#fail(`connection to ${url} failed: ${err.message}`));
  }

  /**
   * Connect to a Node.js inspector. `target` is the WebSocket URL the target prints
   * ("Debugger listening on ws://…"), or the inspector's `host:port` / `http://host:port`, in
   * which case the WebSocket URL is read from its /json/list.
   */
  static async connect(
    target: string,
    options: Partial<InspectorHeapTracerOptions> = {},
  ): Promise<InspectorHeapTracer> {
    const opts = { ...DEFAULT_INSPECTOR_HEAP_TRACER_OPTIONS, ...options };
    if (!(opts.samplingIntervalBytes > 0)) {
      throw new RangeError(`samplingIntervalBytes must be positive, got ${opts.samplingIntervalBytes}`);
    }
    const url = await resolveInspectorUrl(target, opts.timeoutMs);
    const ws = await new Promise<WebSocket>((resolve, reject) => {
      const socket = new WebSocket(url, { handshakeTimeout: opts.timeoutMs, perMessageDeflate: false });
      socket.once("open", () => {
        socket.removeAllListeners("error");
        resolve(socket);
      });
      socket.once("error", (err) => {
        socket.terminate();
        reject(
          new InspectorUnreachableError(`cannot connect to inspector at ${url}: ${err.message}`, {
            cause: err,
          }),
        );
      });
    });
    return new InspectorHeapTracer(ws, url, opts);
  }

  /** Start sampling; only allocations from now on are seen. */
  async start(): Promise<void> {
    await this.#call("HeapProfiler.enable");
    await this.#call("HeapProfiler.startSampling", { samplingInterval: this.#options.samplingIntervalBytes });
  }

  /** The live sampled memory per allocation stack, now. Sampling goes on. */
  async snapshot(): Promise<HeapProfile> {
    if (this.#options.collectGarbageFirst) await this.#call("HeapProfiler.collectGarbage");
    return this.#profileFrom(await this.#call("HeapProfiler.getSamplingProfile"), "getSamplingProfile");
  }

  /** Stop sampling (the target drops its samples) and return the last profile. */
  async stop(): Promise<HeapProfile> {
    if (this.#options.collectGarbageFirst) await this.#call("HeapProfiler.collectGarbage");
    const profile = this.#profileFrom(await this.#call("HeapProfiler.stopSampling"), "stopSampling");
    await this.#call("HeapProfiler.disable");
    return profile;
  }

  /** The target's `process.pid`, as it says itself. */
  async pid(): Promise<number> {
    const result = await this.#call("Runtime.evaluate", { expression: "process.pid", returnByValue: true });
    const value = (result as { result?: { value?: unknown } } | undefined)?.result?.value;
    if (typeof value !== "number") {
      throw new InspectorError(`Runtime.evaluate(process.pid) at ${this.url} returned no number`);
    }
    return value;
  }

  /** Disconnect. Sampling the tracer started ends with the session, so the target pays nothing after. */
  async close(): Promise<void> {
    this.#fail(`tracer for ${this.url} was closed`);
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#ws.terminate();
        resolve();
      }, this.#options.timeoutMs);
      this.#ws.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      this.#ws.close();
    });
  }

  #profileFrom(result: unknown, method: string): HeapProfile {
    const takenAt = this.#options.now();
    const parsed = V8SamplingHeapProfileSchema.safeParse(
      (result as { profile?: unknown } | undefined)?.profile,
    );
    if (!parsed.success) {
      throw new InspectorError(
        `HeapProfiler.${method} at ${this.url} returned no sampling heap profile: ${parsed.error.message}`,
      );
    }
    return v8ToHeapProfile(parsed.data, takenAt);
  }

  #call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    if (this.#closed !== undefined) {
      return Promise.reject(new InspectorClosedError(`cannot call ${method}: ${this.#closed}`));
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new InspectorTimeoutError(`${method} at ${this.url}: no answer in ${this.#options.timeoutMs} ms`),
        );
      }, this.#options.timeoutMs);
      this.#pending.set(id, { method, resolve, reject, timer });
      this.#ws.send(JSON.stringify({ id, method, params }), (err) => {
        if (err)
          this.#settle(id, new InspectorClosedError(`cannot send ${method} to ${this.url}: ${err.message}`));
      });
    });
  }

  #onMessage(text: string): void {
    let msg: { id?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } };
    try {
      msg = JSON.parse(text);
    } catch {
      return; // not ours to answer; the inspector only sends JSON
    }
    if (typeof msg.id !== "number") return; // an event, e.g. HeapProfiler.lastSeenObjectId
    const pending = this.#pending.get(msg.id);
    if (!pending) return; // answered after its timeout
    if (msg.error) {
      const code = typeof msg.error.code === "number" ? msg.error.code : 0;
      const message = typeof msg.error.message === "string" ? msg.error.message : JSON.stringify(msg.error);
      this.#settle(msg.id, new InspectorProtocolError(pending.method, code, message, this.url));
    } else {
      this.#settle(msg.id, undefined, msg.result);
    }
  }

  #settle(id: number, err: Error | undefined, result?: unknown): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if (err) pending.reject(err);
    else pending.resolve(result);
  }

  /** Fail every call waiting for an answer, and every later one, with `reason`. */
  #fail(reason: string): void {
    this.#closed ??= reason;
    for (const [id, p] of this.#pending) {
      this.#settle(id, new InspectorClosedError(`${p.method} got no answer: ${reason}`));
    }
  }
}

/**
 * The WebSocket URL of a Node.js inspector: `target` itself when it is a ws:// URL, else the
 * first target listed at http://`target`/json/list (a Node process has exactly one).
 */
export async function resolveInspectorUrl(target: string, timeoutMs: number): Promise<string> {
  if (/^wss?:\/\//.test(target)) return target;
  const base = /^https?:\/\//.test(target) ? target.replace(/\/+$/, "") : `http://${target}`;
  let targets: unknown;
  try {
    const res = await fetch(`${base}/json/list`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    targets = await res.json();
  } catch (err) {
    const why = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
    throw new InspectorUnreachableError(`no inspector answers at ${base}/json/list: ${why}`, { cause: err });
  }
  const url = Array.isArray(targets)
    ? targets
        .map((t) => (t as { webSocketDebuggerUrl?: unknown }).webSocketDebuggerUrl)
        .find((u): u is string => typeof u === "string")
    : undefined;
  if (url === undefined) {
    throw new InspectorUnreachableError(
      `inspector at ${base} lists no debuggable target (is a client attached?)`,
    );
  }
  return url;
}

/**
 * What process `pid` runs, from /proc (Linux): its executable and command line, when readable.
 * Throws InspectorUnreachableError when there is no such process; undefined without /proc.
 */
function processRuns(pid: number): { exe?: string; argv: string[] } | undefined {
  let exe: string | undefined;
  let argv: string[] = [];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    try {
      readlinkSync("/proc/self/exe");
    } catch {
      return undefined; // no /proc here
    }
    throw new InspectorUnreachableError(`cannot send SIGUSR1 to process ${pid}: no such process`, {
      cause: err,
    });
  }
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    // another user's process: its command line still says what it runs
  }
  return exe === undefined ? { argv } : { exe, argv };
}

const NODE_BINARY = /^(node|nodejs)[\d.-]*$/;

/**
 * Open the inspector of a running Node.js process that was started without `--inspect`: send it
 * SIGUSR1 (what `node --inspect` does on demand) and wait until it listens. It listens on
 * `--inspect-port` if the process was started with one, else 127.0.0.1:9229, so `port` must
 * match. Returns the WebSocket URL.
 *
 * Refuses a process that /proc does not show running node (SIGUSR1 kills most other programs),
 * and an inspector on `host:port` that belongs to another process (one already held the port).
 */
export async function activateInspector(
  pid: number,
  { host = "127.0.0.1", port = 9229, timeoutMs = 10_000 } = {},
): Promise<string> {
  const runs = processRuns(pid);
  if (runs === undefined) {
    throw new InspectorUnreachableError(
      `refusing to send SIGUSR1 to process ${pid}: cannot tell whether it runs node (no /proc)`,
    );
  }
  const isNode =
    (runs.exe !== undefined && NODE_BINARY.test(basename(runs.exe.replace(/ \(deleted\)$/, "")))) ||
    (runs.argv[0] !== undefined && NODE_BINARY.test(basename(runs.argv[0])));
  if (!isNode) {
    const what = runs.exe ?? runs.argv.join(" ");
    throw new InspectorUnreachableError(
      `refusing to send SIGUSR1 to process ${pid}: it runs ${what || "an unknown program"}, not node ` +
        "(SIGUSR1 would kill it)",
    );
  }
  try {
    process.kill(pid, "SIGUSR1");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "ESRCH"
        ? "no such process"
        : code === "EPERM"
          ? "not permitted (signal it as its user or as root)"
          : (err as Error).message;
    throw new InspectorUnreachableError(`cannot send SIGUSR1 to process ${pid}: ${why}`, { cause: err });
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let url: string;
    try {
      url = await resolveInspectorUrl(`${host}:${port}`, Math.max(100, deadline - Date.now()));
    } catch (err) {
      if (Date.now() >= deadline) {
        throw new InspectorUnreachableError(
          `process ${pid} did not open its inspector on ${host}:${port} within ${timeoutMs} ms: ${(err as Error).message}`,
          { cause: err },
        );
      }
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    // Another process may have held the port already: ask the inspector whose it is.
    const tracer = await InspectorHeapTracer.connect(url, {
      timeoutMs: Math.max(1000, deadline - Date.now()),
    });
    let answered: number;
    try {
      answered = await tracer.pid();
    } finally {
      await tracer.close();
    }
    if (answered !== pid) {
      throw new InspectorUnreachableError(
        `the inspector on ${host}:${port} belongs to process ${answered}, not ${pid} ` +
          `(the port was taken; start ${pid} with another --inspect-port and pass it)`,
      );
    }
    return url;
  }
}
