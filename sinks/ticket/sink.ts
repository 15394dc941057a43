/**
 * The ticket sink: each diagnosis report becomes a ticket (render.ts), written to a directory as
 * JSON + Markdown + HTML, published on JetStream (`resin.tickets`, message id = report id, so a
 * replay or a retry is stored once) and optionally POSTed to a webhook. Files and NATS are the
 * durable part: `deliver` resolves only when both hold the ticket, and the snapshot sink offers
 * the report again otherwise. The webhook is best effort in the background: retried with
 * jittered exponential backoff (honouring Retry-After), every failure counted, never thrown.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ensureStream, RECORD_STREAM_LIMITS } from "../../lib/jetstream.ts";
import type { DiagnosisReport } from "../snapshot/report.ts";
import { TicketSinkConfig, type TicketSinkConfigInput } from "./config.ts";
import { renderTicket, type Ticket } from "./render.ts";

export interface TicketStats {
  tickets: number;
  filesWritten: number;
  published: number;
  publishErrors: number;
  webhookDelivered: number;
  /** Failed webhook attempts (each retry counts). */
  webhookFailures: number;
  /** Reports the webhook never got: retries exhausted, refused (4xx), or dropped from a full queue. */
  webhookDropped: number;
  webhookPending: number;
}

interface WebhookJob {
  ticket: Ticket;
  body: string;
  attempt: number;
}

