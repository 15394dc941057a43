/**
 * The live pipeline behind `resin run`: telemetry from a durable JetStream consumer, through the
 * same detection graph as replay, to suspect events and dead letters on NATS and series in a
 * time-series sink.
 *
 * Exactly-once effect on at-least-once delivery: messages are processed in stream order and
 * acknowledged only after a checkpoint that contains their effects (detector state, the sink's
 * unconfirmed points, counters) has been saved to NATS (KV record + Object Store state). At
 * start-up the consumer is made afresh to deliver from the message after the checkpoint, so a
 * crash loses nothing and repeats only what the checkpoint does not hold; outputs published
 * again carry the same message ids, which JetStream stores once. A delivery that goes missing
 * in transit (the server restarted, the connection dropped mid-batch) shows as a gap in the
 * consumer's delivery sequence: the pipeline then makes the consumer again from the last
 * processed message rather than process anything out of order.
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { deserialize, serialize } from "node:v8";
import {
  AckPolicy,
  type Consumer,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { type NatsConnection, nanos } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Subject } from "rxjs";
import { z } from "zod";
import { CheckpointStore } from "../lib/checkpoints.ts";
import {
  DEADLETTER_SUBJECT,
  DEFAULT_STREAM_LIMITS,
  ensureStreams,
  type StreamLimits,
  suspectSubject,
  TELEMETRY_STREAM,
} from "../lib/jetstream.ts";
import { backoffMs, connectWithRetry, type NatsSettings, sleep } from "../lib/nats.ts";
import type { DeadLetter } from "../operators/decode/index.ts";
import type { SeriesInfo } from "../operators/window/index.ts";
import type { SuspectEvent } from "../schemas/suspect.ts";
import { type DetectGraph, type DetectOptions, detectGraph, type WindowResult } from "./detect.ts";

export const LiveConfig = z
  .object({
    /** This instance's share of the components: index `index` of `count` partitions. */
    partition: z
      .object({ index: z.number().int().min(0), count: z.number().int().min(1).max(1024) })
      .refine((p) => p.index < p.count, { message: "partition index must be below the partition count" })
      .default({ index: 0, count: 1 }),
    /** Messages fetched per pull; also the unit of work between two looks at the clock. */
    batchSize: z.number().int().min(1).max(100_000).default(2000),
    /** Delivered but unacknowledged messages at most (the consumer's max_ack_pending: backpressure). */
    maxAckPending: z.number().int().min(2).max(10_000_000).default(50_000),
    /** Save a checkpoint (and acknowledge) at least this often while messages flow. */
    checkpointIntervalMs: z.number().int().min(100).default(5_000),
    /** Time the server waits for an acknowledgement before it redelivers. */
    ackWaitMs: z
      .number()
      .int()
      .min(1_000)
      .default(10 * 60_000),
    /** Larger telemetry messages go to the dead letters unread. */
    maxMessageBytes: z
      .number()
      .int()
      .min(1024)
      .default(256 * 1024),
    /** Name of this instance in logs, checkpoints and series. */
    instance: z.string().min(1).default(hostname()),
    /** Forget this partition's checkpoint and rebuild the state from the stream's retained telemetry. */
    resetState: z.boolean().default(false),
  })
  .strict();
export type LiveConfig = z.infer<typeof LiveConfig>;
export type LiveConfigInput = z.input<typeof LiveConfig>;

/** Where the pipeline's series go (the InfluxDB sink, through an adapter). */
export interface SeriesSink {
  window(result: WindowResult, seriesInfo: (slot: number) => SeriesInfo | undefined): void;
  suspect(event: SuspectEvent): void;
  pipeline(counters: Record<string, number>): void;
  /** Points accepted but not yet confirmed written: saved in the checkpoint. */
  pendingLines(): string[];
  /** Points from a checkpoint, written again (writes are idempotent). */
  requeue(lines: string[]): void;
  readonly stats: { written: number; dropped: number; pending: number };
  /** What the sink must remember across a restart (kept in the checkpoint). */
  captureState?(): unknown;
  restoreState?(state: unknown): void;
  close(): Promise<{ undelivered: number }>;
}

/** Counters of the live pipeline itself (the detector's own are in `graph.stats`). */
export interface LiveCounters {
  /** Messages taken from the stream and processed. */
  consumed: number;
  /** Redelivered messages already in the checkpointed state, skipped. */
  redelivered: number;
  oversized: number;
  deadLetters: number;
  suspectsPublished: number;
  checkpoints: number;
  checkpointBytes: number;
  /** Messages still waiting in the consumer after the last one fetched. */
  consumerLag: number;
  /** Stream sequence of the last processed message. */
  lastSeq: number;
  publishRetries: number;
  fetchErrors: number;
  /** Times the consumer was made again after a delivery gap. */
  consumerResets: number;
}

