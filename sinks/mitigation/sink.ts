/**
 * The mitigation sink's async shell around `MitigationEngine`: it feeds the engine host facts
 * (from closed windows) and suspect events, synchronously as the live pipeline produces them;
 * sends the commands the engine decides to the agents (lib/agent/mitigate-client.ts; a timeout or
 * a missing agent is a failed result, which escalates); writes every audit record to NATS
 * (`resin.mitigation.audit`, stream `RESIN_MITIGATION_AUDIT`, message id = instance + seq, so a
 * record offered again is stored once), to an NDJSON file and to InfluxDB; and keeps the engine's
 * state in the KV bucket `resin_mitigation`, so a restart neither forgets a command nor sends it
 * twice (outstanding commands are sent again with the same id: the agent answers with its result).
 *
 *   const sink = await MitigationSink.open(nc, settings, { log });
 *   sink.window(result, seriesInfo); sink.suspect(event);
 *   …
 *   await sink.close();
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { z } from "zod";
import { MitigationClient } from "../../lib/agent/mitigate-client.ts";
import type { MitigateReply, MitigateRequest } from "../../lib/agent/mitigate-protocol.ts";
import { ensureStream, RECORD_STREAM_LIMITS } from "../../lib/jetstream.ts";
import { Waker } from "../../lib/waker.ts";
import type { SeriesInfo } from "../../operators/window/index.ts";
import type { WindowResult } from "../../pipelines/detect.ts";
import { checkOrThrow } from "../../schemas/common.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import { mitigationLine } from "../influx/points.ts";
import { AUDIT_STREAM, AUDIT_SUBJECT, type AuditRecord } from "./audit.ts";
import { MitigationConfig } from "./config.ts";
import { type EngineState, hostFactsOf, MitigationEngine } from "./engine.ts";

export const MITIGATION_STATE_BUCKET = "resin_mitigation";
export const AUDIT_FILE = "mitigation-audit.ndjson";

/** Settings of the shell; `engine` is the rules file (config.ts). */
export const MitigationSinkConfig = z
  .object({
    engine: MitigationConfig.default(MitigationConfig.parse({})),
    /**
     * "event": time is the telemetry's, and commands carry `at` (simulated agents, replays);
     * "wall": the machine's clock, for real agents.
     */
    clock: z.enum(["event", "wall"]).default("event"),
    /** Directory of the NDJSON audit file (`mitigation-audit.ndjson`); none: no file. */
    auditDir: z.string().min(1).optional(),
    /** Publish the audit on NATS. */
    publish: z.boolean().default(true),
    auditSubject: z.string().min(1).default(AUDIT_SUBJECT),
    auditStream: z.string().min(1).default(AUDIT_STREAM),
    /** Retention of the audit stream when resin creates it. */
    auditMaxAgeMs: z
      .number()
      .int()
      .min(60_000)
      .default(90 * 24 * 3_600_000),
    /** Wall-clock timeout of one command (a reboot takes minutes; the agent answers when done). */
    requestTimeoutMs: z
      .number()
      .int()
      .min(100)
      .default(10 * 60_000),
    /** Audit records kept for a retry when NATS does not take them; the oldest are dropped beyond (counted). */
    maxAuditBacklog: z.number().int().min(1).default(100_000),
    /** Wall-clock period of the sink's loop (and of the wall clock's ticks). */
    pollMs: z.number().int().min(10).default(1000),
  })
  .strict();
export type MitigationSinkConfig = z.infer<typeof MitigationSinkConfig>;
export type MitigationSinkConfigInput = z.input<typeof MitigationSinkConfig>;

export function parseMitigationSinkConfig(raw: unknown): MitigationSinkConfig {
  return checkOrThrow(MitigationSinkConfig, raw, "mitigation sink settings");
}

export interface MitigationSinkDeps {
  log: Logger;
  /** Name of this sink's state in the KV bucket (one per partition of `resin run`). */
  stateKey?: string;
  /** Instance name: with the record's seq, the audit message id. */
  instance?: string;
  /** What the snapshot sink traces now: target keys, or bare hosts (see engine.setTracing). */
  tracingHosts?: () => Iterable<string>;
  /** Takes line protocol for InfluxDB (the influx sink's `write`). */
  writeLines?: (lines: string[]) => void;
  /** Wall clock (for `clock: "wall"`). */
  now?: () => number;
}

export interface MitigationShellStats {
  commandsSent: number;
  commandsResent: number;
  /** Commands an agent did not answer in time, or no agent was there for. */
  timeouts: number;
  noResponders: number;
  refusals: number;
  auditPublished: number;
  auditPublishErrors: number;
  /** Audit records dropped from a full NATS backlog (the file has them). */
  auditBacklogDropped: number;
  auditWritten: number;
  auditFileErrors: number;
  stateWrites: number;
  stateWriteErrors: number;
}

