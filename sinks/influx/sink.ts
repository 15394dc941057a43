/**
 * The InfluxDB sink: line protocol handed to `@influxdata/influxdb-client`'s WriteApi, which
 * batches, retries with jittered exponential backoff and keeps a bounded retry buffer. This
 * file adds what the pipeline needs on top: a `write` that never blocks or throws, exact
 * accounting of every line (written, dropped, pending), the pending lines for checkpoints,
 * a bounded flush, and InfluxDB 1.x through a transport that rewrites the write path.
 *
 * When the library calls back (v1.35, WriteApiImpl/RetryBuffer), and what it means here:
 * - `writeSuccess(lines)`: the server answered 204/201; the lines are written.
 * - `writeFailed(error, lines, attempt, expires)`: after EVERY failed attempt, retried or not.
 *   The library then retries when it is not closed, `attempt <= maxRetries` and the error is
 *   not an HTTP status below 429; otherwise the lines are gone (dropped), but for a partial
 *   write, where the server wrote all but the points it counts (partialWriteDropped). It is
 *   also called, before any request, with "Max retry time exceeded." when a retry comes due
 *   after `expires`: always final. An Enterprise "hinted handoff queue not empty" error is
 *   turned into a success right after (writeSuccess follows).
 * - `writeRetrySkipped(entry)`: the retry buffer was over `maxBufferLines` and evicted this
 *   batch (the one closest to expiry): dropped.
 *
 * `dispose()` clears the RetryBuffer's timer, but a retry in flight then schedules the next one
 * when it settles, as long as batches wait in the buffer: `close()` takes them out.
 */
import http from "node:http";
import https from "node:https";
import {
  type CommunicationObserver,
  HttpError,
  InfluxDB,
  type ResponseStartedFn,
  type SendOptions,
  setLogger,
  type Transport,
  type WriteApi,
  type WriteOptions,
} from "@influxdata/influxdb-client";
import { type InfluxSinkConfig, type InfluxSinkConfigInput, parseInfluxSinkConfig } from "./config.ts";