interface SavedState {
  graph: Uint8Array;
  sinkPending: string[];
  sinkState?: unknown;
  counters: LiveCounters;
}

/** Name of one partition's state of `base` (the detector's, a sink's): the base alone for one partition. */
export function partitionStateKey(base: string, p: { index: number; count: number }): string {
  return p.count === 1 ? base : `${base}-p${p.index}of${p.count}`;
}

export function partitionKey(p: { index: number; count: number }): string {
  return partitionStateKey("detect", p);
}

/** Telemetry subjects of a partition: with more than one, the server maps a partition token onto each subject. */
export function partitionFilter(p: { index: number; count: number }): string {
  return p.count === 1 ? "resin.telemetry.>" : `resin.telemetry.*.*.${p.index}`;
}

const dedupId = (parts: string) => createHash("sha1").update(parts).digest("base64url");

export class LivePipeline {
  readonly config: LiveConfig;
  readonly counters: LiveCounters = {
    consumed: 0,
    redelivered: 0,
    oversized: 0,
    deadLetters: 0,
    suspectsPublished: 0,
    checkpoints: 0,
    checkpointBytes: 0,
    consumerLag: 0,
    lastSeq: 0,
    publishRetries: 0,
    fetchErrors: 0,
    consumerResets: 0,
  };
  graph: DetectGraph | undefined;
  nc: NatsConnection | undefined;
  /** Wall-clock time of the last loop turn (for /healthz). */
  lastTurnAt = Date.now();
  private readonly input = new Subject<readonly string[]>();
  private readonly outSuspects: SuspectEvent[] = [];
  private readonly outDead: DeadLetter[] = [];
  private unacked: JsMsg | undefined;
  private unackedCount = 0;
  /** Delivery sequence of the last message taken from the current consumer (0: none yet). */
  private lastDelivery = 0;
  /** Stream sequence the last saved checkpoint holds. */
  private checkpointedSeq = 0;
  /** Why the consumer must be made again from `lastSeq + 1` (a delivery went missing, the server restarted). */
  private resetReason: string | undefined;
  private lastConsumerCheckAt = Date.now();
  private lastCheckpointAt = Date.now();
  private stopping = false;
  private readonly stopped = new AbortController();

  constructor(
    config: LiveConfigInput,
    private readonly nats: NatsSettings,
    private readonly detect: DetectOptions,
    private readonly log: Logger,
    private readonly sink?: SeriesSink,
    private readonly limits: StreamLimits = DEFAULT_STREAM_LIMITS,
  ) {
    this.config = LiveConfig.parse(config);
  }

  get key(): string {
    return partitionKey(this.config.partition);
  }

  /** Asks the loop to finish: it publishes what it has, checkpoints, acknowledges and returns. */
  stop(): void {
    this.stopping = true;
    this.stopped.abort();
  }