export class TicketSink {
  readonly config: TicketSinkConfig;
  readonly stats: TicketStats = {
    tickets: 0,
    filesWritten: 0,
    published: 0,
    publishErrors: 0,
    webhookDelivered: 0,
    webhookFailures: 0,
    webhookDropped: 0,
    webhookPending: 0,
  };
  private readonly queue: WebhookJob[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  /** Reports already sent to the webhook or waiting for it, so a report offered again is not POSTed twice. */
  private readonly webhookSeen = new Set<string>();
  private pumping = false;
  private closed = false;

  private constructor(
    config: TicketSinkConfig,
    private readonly js: JetStreamClient | undefined,
    private readonly log: Logger,
    private readonly fetchImpl: typeof fetch,
  ) {
    this.config = config;
  }

  /** Validates the settings, creates the directory and the stream when missing. */
  static async open(
    nc: NatsConnection | undefined,
    config: TicketSinkConfigInput,
    deps: { log: Logger; fetch?: typeof fetch },
  ): Promise<TicketSink> {
    const cfg = TicketSinkConfig.parse(config);
    if (cfg.dir !== undefined) mkdirSync(cfg.dir, { recursive: true });
    let js: JetStreamClient | undefined;
    if (cfg.publish && nc !== undefined) {
      await ensureTicketStream(nc, cfg);
      js = jetstream(nc);
    }
    return new TicketSink(cfg, js, deps.log, deps.fetch ?? fetch);
  }

  /** Makes the ticket durable (files, NATS); queues the webhook. Throws when a durable part failed. */
  async deliver(report: DiagnosisReport): Promise<Ticket> {
    if (this.closed) throw new Error("ticket sink is closed");
    const ticket = renderTicket(report);
    if (this.config.dir !== undefined) this.writeFiles(ticket);
    if (this.js !== undefined) {
      try {
        const h = headers();
        h.set("Resin-Ticket", ticket.id);
        h.set("Resin-Component", report.component);
        h.set("Resin-Host", report.host);
        await this.js.publish(this.config.subject, ticket.json, {
          msgID: ticket.id,
          headers: h,
          timeout: 10_000,
        });
        this.stats.published++;
      } catch (err) {
        this.stats.publishErrors++;
        throw new Error(
          `ticket ${ticket.id} not published on ${this.config.subject}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
    }
    this.stats.tickets++;
    this.log.info({ ticket: ticket.id, title: ticket.title, dir: this.config.dir }, "ticket written");
    if (this.config.webhookUrl !== undefined && !this.webhookSeen.has(ticket.id))
      this.enqueue(ticket, report);
    return ticket;
  }

  /** Whether the stream answers (when publishing). */
  async healthcheck(): Promise<void> {
    if (this.js !== undefined) await (await this.js.jetstreamManager()).streams.info(this.config.stream);
  }

  /** Waits up to closeTimeoutMs for webhook deliveries, then gives up; returns the reports the webhook did not get. */
  async close(): Promise<{ undelivered: number }> {
    if (!this.closed) {
      this.closed = true;
      const deadline = Date.now() + this.config.closeTimeoutMs;
      while ((this.queue.length > 0 || this.inFlight.size > 0) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      this.abort.abort();
      await Promise.allSettled([...this.inFlight]);
    }
    const undelivered = this.queue.length + this.inFlight.size;
    return { undelivered };
  }

  private writeFiles(ticket: Ticket): void {
    const dir = this.config.dir!;
    for (const [ext, text] of [
      ["json", ticket.json],
      ["md", ticket.markdown],
      ["html", ticket.html],
    ] as const) {
      const path = join(dir, `${ticket.id}.${ext}`);
      const tmp = `${path}.tmp-${process.pid}`;
      writeFileSync(tmp, text);
      renameSync(tmp, path); // readers never see half a ticket
    }
    this.stats.filesWritten++;
  }

  private enqueue(ticket: Ticket, report: DiagnosisReport): void {
    this.webhookSeen.add(ticket.id);
    const body = JSON.stringify({ id: ticket.id, title: ticket.title, markdown: ticket.markdown, report });
    this.queue.push({ ticket, body, attempt: 0 });
    while (this.queue.length > this.config.webhookMaxPending) {
      const dropped = this.queue.shift()!;
      this.stats.webhookDropped++;
      this.log.warn({ ticket: dropped.ticket.id }, "webhook queue full: oldest ticket dropped");
    }
    this.stats.webhookPending = this.queue.length;
    void this.pump();
  }

  /** Sends queued tickets one at a time, in order; a failing one waits out its backoff first. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.abort.signal.aborted) {
        const job = this.queue[0]!;
        const attempt = this.post(job);
        this.inFlight.add(attempt);
        await attempt.finally(() => this.inFlight.delete(attempt));
      }
    } finally {
      this.pumping = false;
      this.stats.webhookPending = this.queue.length;
    }
  }

  private async post(job: WebhookJob): Promise<void> {
    const url = this.config.webhookUrl!;
    job.attempt++;
    let retryAfterMs: number | undefined;
    let why: string;
    let retryable: boolean;
    try {
      const res = await this.fetchImpl(url, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": job.ticket.id },
        body: job.body,
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.config.webhookTimeoutMs)]),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) {
        this.queue.shift();
        this.stats.webhookDelivered++;
        this.stats.webhookPending = this.queue.length;
        return;
      }
      why = `HTTP ${res.status}`;
      retryable = res.status === 408 || res.status === 429 || res.status >= 500;
      retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
    } catch (err) {
      why = (err as Error).message;
      retryable = true;
    }
    this.stats.webhookFailures++;
    if (!retryable || job.attempt >= this.config.webhookMaxAttempts) {
      this.queue.shift();
      this.stats.webhookDropped++;
      this.stats.webhookPending = this.queue.length;
      this.log.warn(
        { ticket: job.ticket.id, attempts: job.attempt, err: why },
        retryable ? "webhook: retries exhausted, ticket not delivered" : "webhook refused the ticket",
      );
      return;
    }
    const backoff = Math.min(
      this.config.webhookMaxDelayMs,
      this.config.webhookMinDelayMs * 2 ** (job.attempt - 1) * (0.5 + Math.random() / 2),
    );
    const delay = Math.max(backoff, retryAfterMs ?? 0);
    this.log.warn(
      { ticket: job.ticket.id, attempt: job.attempt, err: why, retryInMs: Math.round(delay) },
      "webhook failed",
    );
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delay);
      this.abort.signal.addEventListener(
        "abort",
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  }
}

function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** The tickets stream, when no stream holds the subject yet. */
async function ensureTicketStream(nc: NatsConnection, cfg: TicketSinkConfig): Promise<void> {
  // A report offered again within a day (a restart, a retry) is stored once.
  await ensureStream(
    await jetstreamManager(nc),
    cfg.stream,
    [cfg.subject],
    RECORD_STREAM_LIMITS,
    cfg.streamMaxAgeMs,
  );
}
