/**
 * The load generator's publisher: telemetry v1 lines into JetStream (stream RESIN_TELEMETRY,
 * subject `resin.telemetry.<component>.<host>`), with a bounded window of unacknowledged
 * publishes, optional pacing, and retries that survive a server restart without losing a
 * message or storing one twice.
 *
 * ```ts
 * const nc = await connectWithRetry(NatsSettings.parse({ servers: "nats://127.0.0.1:4222" }));
 * const sim = createSimulation(resolveScenario("mixed", { hosts: 50, days: 2 }));
 * const r = await publishTelemetry(nc, sim.lines(), { speed: 3600 });
 * console.log(`${r.published} stored, ${r.duplicates} duplicates`);
 * ```
 *
 * Every message carries the id `<host>/<component>/<ts>` (`Nats-Msg-Id`), so JetStream stores a
 * retried publish once, and so are the simulator's own duplicate deliveries: both come back as
 * `PubAck.duplicate` and are counted in `duplicates`.
 *
 * Order: publishes go out in input order on one connection, so the stream holds them in input
 * order. A publish that fails (timeout, no responders while the server restarts) is sent again
 * after the window has drained, oldest first, before anything new. When the connection drops,
 * the client discards what it had not written, and those publishes fail only at their ack
 * timeout: so from a disconnect on, nothing new is sent until every publish in flight has
 * settled (acknowledged, or failed and sent again once the server is back), and while
 * disconnected only one at a time. A server restart so keeps the order exactly, paced or not
 * (publish.int.test.ts checks it); a failure of one publish among successful ones moves it back
 * by at most about `maxInFlight` messages, so keep the window below one sampling interval's
 * worth of messages where the detector's allowed lateness matters.
 */
import { type JetStreamClient, jetstream, jetstreamManager, type PubAck } from "@nats-io/jetstream";
import type { NatsConnection, Status } from "@nats-io/transport-node";
import {
  ensureStreams,
  isRetryablePublishError,
  type TelemetryKey,
  telemetryMsgId,
  telemetrySubject,
} from "../lib/jetstream.ts";

import { backoffMs } from "../lib/nats.ts";
import { SUBJECT_TOKEN } from "../schemas/common.ts";

export interface PublishOptions {
  /**
   * Event-time acceleration: a message is published when wall-clock time since the first
   * message reaches (its `ts` − the first message's `ts`) / speed. 3600 = one simulated hour
   * per second. Exclusive with `rate`.
   */
  speed?: number;
  /** Messages per second (new messages; retries are not paced). Exclusive with `speed`. */
  rate?: number;
  /** Publishes sent but not yet acknowledged, at most (backpressure). */
  maxInFlight: number;
  /** How long to wait for one PubAck before the publish counts as failed and is retried (ms). */
  ackTimeoutMs: number;
  /**
   * A message that has not been stored this long after its first failure (server down, stream
   * missing) fails the whole publish with a PublishError (ms).
   */
  giveUpAfterMs: number;
  /** How often `onProgress` is called (ms); it is also called once at the end. */
  progressIntervalMs: number;
  onProgress?: (progress: PublishProgress) => void;
  /**
   * Stops reading input; publishes in flight still get their acks, failed ones are not retried
   * and are reported as `undelivered`.
   */
  signal?: AbortSignal;
}

export const DEFAULT_PUBLISH_OPTIONS: PublishOptions = {
  maxInFlight: 1024,
  ackTimeoutMs: 5000,
  giveUpAfterMs: 60_000,
  progressIntervalMs: 1000,
};

export interface PublishResult {
  /**
   * Messages the stream stored now. A message stored before its acknowledgement was lost (server
   * killed) counts as a duplicate when retried, so after a restart this can be below the number
   * of distinct messages although the stream holds them all.
   */
  published: number;
  /** Messages the stream already held (same message id): retried publishes and duplicate deliveries. */
  duplicates: number;
  /** Payload bytes acknowledged (stored or duplicate). */
  bytes: number;
  /** Wall-clock time from the first publish (after the streams are ensured) to the last acknowledgement. */
  elapsedMs: number;
  /** Publishes sent again after a failure. */
  retries: number;
  /** Non-blank lines without a readable host, component and ts: not published. */
  invalid: number;
  /**
   * Messages taken from the input and never acknowledged, because the publish was stopped
   * (signal) or gave up; counted when it ends (0 in progress reports before that).
   */
  undelivered: number;
  /** True when `signal` stopped the publish before the input ended. */
  aborted: boolean;
}

