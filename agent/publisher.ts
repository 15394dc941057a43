/**
 * The agent's telemetry publisher: each interval's messages go to JetStream
 * (`resin.telemetry.<component>.<host>`, stream RESIN_TELEMETRY) with the message id
 * `<host>/<component>/<ts>`, so a publish retried after a lost acknowledgement is stored once.
 *
 * While NATS is away (not connected yet, restarting, stream missing) messages wait in a bounded
 * buffer, oldest first, and go out in order once it is back. Beyond `maxBuffered` the oldest
 * are dropped and counted (`dropped`): the newest telemetry is worth most to the detector,
 * which drops samples later than its allowed lateness anyway. A message the server refuses for
 * good (too large, no permission) is dropped and counted as `rejected`.
 *
 *   const pub = new TelemetryPublisher({ maxBuffered: 10_000 });
 *   pub.attach(nc);                 // when the connection is up (may be later than the first enqueue)
 *   pub.enqueue(messages);          // every interval
 *   const left = await pub.close(5000); // flush what it can; returns what was not delivered
 */
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  ensureStreams,
  isRetryablePublishError,
  telemetryMsgId,
  telemetrySubject,
} from "../lib/jetstream.ts";
import { backoffMs, sleep } from "../lib/nats.ts";
import { Waker } from "../lib/waker.ts";
import type { Telemetry } from "../schemas/telemetry.ts";

export interface PublisherOptions {
  /** Messages kept while NATS is away; the oldest beyond this are dropped and counted. */
  maxBuffered: number;
  /** Publishes awaiting their acknowledgement at once. */
  maxInFlight: number;
  /** Wait for one acknowledgement before the publish counts as failed and is retried, ms. */
  ackTimeoutMs: number;
  log?: Logger;
}

export const DEFAULT_PUBLISHER_OPTIONS: PublisherOptions = {
  maxBuffered: 10_000,
  maxInFlight: 64,
  ackTimeoutMs: 5000,
};

export interface PublisherStats {
  /** Messages handed to the publisher. */
  enqueued: number;
  /** Messages the stream stored. */
  published: number;
  /** Messages the stream already had (a retry after a lost acknowledgement). */
  duplicates: number;
  /** Oldest messages dropped because the buffer was full. */
  dropped: number;
  /** Messages the server refused for good. */
  rejected: number;
  /** Publishes sent again after a failure. */
  retries: number;
  /** Messages waiting now (buffered or in flight). */
  buffered: number;
}

interface Pending {
  subject: string;
  msgID: string;
  data: Uint8Array;
}

export class TelemetryPublisher {
  readonly stats: PublisherStats = {
    enqueued: 0,
    published: 0,
    duplicates: 0,
    dropped: 0,
    rejected: 0,
    retries: 0,
    buffered: 0,
  };
  private readonly options: PublisherOptions;
  private queue: Pending[] = [];
  private inFlight = 0;
  private js: JetStreamClient | undefined;
  private nc: NatsConnection | undefined;
  private streamsReady = false;
  private pumping: Promise<void> | undefined;
  private attempt = 0;
  private readonly stopping = new AbortController();
  /** Wakes the pump early from a backoff when new messages arrive or the connection comes back. */
  private readonly waker = new Waker();

  constructor(options: Partial<PublisherOptions> = {}) {
    this.options = { ...DEFAULT_PUBLISHER_OPTIONS, ...options };
  }

  /** Starts publishing on `nc` (and whatever is buffered). */
  attach(nc: NatsConnection): void {
    this.nc = nc;
    this.js = jetstream(nc);
    this.streamsReady = false;
    this.kick();
  }

  /** Whether NATS is attached and the last publish succeeded (for /healthz). */
  get healthy(): boolean {
    return this.js !== undefined && this.attempt === 0;
  }

  enqueue(messages: readonly Telemetry[]): void {
    for (const m of messages) {
      this.queue.push({
        subject: telemetrySubject(m.component, m.host),
        msgID: telemetryMsgId(m),
        data: Buffer.from(JSON.stringify(m), "utf8"),
      });
      this.stats.enqueued++;
    }
    const over = this.queue.length + this.inFlight - this.options.maxBuffered;
    if (over > 0) {
      const drop = Math.min(over, this.queue.length);
      this.queue.splice(0, drop);
      this.stats.dropped += drop;
      this.options.log?.warn(
        { dropped: drop, maxBuffered: this.options.maxBuffered },
        "telemetry buffer full: oldest messages dropped",
      );
    }
    this.stats.buffered = this.queue.length + this.inFlight;
    this.kick();
  }

  /**
   * Stops; first tries for up to `flushTimeoutMs` to deliver what is buffered. Returns the
   * number of messages not delivered.
   */
  async close(flushTimeoutMs = 5000): Promise<number> {
    const deadline = Date.now() + flushTimeoutMs;
    while (this.queue.length + this.inFlight > 0 && this.js !== undefined && Date.now() < deadline) {
      this.kick();
      await sleep(50);
    }
    this.stopping.abort();
    this.waker.wake();
    await this.pumping;
    return this.queue.length + this.inFlight;
  }

  private kick(): void {
    if (this.pumping !== undefined) {
      this.waker.wake();
      return;
    }
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined;
      if (this.queue.length > 0 && this.js !== undefined && !this.stopping.signal.aborted) this.kick();
    });
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0 && this.js !== undefined && !this.stopping.signal.aborted) {
      if (!this.streamsReady) {
        try {
          await ensureStreams(await jetstreamManager(this.nc!));
          this.streamsReady = true;
        } catch (err) {
          await this.backoff("cannot reach JetStream to ensure the telemetry stream", err);
          continue;
        }
      }
      const batch = this.queue.splice(0, this.options.maxInFlight);
      this.inFlight = batch.length;
      const js = this.js;
      const results = await Promise.allSettled(
        batch.map((p) =>
          js.publish(p.subject, p.data, { msgID: p.msgID, timeout: this.options.ackTimeoutMs }),
        ),
      );
      this.inFlight = 0;
      const failed: Pending[] = [];
      let lastError: unknown;
      results.forEach((r, i) => {
        if (r.status === "fulfilled") {
          if (r.value.duplicate) this.stats.duplicates++;
          else this.stats.published++;
        } else if (isRetryablePublishError(r.reason)) {
          failed.push(batch[i]!);
          lastError = r.reason;
        } else {
          this.stats.rejected++;
          this.options.log?.error(
            { subject: batch[i]!.subject, msgID: batch[i]!.msgID, err: (r.reason as Error).message },
            "telemetry message refused by NATS: dropped",
          );
        }
      });
      // Failed ones go back in front, in their order, before anything newer.
      this.queue.unshift(...failed);
      this.stats.retries += failed.length;
      this.stats.buffered = this.queue.length;
      if (failed.length > 0) {
        // A stream deleted under us comes back as "no responders": check it again.
        this.streamsReady = false;
        await this.backoff(`${failed.length} telemetry publishes failed, retrying`, lastError);
      } else this.attempt = 0;
    }
  }

  private async backoff(what: string, err: unknown): Promise<void> {
    const wait = backoffMs(this.attempt++, 250, 10_000);
    if (this.attempt === 1 || this.attempt % 10 === 0)
      this.options.log?.warn(
        { err: (err as Error)?.message, attempt: this.attempt, buffered: this.queue.length },
        what,
      );
    if (this.stopping.signal.aborted) return;
    // New messages must not turn the backoff into a busy loop: wait at least a little.
    if (await this.waker.sleep(Math.max(100, wait))) await sleep(100, this.stopping.signal);
  }
}