  /** Runs until `stop()`. Never throws for a server that goes away; it waits and retries. */
  async run(): Promise<void> {
    const nc = await connectWithRetry(
      this.nats,
      (attempt, err) => this.log.warn({ attempt, err: err.message }, "NATS not reachable, retrying"),
      this.stopped.signal,
    );
    this.nc = nc;
    void this.watchStatus(nc);
    try {
      await this.consume(nc);
    } catch (err) {
      // Whatever stops the pipeline (a checkpoint it must not use, a stop during set-up) must
      // not leave the connection holding the process open.
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  private async consume(nc: NatsConnection): Promise<void> {
    const jsm = await this.retrying("set up streams", async () => {
      const m = await jetstreamManager(nc);
      await ensureStreams(m, this.limits);
      return m;
    });
    const js = jetstream(nc);
    const store = await this.retrying("open checkpoint buckets", () => CheckpointStore.open(nc));
    if (this.config.resetState) {
      await store.reset(this.key);
      this.log.warn({ key: this.key }, "detector state reset");
    }
    const checkpoint = await store.load(this.key);
    const saved = checkpoint === undefined ? undefined : (deserialize(checkpoint.state) as SavedState);
    if (saved !== undefined) {
      Object.assign(this.counters, saved.counters);
      this.log.info({ key: this.key, seq: checkpoint?.seq, bytes: checkpoint?.bytes }, "restored checkpoint");
    }
    this.counters.lastSeq = checkpoint?.seq ?? 0;
    this.checkpointedSeq = this.counters.lastSeq;

    const graph = detectGraph(this.input, { ...this.detect, flushAtEnd: false, restore: saved?.graph });
    this.graph = graph;
    graph.windows.subscribe((r) => this.sink?.window(r, graph.seriesInfo));
    graph.suspects.subscribe((e) => {
      this.outSuspects.push(e);
      this.sink?.suspect(e);
    });
    graph.deadLetters.subscribe((d) => this.outDead.push(d));
    if (saved !== undefined) {
      if (saved.sinkState !== undefined) this.sink?.restoreState?.(saved.sinkState);
      if (saved.sinkPending.length > 0) this.sink?.requeue(saved.sinkPending);
    }

    let consumer = await this.retrying("set up the consumer", () => this.consumer(jsm, js));
    this.log.info(
      {
        partition: this.config.partition,
        filter: partitionFilter(this.config.partition),
        fromSeq: this.counters.lastSeq + 1,
      },
      "consuming telemetry",
    );
    while (!this.stopping) {
      this.lastTurnAt = Date.now();
      const fetched = await this.pull(consumer);
      if (fetched === 0 && Date.now() - this.lastConsumerCheckAt > 10_000) await this.checkConsumer(jsm);
      if (this.resetReason !== undefined) {
        this.counters.consumerResets++;
        this.log.warn(
          { reason: this.resetReason, fromSeq: this.counters.lastSeq + 1 },
          "consumer made again from the last processed message",
        );
        consumer = await this.retrying("set up the consumer", () => this.consumer(jsm, js));
      }
      await this.publishOutputs(js);
      const due =
        this.counters.lastSeq > this.checkpointedSeq &&
        (fetched === 0 ||
          Date.now() - this.lastCheckpointAt >= this.config.checkpointIntervalMs ||
          this.unackedCount >= this.config.maxAckPending / 2);
      if (due) await this.checkpoint(store);
    }
    // Drain: what was taken is processed; publish, checkpoint, acknowledge.
    await this.publishOutputs(js);
    if (this.counters.lastSeq > this.checkpointedSeq) await this.checkpoint(store);
    await nc.drain().catch(() => undefined);
  }

  /** One pull: every message it brings is processed, even if the connection fails midway. */
  private async pull(consumer: Consumer): Promise<number> {
    const lines: string[] = [];
    let fetched = 0;
    try {
      // With messages known to be waiting, ask for no more than those: a larger request would
      // wait out its expiry for messages that are not there.
      const lag = this.counters.consumerLag;
      const want = lag > 0 ? Math.min(this.config.batchSize, lag) : this.config.batchSize;
      const batch = await consumer.fetch({ max_messages: want, expires: 1000 });
      for await (const m of batch) {
        fetched++;
        if (!this.take(m, lines) || this.stopping) break;
      }
    } catch (err) {
      this.counters.fetchErrors++;
      if (!this.stopping) {
        this.log.warn({ err: (err as Error).message }, "fetch failed; retrying");
        await sleep(backoffMs(Math.min(this.counters.fetchErrors, 6)));
      }
    }
    if (lines.length > 0) this.input.next(lines);
    return fetched;
  }

  /** Takes one message; false when it shows a gap in the deliveries (and is not taken). */
  private take(m: JsMsg, lines: string[]): boolean {
    if (m.seq <= this.counters.lastSeq) {
      this.counters.redelivered++;
      return true;
    }
    if (m.info.deliverySequence !== this.lastDelivery + 1) {
      this.resetReason = "delivery gap";
      return false;
    }
    this.lastDelivery = m.info.deliverySequence;
    this.unacked = m;
    this.unackedCount++;
    this.counters.lastSeq = m.seq;
    this.counters.consumed++;
    this.counters.consumerLag = m.info.pending;
    if (m.data.length > this.config.maxMessageBytes) {
      this.counters.oversized++;
      this.outDead.push({
        reason: `message: ${m.data.length} bytes exceeds the limit of ${this.config.maxMessageBytes} (subject ${m.subject})`,
        raw: new TextDecoder().decode(m.data.subarray(0, 4096)),
      });
      return true;
    }
    lines.push(m.string());
    return true;
  }

  /** Publishes suspect events and dead letters; retries until the server takes them. */
  private async publishOutputs(js: JetStreamClient): Promise<void> {
    const suspects = this.outSuspects.splice(0);
    const dead = this.outDead.splice(0);
    const publish = async (subject: string, body: string, msgID: string): Promise<void> => {
      for (let attempt = 0; ; attempt++) {
        try {
          await js.publish(subject, body, { msgID, timeout: 5000 });
          return;
        } catch (err) {
          this.counters.publishRetries++;
          this.log.warn({ subject, attempt, err: (err as Error).message }, "publish failed; retrying");
          await sleep(backoffMs(attempt));
        }
      }
    };
    await Promise.all(
      suspects.map((e) =>
        publish(suspectSubject(e.component), JSON.stringify(e), `${e.id}|${e.state}|${e.detectedAt}`),
      ),
    );
    this.counters.suspectsPublished += suspects.length;
    await Promise.all(
      dead.map((d) =>
        publish(DEADLETTER_SUBJECT, JSON.stringify(d), `dl-${dedupId(`${d.reason}\n${d.raw}`)}`),
      ),
    );
    this.counters.deadLetters += dead.length;
  }

  private async checkpoint(store: CheckpointStore): Promise<void> {
    const graph = this.graph!;
    this.counters.checkpoints++;
    const saved: SavedState = {
      graph: graph.capture(),
      sinkPending: this.sink?.pendingLines() ?? [],
      sinkState: this.sink?.captureState?.(),
      counters: this.counters,
    };
    const bytes = serialize(saved);
    const seq = this.counters.lastSeq;
    await this.retrying("save checkpoint", () => store.save(this.key, seq, bytes, this.config.instance));
    this.counters.checkpointBytes = bytes.length;
    this.checkpointedSeq = seq;
    const last = this.unacked;
    this.unacked = undefined;
    this.unackedCount = 0;
    this.lastCheckpointAt = Date.now();
    // Acknowledging the last message acknowledges all before it (AckPolicy.All). If it is lost,
    // the redelivered messages are skipped by sequence.
    if (last !== undefined) await last.ackAck({ timeout: 5000 }).catch(() => undefined);
    this.sink?.pipeline(this.pipelineCounters());
    this.log.debug({ seq, bytes: bytes.length }, "checkpoint saved");
  }

  /** Everything worth a time series about the pipeline itself. */
  pipelineCounters(): Record<string, number> {
    const s = this.graph?.stats;
    return {
      consumed: this.counters.consumed,
      redelivered: this.counters.redelivered,
      decoded: s?.decode.decoded ?? 0,
      invalid: (s?.decode.invalid ?? 0) + this.counters.oversized,
      late: s?.window.late ?? 0,
      duplicates: s?.window.duplicates ?? 0,
      samples: s?.window.samples ?? 0,
      windows: s?.windows ?? 0,
      tracked_series: s?.trackedSeries ?? 0,
      open_suspects: s?.openSuspects ?? 0,
      suspect_events: s?.suspectEvents ?? 0,
      consumer_lag: this.counters.consumerLag,
      checkpoint_bytes: this.counters.checkpointBytes,
      points_written: this.sink?.stats.written ?? 0,
      points_dropped: this.sink?.stats.dropped ?? 0,
    };
  }

  /**
   * The durable consumer, made afresh to deliver from the message after the last processed one
   * (whatever an earlier run left delivered but unacknowledged is delivered again, in order).
   */
  private async consumer(jsm: JetStreamManager, js: JetStreamClient): Promise<Consumer> {
    const durable = `resin-${this.key}`;
    await jsm.consumers.delete(TELEMETRY_STREAM, durable).catch((err: unknown) => {
      if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.ConsumerNotFound) throw err;
    });
    const from = this.counters.lastSeq;
    await jsm.consumers.add(TELEMETRY_STREAM, {
      durable_name: durable,
      ack_policy: AckPolicy.All,
      // Unpartitioned: no filter. (nats-server 2.9 delivers from a filtered consumer much more
      // slowly near the end of the stream, ~1k messages/s, even when the filter matches all.)
      ...(this.config.partition.count > 1 ? { filter_subject: partitionFilter(this.config.partition) } : {}),
      max_ack_pending: this.config.maxAckPending,
      ack_wait: nanos(this.config.ackWaitMs),
      ...(from > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from + 1 }
        : { deliver_policy: DeliverPolicy.All }),
    });
    this.lastDelivery = 0;
    this.resetReason = undefined;
    this.lastConsumerCheckAt = Date.now();
    this.unacked = undefined;
    this.unackedCount = 0; // the messages taken so far stay due for the next checkpoint
    return await js.consumers.get(TELEMETRY_STREAM, durable);
  }

  /** While idle, now and then: is the consumer still there (a server restart or an operator may remove it)? */
  private async checkConsumer(jsm: JetStreamManager): Promise<void> {
    this.lastConsumerCheckAt = Date.now();
    try {
      await jsm.consumers.info(TELEMETRY_STREAM, `resin-${this.key}`);
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)
        this.resetReason ??= "consumer missing";
    }
  }

  private async retrying<T>(what: string, work: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch (err) {
        if (this.stopping && attempt > 2) throw err;
        this.log.warn({ attempt, err: (err as Error).message }, `${what} failed; retrying`);
        await sleep(backoffMs(attempt));
      }
    }
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") this.log.warn({ server: s.server }, "NATS disconnected");
      else if (s.type === "reconnect") {
        this.log.info({ server: s.server }, "NATS reconnected");
        // A restarted server may have lost the consumer or deliveries in flight; start again
        // from what the pipeline has processed.
        this.resetReason ??= "reconnected";
      }
    }
  }
}