export class MitigationSink {
  readonly shellStats: MitigationShellStats = {
    commandsSent: 0,
    commandsResent: 0,
    timeouts: 0,
    noResponders: 0,
    refusals: 0,
    auditPublished: 0,
    auditPublishErrors: 0,
    auditBacklogDropped: 0,
    auditWritten: 0,
    auditFileErrors: 0,
    stateWrites: 0,
    stateWriteErrors: 0,
  };
  private readonly client: MitigationClient;
  private readonly running = new Set<Promise<void>>();
  private readonly backlog: AuditRecord[] = [];
  private readonly auditPath: string | undefined;
  private tracing = new Set<string>();
  private readonly waker = new Waker();
  private quiet = false;
  private readonly idleWaiters: (() => void)[] = [];
  private closing = false;
  private dirty = true;
  /** Inputs and results so far: a loop turn is quiet only if none arrived while it ran. */
  private pokes = 0;
  private loopDone: Promise<void> = Promise.resolve();

  private constructor(
    readonly engine: MitigationEngine,
    nc: NatsConnection,
    private readonly kv: KV,
    private readonly js: JetStreamClient | undefined,
    readonly config: MitigationSinkConfig,
    private readonly deps: Required<Omit<MitigationSinkDeps, "writeLines">> &
      Pick<MitigationSinkDeps, "writeLines">,
  ) {
    this.client = new MitigationClient(nc, config.requestTimeoutMs);
    if (config.auditDir !== undefined) {
      mkdirSync(config.auditDir, { recursive: true });
      this.auditPath = join(config.auditDir, AUDIT_FILE);
    }
  }

  /** Opens the state bucket and the audit stream, restores the engine, resends outstanding commands. */
  static async open(
    nc: NatsConnection,
    config: MitigationSinkConfigInput,
    deps: MitigationSinkDeps,
  ): Promise<MitigationSink> {
    const cfg = MitigationSinkConfig.parse(config);
    const full = {
      stateKey: "mitigation",
      instance: "resin",
      tracingHosts: () => [],
      now: Date.now,
      ...deps,
    };
    const kv = await new Kvm(nc).create(MITIGATION_STATE_BUCKET, { history: 1 });
    let js: JetStreamClient | undefined;
    if (cfg.publish) {
      await ensureAuditStream(nc, cfg);
      js = jetstream(nc);
    }
    const entry = await kv.get(full.stateKey);
    const saved =
      entry !== null && entry.operation === "PUT" && entry.length > 0 ? entry.json<EngineState>() : undefined;
    const engine =
      saved === undefined ? new MitigationEngine(cfg.engine) : MitigationEngine.restore(cfg.engine, saved);
    const sink = new MitigationSink(engine, nc, kv, js, cfg, full);
    const outstanding = engine.outstanding();
    if (saved !== undefined)
      full.log.info(
        { targets: engine.targetList().length, outstanding: outstanding.length },
        "mitigation state restored",
      );
    for (const req of outstanding) {
      sink.shellStats.commandsResent++;
      sink.launch(req);
    }
    sink.loopDone = sink.loop();
    return sink;
  }

  get stats() {
    return { ...this.engine.stats, ...this.shellStats, auditBacklog: this.backlog.length };
  }

  /** A suspect event from the detector (synchronous: the pipeline calls it in its graph). */
  suspect(e: SuspectEvent): void {
    this.engine.onSuspect(e);
    this.poke();
  }

  /** A closed window: what each host that reported said of itself, and its processes per component. */
  window(result: WindowResult, seriesInfo: (slot: number) => SeriesInfo | undefined): void {
    for (const f of hostFactsOf(result.window, seriesInfo)) this.engine.observeHost(f);
    this.poke();
  }