/** Pino-compatible: only `warn(obj, msg)` is used, for retries, drops and undelivered lines. */
export interface InfluxSinkLog {
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface InfluxSinkOptions {
  log?: InfluxSinkLog;
}

/** Line counts since the sink was made: `written + dropped + pending === accepted` always. */
export interface InfluxSinkStats {
  /** Lines handed to `write`/`requeue`. */
  accepted: number;
  /** Confirmed by the server. */
  written: number;
  /**
   * Given up on: rejected (4xx; of a partial write, the points the server says it dropped),
   * retries exhausted or expired, evicted from the retry buffer, or undelivered at close.
   */
  dropped: number;
  /** Line attempts that failed and were scheduled for another (a line retried twice counts twice). */
  retried: number;
  /** Accepted and neither written nor dropped yet: buffered, in flight or waiting for a retry. */
  pending: number;
}

/** The server did not answer the healthcheck as expected (unreachable, auth, missing database). */
export class InfluxHealthcheckError extends Error {
  override name = "InfluxHealthcheckError";
}

const MAX_RETRY_TIME_EXCEEDED = "Max retry time exceeded.";
/** Retry and drop warnings: the first at once, then at most one per kind in this interval. */
const WARN_INTERVAL_MS = 10_000;

const silent = { error() {}, warn() {} };

function statusOf(error: Error): number | undefined {
  return error instanceof HttpError ? error.statusCode : undefined;
}

function isHintedHandoff(error: Error): boolean {
  const json = error instanceof HttpError ? (error.json as { error?: unknown } | undefined) : undefined;
  return typeof json?.error === "string" && json.error.includes("hinted handoff queue not empty");
}

/**
 * How many points of a batch the server rejected in a partial write, the rest being written, or
 * undefined for any other error. InfluxDB 1.x answers 400 `{"error":"partial write: … dropped=N"}`,
 * InfluxDB 2.x 422 `{"code":"unprocessable entity","message":"failure writing points to database:
 * partial write: … dropped=N"}` (field type conflicts, points outside the retention period).
 * When points fail in several shard groups (time ranges) of one batch, InfluxDB reports one
 * group's N: the true count can then be higher, but the server does not say it.
 *
 * A 422 without `dropped=N` is not read as a partial write: the whole batch counts as dropped,
 * although InfluxDB 2 may have written some of it, since neither which nor how many is known.
 */
export function partialWriteDropped(error: Error): number | undefined {
  if (!(error instanceof HttpError) || (error.statusCode !== 400 && error.statusCode !== 422))
    return undefined;
  const m = /partial write[\s\S]*dropped=(\d+)/.exec(error.body ?? error.message);
  return m === null ? undefined : Number(m[1]);
}

/**
 * The library reads a numeric Retry-After header as milliseconds (HttpError.setRetryAfter), but
 * HTTP and InfluxDB send seconds: the same error, with the delay in milliseconds.
 */
export function retryAfterInMs(error: Error): Error {
  if (!(error instanceof HttpError)) return error;
  const header = error.headers?.["retry-after"];
  const text = Array.isArray(header) ? header[0] : header;
  if (typeof text !== "string" || !/^[0-9]+$/.test(text)) return error;
  return new HttpError(
    error.statusCode,
    error.statusMessage,
    error.body,
    String(Number(text) * 1000),
    error.contentType,
    undefined,
    error.headers,
  );
}

export interface V1Target {
  database: string;
  retentionPolicy?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
}

/** Query string of InfluxDB 1.x credentials (`u`, `p`), empty without a user name. */
function credentials(target: V1Target): URLSearchParams {
  const q = new URLSearchParams();
  if (target.username !== undefined) {
    q.set("u", target.username);
    q.set("p", target.password ?? "");
  }
  return q;
}

/**
 * `/api/v2/write?org=…&bucket=…&precision=ms` → `/write?db=…&rp=…&precision=ms&u=…&p=…`
 * (InfluxDB 1.x); other paths are returned unchanged.
 */
export function v1WritePath(path: string, target: V1Target): string {
  const prefix = "/api/v2/write?";
  if (!path.startsWith(prefix)) return path;
  const v2 = new URLSearchParams(path.slice(prefix.length));
  const q = new URLSearchParams({ db: target.database });
  if (target.retentionPolicy !== undefined) q.set("rp", target.retentionPolicy);
  for (const key of ["precision", "consistency"]) {
    const v = v2.get(key);
    if (v !== null) q.set(key, v);
  }
  for (const [k, v] of credentials(target)) q.set(k, v);
  return `/write?${q}`;
}

/**
 * Wraps the library's node transport: keeps the requests in flight (so `flush` can wait for
 * them), rewrites paths (v1), and fixes the unit of Retry-After.
 */
class SinkTransport implements Transport {
  /** One promise per request in flight, resolved when it settles. */
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly base: Transport,
    private readonly rewrite: (path: string) => string,
  ) {}

  get chunkCombiner() {
    return this.base.chunkCombiner;
  }

  /**
   * Resolves when the requests in flight now have settled. Requests sent later are not waited
   * for: under steady load there may never be a moment with none in flight.
   */
  settled(): Promise<void> {
    return Promise.all(this.inflight).then(() => undefined);
  }

  send(
    path: string,
    body: string,
    options: SendOptions,
    callbacks?: Partial<CommunicationObserver<Uint8Array>>,
  ): void {
    let settleRequest = () => {};
    const request = new Promise<void>((resolve) => {
      settleRequest = resolve;
    });
    this.inflight.add(request);
    let done = false;
    const settle = (after: () => void) => {
      if (done) return;
      done = true;
      try {
        after();
      } finally {
        this.inflight.delete(request);
        settleRequest();
      }
    };
    const wrapped: Partial<CommunicationObserver<Uint8Array>> = {
      error: (e) => settle(() => callbacks?.error?.(retryAfterInMs(e))),
      complete: () => settle(() => callbacks?.complete?.()),
    };
    if (callbacks?.next) wrapped.next = (data) => callbacks.next?.(data);
    if (callbacks?.responseStarted) wrapped.responseStarted = callbacks.responseStarted;
    if (callbacks?.useCancellable) wrapped.useCancellable = callbacks.useCancellable;
    if (callbacks?.useResume) wrapped.useResume = callbacks.useResume;
    try {
      this.base.send(this.rewrite(path), body, options, wrapped);
    } catch (err) {
      // A synchronous failure must still reach writeFailed, or the batch would vanish.
      wrapped.error?.(err instanceof Error ? err : new Error(String(err)));
    }
  }