export interface PublishProgress extends PublishResult {
  /** New messages handed to the connection so far. */
  sent: number;
  /** Publishes awaiting their acknowledgement. */
  inFlight: number;
  /** Event time of the message most recently taken from the input (NaN before the first). */
  lastTs: number;
  /** True while failed publishes are being retried (e.g. the server is restarting). */
  retrying: boolean;
  /** False from a disconnect until the connection is back. */
  connected: boolean;
  /** The last publish error, while retrying. */
  lastError?: Error;
}

/** The publish failed for good: a permanent error, or no acknowledgement within `giveUpAfterMs`. */
export class PublishError extends Error {
  override name = "PublishError";
  constructor(
    message: string,
    /** What was done before the failure. */
    readonly result: PublishResult,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const HEAD = '{"v":1,"ts":';
const HOST = ',"host":"';
const COMPONENT = '","component":"';

function validKey(host: unknown, component: unknown, ts: unknown): TelemetryKey | undefined {
  if (typeof host !== "string" || typeof component !== "string" || typeof ts !== "number") return undefined;
  if (!Number.isSafeInteger(ts) || ts < 0 || !SUBJECT_TOKEN.test(host) || !SUBJECT_TOKEN.test(component))
    return undefined;
  return { host, component, ts };
}

/**
 * Host, component and ts of a telemetry line, or undefined when they are missing or invalid.
 * Lines in the contract's key order (the simulator's, `{"v":1,"ts":…,"host":…,"component":…`)
 * are read from their first bytes; anything else is parsed as JSON.
 */
export function telemetryKey(line: string): TelemetryKey | undefined {
  if (line.startsWith(HEAD)) {
    const tsEnd = line.indexOf(",", HEAD.length);
    if (tsEnd > HEAD.length && line.startsWith(HOST, tsEnd)) {
      const hostStart = tsEnd + HOST.length;
      const hostEnd = line.indexOf('"', hostStart);
      if (hostEnd > 0 && line.startsWith(COMPONENT, hostEnd)) {
        const compStart = hostEnd + COMPONENT.length;
        const compEnd = line.indexOf('"', compStart);
        const key =
          compEnd > 0
            ? validKey(
                line.slice(hostStart, hostEnd),
                line.slice(compStart, compEnd),
                Number(line.slice(HEAD.length, tsEnd)),
              )
            : undefined;
        if (key !== undefined) return key;
      }
    }
  }
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof msg !== "object" || msg === null) return undefined;
  const m = msg as Record<string, unknown>;
  return validKey(m.host, m.component, m.ts);
}

interface Outgoing {
  /** Input order. */
  readonly seq: number;
  readonly ts: number;
  readonly subject: string;
  readonly msgID: string;
  readonly data: Uint8Array;
  settled?: Promise<void>;
  ack?: PubAck;
  error?: unknown;
  /** performance.now() of the first failure; 0 = never failed. */
  failedSince: number;
}

/** First in, first out, without Array#shift's copying. */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(x: T): void {
    this.items.push(x);
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Pacing lag beyond which the schedule moves on instead of bursting to catch up (ms). */
const MAX_CATCH_UP_MS = 1000;

/**
 * When the next new message is due, by event time (`speed`) or by count (`rate`). After a stall
 * (a slow or restarting server) it does not burst to catch up more than MAX_CATCH_UP_MS.
 *
 * By event time the schedule follows the highest `ts` seen: a late or repeated message (lower
 * `ts`) was due when the messages after it were, so it goes at once and moves nothing. Taking
 * its lag for a stall would push every later message back by the lateness, which at low speeds
 * is seconds per late message.
 *
 * ```ts
 * const pacer = new Pacer(3600, undefined);
 * const wait = pacer.delay(ts, performance.now()); // ms; ≤ 0: send now
 * ```
 */
export class Pacer {
  private origin = Number.NaN;
  private firstTs = 0;
  private maxTs = 0;
  private count = 0;
  constructor(
    private readonly speed: number | undefined,
    private readonly rate: number | undefined,
  ) {}

  /** Milliseconds to wait before sending a message with event time `ts` (≤ 0: now); `now` in ms. */
  delay(ts: number, now: number): number {
    if (this.speed === undefined && this.rate === undefined) return 0;
    if (Number.isNaN(this.origin)) {
      this.origin = now;
      this.firstTs = ts;
      this.maxTs = ts;
      this.count = 1;
      return 0;
    }
    if (this.speed !== undefined) {
      if (ts < this.maxTs) return 0;
      this.maxTs = ts;
    }
    const due =
      this.speed !== undefined
        ? this.origin + (ts - this.firstTs) / this.speed
        : this.origin + (this.count * 1000) / this.rate!;
    this.count++;
    const ahead = due - now;
    if (ahead < -MAX_CATCH_UP_MS) this.origin += -ahead - MAX_CATCH_UP_MS;
    return ahead;
  }
}

function checkOptions(o: PublishOptions): void {
  const positive = (name: string, v: number | undefined) => {
    if (v !== undefined && !(Number.isFinite(v) && v > 0))
      throw new RangeError(`publishTelemetry: ${name} must be a finite number > 0, got ${v}`);
  };
  positive("speed", o.speed);
  positive("rate", o.rate);
  positive("ackTimeoutMs", o.ackTimeoutMs);
  positive("giveUpAfterMs", o.giveUpAfterMs);
  positive("progressIntervalMs", o.progressIntervalMs);
  if (!Number.isInteger(o.maxInFlight) || o.maxInFlight < 1)
    throw new RangeError(`publishTelemetry: maxInFlight must be an integer >= 1, got ${o.maxInFlight}`);
  if (o.speed !== undefined && o.rate !== undefined)
    throw new RangeError("publishTelemetry: speed and rate are mutually exclusive");
}

/**
 * Telemetry lines: a synchronous iterable (e.g. `Simulation.lines()`), or an async one of lines
 * or of batches of lines (e.g. `readLineBatches` from lib/ndjson.ts): one await per batch.
 */
export type TelemetryLines = Iterable<string> | AsyncIterable<string | readonly string[]>;

/**
 * Publishes telemetry v1 lines (NDJSON without newlines, e.g. `Simulation.lines()`) to
 * JetStream, creating the resin streams first when they are missing. Resolves when every message
 * is acknowledged (stored or recognised as a duplicate); rejects with a PublishError when a
 * message cannot be stored within `giveUpAfterMs` or fails permanently. Blank lines are skipped;
 * lines without a valid host, component and ts are skipped and counted as `invalid`.
 */
export async function publishTelemetry(
  nc: NatsConnection,
  lines: TelemetryLines,
  options: Partial<PublishOptions> = {},
): Promise<PublishResult> {
  const o: PublishOptions = { ...DEFAULT_PUBLISH_OPTIONS, ...options };
  checkOptions(o);
  await ensureStreams(await jetstreamManager(nc));
  const js: JetStreamClient = jetstream(nc);
  const signal = o.signal;
  const stopped = (): boolean => signal?.aborted === true;
  const pacer = new Pacer(o.speed, o.rate);

  const r: PublishResult = {
    published: 0,
    duplicates: 0,
    bytes: 0,
    elapsedMs: 0,
    retries: 0,
    invalid: 0,
    undelivered: 0,
    aborted: false,
  };
  let sent = 0;
  let lastTs = Number.NaN;
  let retrying = false;
  let lastError: Error | undefined;
  const began = performance.now();
  const window = new Fifo<Outgoing>();
  /** Failed messages waiting to be sent again, in input order; they go before any new message. */
  let redo: Outgoing[] = [];

  let connected = true;
  /** Disconnects so far, and how many of them the window has been settled after. */
  let disconnects = 0;
  let settledDisconnects = 0;
  const statuses = nc.status() as AsyncIterable<Status> & { stop?: () => void };
  void (async () => {
    for await (const s of statuses) {
      if (s.type === "disconnect") {
        connected = false;
        disconnects++;
      } else if (s.type === "reconnect") connected = true;
    }
  })().catch(() => undefined);

  const progress = (): PublishProgress => {
    const p: PublishProgress = {
      ...r,
      elapsedMs: performance.now() - began,
      sent,
      inFlight: window.length,
      lastTs,
      retrying,
      connected,
    };
    if (retrying && lastError !== undefined) p.lastError = lastError;
    return p;
  };
  const onProgress = o.onProgress;
  const timer =
    onProgress !== undefined ? setInterval(() => onProgress(progress()), o.progressIntervalMs) : undefined;
  timer?.unref();

  const publish = (m: Outgoing): Promise<void> =>
    js.publish(m.subject, m.data, { msgID: m.msgID, timeout: o.ackTimeoutMs }).then(
      (ack) => {
        m.ack = ack;
        m.error = undefined;
      },
      (err: unknown) => {
        m.error = err;
      },
    );

  const acknowledged = (m: Outgoing): void => {
    if (m.ack!.duplicate) r.duplicates++;
    else r.published++;
    r.bytes += m.data.length;
  };

  /** Records a failure; throws when it is permanent or has lasted too long. */
  const fail = (m: Outgoing, now: number): void => {
    const err = m.error instanceof Error ? m.error : new Error(String(m.error));
    lastError = err;
    if (m.failedSince === 0) m.failedSince = now;
    if (!isRetryablePublishError(err)) {
      throw new PublishError(`cannot publish ${m.msgID} to ${m.subject}: ${err.message}`, finish(), {
        cause: err,
      });
    }
    if (now - m.failedSince > o.giveUpAfterMs) {
      throw new PublishError(
        `no acknowledgement for ${m.msgID} in ${Math.round((now - m.failedSince) / 1000)} s ` +
          `(is NATS up and the stream there?): ${err.message}`,
        finish(),
        { cause: err },
      );
    }
  };

  /**
   * After a failure: waits for everything in flight, then sends the oldest failed message alone,
   * with backoff, until it is stored; the other failed messages are queued to go next, in order.
   */
  const recover = async (first: Outgoing): Promise<void> => {
    retrying = true;
    // Reported at once: a retry that succeeds within one progress interval would otherwise
    // never show (and a slow machine's timer can fire late).
    onProgress?.(progress());
    const failed = [first];
    for (let m = window.shift(); m !== undefined; m = window.shift()) {
      await m.settled;
      if (m.error === undefined) acknowledged(m);
      else failed.push(m);
    }
    const now = performance.now();
    for (const m of failed) fail(m, now);
    if (stopped()) {
      retrying = false;
      return;
    }
    const probe = failed[0]!;
    for (let attempt = 0; ; attempt++) {
      await pause(backoffMs(attempt), signal);
      if (stopped()) {
        retrying = false;
        return;
      }
      r.retries++;
      await publish(probe);
      if (probe.error === undefined) break;
      fail(probe, performance.now());
    }
    acknowledged(probe);
    redo = [...failed.slice(1), ...redo].sort((a, b) => a.seq - b.seq);
    retrying = false;
  };

  /** Takes the oldest publish out of the window once it is settled. */
  const settleOldest = async (): Promise<void> => {
    const m = window.shift()!;
    await m.settled;
    if (m.error === undefined) acknowledged(m);
    else await recover(m);
  };

  const finish = (): PublishResult => {
    if (timer !== undefined) clearInterval(timer);
    statuses.stop?.();
    // Every message taken from the input is acknowledged once or not at all, wherever it was when
    // the publish ended (in the window, waiting to be sent again, or taken and not yet sent).
    r.undelivered = seq - r.published - r.duplicates;
    r.elapsedMs = performance.now() - began;
    onProgress?.(progress());
    return { ...r };
  };

  const asyncInput = Symbol.asyncIterator in lines;
  const iterator: Iterator<string> | AsyncIterator<string | readonly string[]> = asyncInput
    ? (lines as AsyncIterable<string | readonly string[]>)[Symbol.asyncIterator]()
    : (lines as Iterable<string>)[Symbol.iterator]();
  /** The current batch of an async input, and the next line in it. */
  let batch: readonly string[] = [];
  let inBatch = 0;
  let seq = 0;
  let inputDone = false;
  const lowWater = o.maxInFlight - Math.max(1, Math.floor(o.maxInFlight / 4));

  /** A message for a line; undefined for a blank or invalid line. */
  const outgoing = (line: string): Outgoing | undefined => {
    const key = telemetryKey(line);
    if (key === undefined) {
      if (line.trim() !== "") r.invalid++;
      return undefined;
    }
    return {
      seq: seq++,
      ts: key.ts,
      subject: telemetrySubject(key.component, key.host),
      msgID: telemetryMsgId(key),
      data: Buffer.from(line, "utf8"),
      failedSince: 0,
    };
  };

  const paced = (m: Outgoing): Outgoing | Promise<Outgoing> => {
    lastTs = m.ts;
    const wait = pacer.delay(m.ts, performance.now());
    return wait >= 2 ? pause(wait, signal).then(() => m) : m;
  };

  const stopInput = async (): Promise<undefined> => {
    r.aborted = true;
    inputDone = true;
    await iterator.return?.();
    return undefined;
  };

  /** Reads batches from an async input until one holds a message. */
  const nextBatch = async (): Promise<Outgoing | undefined> => {
    for (;;) {
      if (stopped()) return await stopInput();
      const step = await (iterator as AsyncIterator<string | readonly string[]>).next();
      if (step.done === true) {
        inputDone = true;
        return undefined;
      }
      batch = typeof step.value === "string" ? [step.value] : step.value;
      inBatch = 0;
      while (inBatch < batch.length) {
        const m = outgoing(batch[inBatch++]!);
        if (m !== undefined) return await paced(m);
      }
    }
  };

  /**
   * The next new message from the input, paced; undefined at the end or when stopped. Without a
   * wait it returns synchronously: an `await` per message would let the connection flush (one
   * socket write) per message, which halves the throughput.
   */
  const nextNew = (): Outgoing | undefined | Promise<Outgoing | undefined> => {
    for (;;) {
      if (stopped()) return stopInput();
      let line: string;
      if (inBatch < batch.length) line = batch[inBatch++]!;
      else if (asyncInput) return nextBatch();
      else {
        const step = (iterator as Iterator<string>).next();
        if (step.done === true) {
          inputDone = true;
          return undefined;
        }
        line = step.value;
      }
      const m = outgoing(line);
      if (m !== undefined) return paced(m);
    }
  };

  try {
    for (;;) {
      if (stopped()) redo = [];
      let m: Outgoing | undefined;
      if (redo.length > 0) m = redo.shift();
      else if (!inputDone) {
        const next = nextNew();
        m = next instanceof Promise ? await next : next;
      }
      if (m === undefined) {
        if (window.length === 0) break;
        await settleOldest();
        continue;
      }
      if (!connected || settledDisconnects !== disconnects) {
        // The connection dropped: publishes it had not written fail only at their ack timeout,
        // and anything sent meanwhile would be stored before them. Settle all in flight first
        // (failed ones go to `redo`, sent again oldest first once the server is back); while
        // disconnected, one at a time.
        const seen = disconnects;
        while (window.length > 0) await settleOldest();
        settledDisconnects = seen;
      } else if (window.length >= o.maxInFlight) {
        // Make room for a batch, not one message: the connection writes what was published in
        // one synchronous run as one socket write, so refilling one at a time costs a write each.
        while (window.length > lowWater) await settleOldest();
      }
      if (redo.length > 0 && redo[0]!.seq < m.seq) {
        // A failure while waiting for room: older messages go first.
        redo.push(m);
        redo.sort((a, b) => a.seq - b.seq);
        continue;
      }
      if (m.failedSince === 0) sent++;
      else r.retries++;
      m.settled = publish(m);
      window.push(m);
    }
  } catch (err) {
    if (timer !== undefined) clearInterval(timer);
    statuses.stop?.();
    try {
      await iterator.return?.();
    } catch {
      // the input's own error, if any, is not the one to report
    }
    throw err;
  }
  return finish();
}