  /** Resolves once everything the inputs so far made due is done (commands answered, audit delivered). */
  whenIdle(): Promise<void> {
    if (this.quiet) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Whether the state bucket and the audit stream answer. */
  async healthcheck(): Promise<void> {
    await this.kv.status();
    if (this.js !== undefined) await (await this.js.jetstreamManager()).streams.info(this.config.auditStream);
  }

  /** Waits for the commands in hand, delivers the audit, saves the state. Returns audit records not published. */
  async close(): Promise<{ undelivered: number }> {
    if (!this.closing) {
      this.closing = true;
      this.waker.wake();
      await this.loopDone;
      await Promise.allSettled([...this.running]);
      await this.deliverAudit();
      await this.persist();
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
    return { undelivered: this.backlog.length };
  }

  private poke(): void {
    this.pokes++;
    this.quiet = false;
    this.dirty = true;
    this.waker.wake();
  }

  private now(): number {
    return this.config.clock === "event" ? this.engine.now : this.deps.now();
  }

  private async loop(): Promise<void> {
    while (!this.closing) {
      const pokes = this.pokes;
      try {
        this.syncTracing();
        const commands = this.engine.decide(this.now());
        for (const req of commands) {
          this.shellStats.commandsSent++;
          this.launch(req);
        }
        await this.deliverAudit();
        if (this.dirty) await this.persist();
        const idle = commands.length === 0 && this.running.size === 0 && this.backlog.length === 0;
        if (idle && this.pokes === pokes) {
          this.quiet = true;
          for (const resolve of this.idleWaiters.splice(0)) resolve();
        }
      } catch (err) {
        this.deps.log.error({ err: (err as Error).message }, "mitigation sink step failed");
      }
      if (this.closing) break;
      await this.waker.sleep(this.config.pollMs);
    }
  }

  private syncTracing(): void {
    const now = new Set(this.deps.tracingHosts());
    for (const h of this.tracing) if (!now.has(h)) this.engine.setTracing(h, false);
    for (const h of now) if (!this.tracing.has(h)) this.engine.setTracing(h, true);
    this.tracing = now;
  }

  private launch(req: MitigateRequest): void {
    const sent = this.config.clock === "event" ? { ...req, at: req.issuedAt } : req;
    this.deps.log.info(
      { id: req.id, host: req.host, action: req.action, component: req.component, dryRun: req.dryRun },
      "mitigation command",
    );
    const work = this.client
      .send(sent)
      .then((reply) => this.result(reply))
      .catch((err: Error) =>
        this.deps.log.error({ err: err.message, id: req.id }, "mitigation command failed unexpectedly"),
      )
      .finally(() => {
        this.running.delete(work);
        this.poke();
      });
    this.running.add(work);
  }

  private result(reply: MitigateReply): void {
    if (!reply.ok) {
      const code = String(reply.error.code);
      if (code === "timeout") this.shellStats.timeouts++;
      else if (code === "no-responders") this.shellStats.noResponders++;
      else this.shellStats.refusals++;
      this.deps.log.warn(
        { id: reply.id, host: reply.host, code, field: reply.error.field, err: reply.error.message },
        "mitigation command failed",
      );
    }
    // On event time a result belongs to the time the agent finished (never before the engine's now).
    const at =
      this.config.clock === "wall"
        ? this.deps.now()
        : Math.max(this.engine.now, reply.ok ? reply.finishedAt : this.engine.now);
    this.engine.onResult(reply, at);
  }

  /** File, InfluxDB, then NATS (retried from a bounded backlog). */
  private async deliverAudit(): Promise<void> {
    const records = this.engine.drainAudit();
    if (records.length > 0) {
      this.dirty = true;
      if (this.auditPath !== undefined) {
        try {
          appendFileSync(this.auditPath, records.map((r) => `${JSON.stringify(r)}\n`).join(""));
          this.shellStats.auditWritten += records.length;
        } catch (err) {
          this.shellStats.auditFileErrors++;
          this.deps.log.warn({ path: this.auditPath, err: (err as Error).message }, "audit file not written");
        }
      }
      if (this.deps.writeLines !== undefined) {
        const lines: string[] = [];
        for (const r of records) {
          const text = mitigationLine(r);
          if (text !== undefined) lines.push(text);
        }
        this.deps.writeLines(lines);
      }
      for (const r of records) {
        if (r.event === "issued" || r.event === "failed" || r.event === "gave-up" || r.event === "escalated")
          this.deps.log.info(
            { event: r.event, host: r.host, component: r.component, action: r.action, reason: r.reason },
            "mitigation decision",
          );
      }
      if (this.js !== undefined) this.backlog.push(...records);
      while (this.backlog.length > this.config.maxAuditBacklog) {
        this.backlog.shift();
        this.shellStats.auditBacklogDropped++;
      }
    }
    const js = this.js;
    if (js === undefined) return;
    while (this.backlog.length > 0) {
      const r = this.backlog[0]!;
      try {
        const h = headers();
        h.set("Resin-Host", r.host);
        h.set("Resin-Event", r.event);
        await js.publish(this.config.auditSubject, JSON.stringify(r), {
          msgID: `${this.deps.instance}:${this.deps.stateKey}:${r.seq}`,
          headers: h,
          timeout: 10_000,
        });
        this.backlog.shift();
        this.shellStats.auditPublished++;
      } catch (err) {
        this.shellStats.auditPublishErrors++;
        this.deps.log.warn({ err: (err as Error).message }, "audit not published; retrying");
        return;
      }
    }
  }

  private async persist(): Promise<void> {
    this.dirty = false;
    try {
      await this.kv.put(this.deps.stateKey, JSON.stringify(this.engine.snapshot()));
      this.shellStats.stateWrites++;
    } catch (err) {
      this.dirty = true;
      this.shellStats.stateWriteErrors++;
      this.deps.log.warn({ err: (err as Error).message }, "mitigation state not saved; retrying");
    }
  }
}

async function ensureAuditStream(nc: NatsConnection, cfg: MitigationSinkConfig): Promise<void> {
  // A record offered again after a restart (state saved after the publish) is stored once.
  await ensureStream(
    await jetstreamManager(nc),
    cfg.auditStream,
    [cfg.auditSubject],
    RECORD_STREAM_LIMITS,
    cfg.auditMaxAgeMs,
  );
}