  request(path: string, body: unknown, options: SendOptions, responseStarted?: ResponseStartedFn) {
    return this.base.request(this.rewrite(path), body, options, responseStarted);
  }

  iterate(path: string, body: unknown, options: SendOptions): AsyncIterableIterator<Uint8Array> {
    return this.base.iterate(this.rewrite(path), body, options);
  }
}

/**
 * `promise`, or after `ms` undefined (or the rejection `timeoutError()`); the promise keeps
 * running either way.
 */
function within<T>(promise: Promise<T>, ms: number, timeoutError?: () => Error): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve, reject) => {
    timer = setTimeout(() => (timeoutError === undefined ? resolve(undefined) : reject(timeoutError())), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

type Throttled = { last: number; suppressed: number; lines: number };

/**
 * Writes line protocol to InfluxDB 2.x/3.x, VictoriaMetrics (api v2) or InfluxDB 1.x (api v1).
 *
 * @example
 * const sink = new InfluxSink({ url: "http://127.0.0.1:8086", org: "resin", bucket: "resin", token });
 * await sink.healthcheck();
 * sink.write(windowLines(result, seriesInfo));
 * const { undelivered } = await sink.close();
 */
export class InfluxSink {
  readonly config: InfluxSinkConfig;
  private readonly log: InfluxSinkLog | undefined;
  private readonly agent: http.Agent;
  private readonly transport: SinkTransport;
  private readonly api: WriteApi;
  /** Every accepted line not yet written or dropped, with how many times it is pending. */
  private readonly pending = new Map<string, number>();
  private readonly counts = { accepted: 0, written: 0, dropped: 0, retried: 0, pending: 0 };
  /** The WriteApi is disposed: nothing more is sent; callbacks of late responses are ignored. */
  private disposed = false;
  private closing: Promise<{ undelivered: number }> | undefined;
  private readonly warned = new Map<string, Throttled>();

  constructor(config: InfluxSinkConfigInput | InfluxSinkConfig, options: InfluxSinkOptions = {}) {
    const c = parseInfluxSinkConfig(config);
    this.config = c;
    this.log = options.log;
    // The library logs every failed attempt to the console; this sink reports them itself.
    // (setLogger is process-wide: it silences the library for every user in this process.)
    setLogger(silent);
    this.agent = c.url.startsWith("https:")
      ? new https.Agent({ keepAlive: true })
      : new http.Agent({ keepAlive: true });
    const base = new InfluxDB({
      url: c.url,
      token: c.token,
      timeout: c.timeoutMs,
      transportOptions: { agent: this.agent },
    }).transport;
    const v1: V1Target | undefined =
      c.api === "v1"
        ? {
            database: c.database!,
            retentionPolicy: c.retentionPolicy,
            username: c.username,
            password: c.password,
          }
        : undefined;
    this.transport = new SinkTransport(base, v1 === undefined ? (p) => p : (p) => v1WritePath(p, v1));
    const writeOptions: Partial<WriteOptions> = {
      batchSize: c.batchSize,
      flushInterval: c.flushIntervalMs,
      maxRetries: c.maxRetries,
      minRetryDelay: c.minRetryDelayMs,
      maxRetryDelay: c.maxRetryDelayMs,
      maxRetryTime: c.maxRetryTimeMs,
      maxBufferLines: c.maxBufferLines,
      exponentialBase: 2,
      randomRetry: true,
      writeSuccess: (lines) => this.settle(lines, "written"),
      writeFailed: (error, lines, attempt) => this.failed(error, lines, attempt),
      writeRetrySkipped: (entry) => {
        const n = this.settle(entry.lines, "dropped");
        this.warn(
          "retry buffer full",
          n,
          { maxBufferLines: c.maxBufferLines },
          "InfluxDB retry buffer full: oldest lines dropped",
        );
      },
    };
    const org = v1 === undefined ? c.org! : "";
    const bucket = v1 === undefined ? c.bucket! : v1.database;
    this.api = new InfluxDB({ url: c.url, transport: this.transport }).getWriteApi(
      org,
      bucket,
      "ms",
      writeOptions,
    );
  }

  get stats(): InfluxSinkStats {
    return { ...this.counts };
  }

  /** Hands lines to the write buffer. Never blocks, never throws; after `close()` they are dropped. */
  write(lines: readonly string[]): void {
    if (lines.length === 0) return;
    this.counts.accepted += lines.length;
    if (this.disposed) {
      this.counts.dropped += lines.length;
      this.warn("closed", lines.length, {}, "InfluxDB sink closed: lines dropped");
      return;
    }
    for (const l of lines) this.pending.set(l, (this.pending.get(l) ?? 0) + 1);
    this.counts.pending += lines.length;
    try {
      this.api.writeRecords(lines as string[]); // read, never changed
    } catch (err) {
      const n = this.settle(lines, "dropped");
      this.warn(
        "write error",
        n,
        { err: (err as Error).message },
        "InfluxDB write buffer refused lines: dropped",
      );
    }
  }

  /** Lines from a checkpoint's `pendingLines()`, written again (same series and time overwrite). */
  requeue(lines: readonly string[]): void {
    this.write(lines);
  }

  /**
   * Accepted lines neither written nor dropped yet (buffered, in flight, waiting for a retry),
   * each once, for a checkpoint: a crash then loses nothing.
   */
  pendingLines(): string[] {
    return [...this.pending.keys()];
  }

  /**
   * v2: GET /health (InfluxDB 2 answers JSON with status "pass", VictoriaMetrics "OK").
   * v1: GET /ping, then `CREATE DATABASE` when `createDatabase`.
   */
  async healthcheck(): Promise<void> {
    const c = this.config;
    const step = async <T>(what: string, call: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await within(call(), c.timeoutMs, () => new Error(`no answer in ${c.timeoutMs} ms`));
      } catch (err) {
        throw new InfluxHealthcheckError(`InfluxDB at ${c.url}: ${what} failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
    };
    if (c.api === "v2") {
      const body = await step("GET /health", () => this.transport.request("/health", "", { method: "GET" }));
      const status = (body as { status?: unknown } | undefined)?.status;
      if (status !== undefined && status !== "pass")
        throw new InfluxHealthcheckError(`InfluxDB at ${c.url}: /health says ${JSON.stringify(body)}`);
      return;
    }
    await step("GET /ping", () => this.transport.request("/ping", "", { method: "GET" }));
    if (!c.createDatabase) return;
    const target = { database: c.database!, username: c.username, password: c.password };
    const creds = credentials(target).toString();
    const statement = `CREATE DATABASE "${target.database.replace(/["\\]/g, "\\$&")}"`;
    const res = await step(statement, () =>
      this.transport.request(
        `/query${creds === "" ? "" : `?${creds}`}`,
        new URLSearchParams({ q: statement }).toString(),
        { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" } },
      ),
    );
    const error = (res as { results?: { error?: string }[] } | undefined)?.results?.[0]?.error;
    if (error !== undefined) throw new InfluxHealthcheckError(`InfluxDB at ${c.url}: ${statement}: ${error}`);
  }

  /**
   * Sends the write buffer at once and waits for it and the requests sent before it, then
   * retries each batch waiting in the retry buffer once (now, not at its scheduled time: while
   * the server is down this uses up one attempt of one batch); at most `flushTimeoutMs`.
   * Requests sent after the flush began are not waited for. Lines that still fail stay pending
   * with their retries scheduled.
   */
  async flush(): Promise<void> {
    if (this.disposed) return;
    const attempt = async () => {
      // The library sends the buffer synchronously here, so `settled()` includes it.
      const sent = this.api.flush(false).catch(() => {});
      // Failures of earlier requests land in the retry buffer, to be tried once more below.
      await this.transport.settled();
      await sent;
      await this.api.flush(true).catch(() => {});
      await this.transport.settled();
    };
    await within(attempt(), this.config.flushTimeoutMs);
  }

  /**
   * Flushes (bounded), then stops: no more sends or retries. Lines still pending are counted
   * as dropped and returned as `undelivered` (take `pendingLines()` before, to keep them).
   * Once it resolves, no timer or socket of the sink or the library keeps the process alive.
   */
  close(): Promise<{ undelivered: number }> {
    this.closing ??= (async () => {
      await this.flush();
      this.disposed = true;
      this.api.dispose();
      // A retry in flight would schedule the next one when it settles while batches wait in the
      // library's retry buffer, for up to maxRetryDelayMs or a server's Retry-After. Take them
      // out (a disposed WriteApi sends nothing), then clear a timer scheduled in the meantime.
      await this.api.flush(true).catch(() => {});
      this.api.dispose();
      const undelivered = this.counts.pending;
      if (undelivered > 0) {
        this.counts.dropped += undelivered;
        this.counts.pending = 0;
        this.pending.clear();
        this.log?.warn({ undelivered }, "InfluxDB sink closed with lines not written");
      }
      this.agent.destroy();
      return { undelivered };
    })();
    return this.closing;
  }

  /** Library callback after a failed attempt: decides, as the library does, whether it retries. */
  private failed(error: Error, lines: string[], attempt: number): void {
    if (this.disposed || isHintedHandoff(error)) return;
    const status = statusOf(error);
    const expired = status === undefined && error.message === MAX_RETRY_TIME_EXCEEDED;
    const retryable = status === undefined || status >= 429;
    if (!expired && retryable && attempt <= this.config.maxRetries) {
      this.counts.retried += lines.length;
      this.warn("retrying", lines.length, { attempt, err: error.message }, "InfluxDB write failed, retrying");
      return;
    }
    const partial = partialWriteDropped(error);
    if (partial !== undefined) {
      // InfluxDB wrote the other points of the batch and says how many it dropped.
      const n = this.settle(lines, "written");
      const lost = Math.min(partial, n);
      this.counts.written -= lost;
      this.counts.dropped += lost;
      this.warn(
        "partial write",
        lost,
        { status, err: error.message },
        "InfluxDB rejected some lines: dropped",
      );
      return;
    }
    const n = this.settle(lines, "dropped");
    const reason = expired ? "retry time exceeded" : retryable ? "retries exhausted" : "rejected";
    this.warn(
      reason,
      n,
      { attempt, status, err: error.message },
      `InfluxDB write failed (${reason}): lines dropped`,
    );
  }

  /** Moves lines out of `pending`; returns how many were pending (others were settled already). */
  private settle(lines: readonly string[], outcome: "written" | "dropped"): number {
    if (this.disposed) return 0;
    let n = 0;
    for (const l of lines) {
      const left = this.pending.get(l);
      if (left === undefined) continue;
      if (left === 1) this.pending.delete(l);
      else this.pending.set(l, left - 1);
      n++;
    }
    this.counts[outcome] += n;
    this.counts.pending -= n;
    return n;
  }

  private warn(kind: string, lines: number, fields: Record<string, unknown>, msg: string): void {
    if (this.log === undefined) return;
    const now = Date.now();
    const t = this.warned.get(kind) ?? { last: Number.NEGATIVE_INFINITY, suppressed: 0, lines: 0 };
    this.warned.set(kind, t);
    t.lines += lines;
    if (now - t.last < WARN_INTERVAL_MS) {
      t.suppressed++;
      return;
    }
    this.log.warn({ ...fields, lines: t.lines, suppressedWarnings: t.suppressed, ...this.stats }, msg);
    t.last = now;
    t.suppressed = 0;
    t.lines = 0;
  }
}
