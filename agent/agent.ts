/**
 * The Linux agent as a running unit: samples /proc every interval (agent/sampler.ts), publishes
 * the telemetry (agent/publisher.ts, buffered while NATS is away), answers heap-snapshot
 * requests (SnapshotResponder with agent/snapshot-source.ts) and, when given, mitigation
 * commands, and serves /metrics and /healthz. Sampling starts at once and does not wait for
 * NATS: the connection is made (and remade) in the background.
 *
 *   const agent = await Agent.start({ config, host, nats, log });
 *   …
 *   await agent.stop(); // last flush; says how many messages were not delivered
 */
import type { Server } from "node:http";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { SnapshotResponder } from "../lib/agent/responder.ts";
import { pulledMetrics } from "../lib/metrics.ts";
import { connectWithRetry, type NatsSettings, sleep } from "../lib/nats.ts";
import { startOpsServer } from "../lib/ops-server.ts";
import type { Telemetry } from "../schemas/telemetry.ts";
import type { AgentConfig } from "./config.ts";
import { clockTicks, hostOs, pageSize, readVmCount } from "./host.ts";
import { type ProcFs, RealProcFs } from "./procfs.ts";
import { TelemetryPublisher } from "./publisher.ts";
import { addStats, emptyStats, Sampler, type SampleStats } from "./sampler.ts";
import { AgentProfileSource } from "./snapshot-source.ts";

/** Something else the agent answers once connected (the mitigation responder). */
export interface AgentService {
  close(): Promise<void>;
}

export interface AgentOptions {
  config: AgentConfig;
  host: string;
  /** Undefined: sample and print only (`--print` without NATS). */
  nats: NatsSettings | undefined;
  log: Logger;
  /** Also hands each message to this (`resin agent --print`). */
  print?: (message: Telemetry) => void;
  /** Started once connected, closed on stop (mitigation). */
  services?: (nc: NatsConnection, sampler: Sampler) => Promise<AgentService[]>;
  fs?: ProcFs;
}

export interface AgentStats extends SampleStats {
  /** Sampling passes done. */
  passes: number;
  /** VM count reads that failed (the message then has no `vms`). */
  vmReadFailures: number;
  /** Wall time of the last pass, ms. */
  lastPassMs: number;
}

export class Agent {
  readonly stats: AgentStats = { ...emptyStats(), passes: 0, vmReadFailures: 0, lastPassMs: 0 };
  readonly sampler: Sampler;
  readonly publisher: TelemetryPublisher;
  readonly registry = new Registry();
  private readonly stopping = new AbortController();
  private nc: NatsConnection | undefined;
  private snapshots: SnapshotResponder | undefined;
  private services: AgentService[] = [];
  private timer: NodeJS.Timeout | undefined;
  private passing: Promise<void> | undefined;
  private connecting: Promise<void> | undefined;
  private ops: Server | undefined;
  private readonly os: string | undefined;

  private constructor(private readonly options: AgentOptions) {
    const { config, host, log } = options;
    this.os = config.attrs.os ?? hostOs();
    this.sampler = new Sampler(config, {
      host,
      fs: options.fs ?? new RealProcFs(),
      pageSize: pageSize(),
      clockTicks: clockTicks(),
      ...(this.os !== undefined ? { os: this.os } : {}),
    });
    this.publisher = new TelemetryPublisher({
      maxBuffered: config.bufferMessages,
      ackTimeoutMs: config.ackTimeout,
      log,
    });
    this.registerMetrics();
  }

  static async start(options: AgentOptions): Promise<Agent> {
    const agent = new Agent(options);
    const { config, log } = options;
    // Fail fast on what cannot work at all (no /proc), before anything is started.
    agent.sampler.bootTimeMs();
    if (config.metricsPort !== 0)
      agent.ops = await startOpsServer(config.metricsPort, config.metricsHost, agent.registry, () => ({
        ok: agent.stats.passes > 0 && (options.nats === undefined || agent.publisher.healthy),
        detail: {
          passes: agent.stats.passes,
          buffered: agent.publisher.stats.buffered,
          connected: agent.nc !== undefined,
        },
      }));
    if (options.nats !== undefined) agent.connecting = agent.connect(options.nats);
    agent.schedule(0);
    log.info(
      {
        host: options.host,
        intervalMs: config.interval,
        memory: config.memory,
        os: agent.os,
        nats: options.nats?.servers,
      },
      "agent started",
    );
    return agent;
  }

  /** Runs one sampling pass now (tests, `--once`), unless one is running. */
  async passNow(): Promise<void> {
    if (this.passing === undefined) this.passing = this.pass().finally(() => (this.passing = undefined));
    await this.passing;
  }

  /** Stops sampling, answers no more requests, flushes what it can; returns the undelivered count. */
  async stop(flushTimeoutMs = 5000): Promise<number> {
    this.stopping.abort();
    clearTimeout(this.timer);
    await this.passing;
    await this.connecting?.catch(() => undefined);
    for (const s of this.services) await s.close().catch(() => undefined);
    await this.snapshots?.close().catch(() => undefined);
    const undelivered = await this.publisher.close(flushTimeoutMs);
    await this.nc?.drain().catch(() => undefined);
    await new Promise<void>((resolve) => (this.ops ? this.ops.close(() => resolve()) : resolve()));
    this.options.log.info({ ...this.stats, ...this.publisher.stats, undelivered }, "agent stopped");
    return undelivered;
  }

  private schedule(delayMs: number): void {
    if (this.stopping.signal.aborted) return;
    this.timer = setTimeout(() => {
      const began = Date.now();
      void this.passNow().finally(() => {
        // Keep the cadence: the next pass is one interval after this one began.
        this.schedule(Math.max(0, began + this.options.config.interval - Date.now()));
      });
    }, delayMs);
  }

  private async pass(): Promise<void> {
    const { config, log } = this.options;
    let vms: number | undefined;
    if (config.vms !== undefined) {
      try {
        vms = await readVmCount(config.vms);
      } catch (err) {
        this.stats.vmReadFailures++;
        if (this.stats.vmReadFailures === 1 || this.stats.vmReadFailures % 60 === 0)
          log.warn(
            { err: (err as Error).message, failures: this.stats.vmReadFailures },
            "cannot read the VM count",
          );
      }
    }
    const began = performance.now();
    let result: ReturnType<Sampler["sample"]>;
    try {
      result = this.sampler.sample(Date.now(), vms);
    } catch (err) {
      log.error({ err: (err as Error).message }, "sampling pass failed");
      return;
    }
    this.stats.lastPassMs = performance.now() - began;
    this.stats.passes++;
    addStats(this.stats, result.stats);
    if (this.options.print !== undefined) for (const m of result.messages) this.options.print(m);
    if (this.options.nats !== undefined) this.publisher.enqueue(result.messages);
    log.debug({ messages: result.messages.length, ...result.stats, ms: this.stats.lastPassMs }, "sampled");
  }

  private async connect(settings: NatsSettings): Promise<void> {
    const { log, config, host } = this.options;
    let nc: NatsConnection;
    try {
      nc = await connectWithRetry(
        settings,
        (attempt, err) => {
          if (attempt === 0 || attempt % 10 === 0)
            log.warn({ attempt, err: err.message }, "NATS not reachable, buffering telemetry and retrying");
        },
        this.stopping.signal,
      );
    } catch (err) {
      if (!this.stopping.signal.aborted) log.error({ err: (err as Error).message }, "cannot connect to NATS");
      return;
    }
    if (this.stopping.signal.aborted) {
      await nc.close();
      return;
    }
    this.nc = nc;
    this.publisher.attach(nc);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "disconnect") log.warn({ server: s.server }, "NATS disconnected: buffering telemetry");
        else if (s.type === "reconnect") log.info({ server: s.server }, "NATS reconnected");
      }
    })().catch(() => undefined);
    // The responders need JetStream (the profile Object Store); retry until it is there.
    for (let attempt = 0; !this.stopping.signal.aborted; attempt++) {
      try {
        if (config.snapshots.enabled && this.snapshots === undefined)
          this.snapshots = await SnapshotResponder.start(nc, {
            host,
            source: new AgentProfileSource({ identify: (pid) => this.sampler.identify(pid) }),
            maxTraces: config.snapshots.maxTraces,
            ...(this.os !== undefined ? { os: this.os } : {}),
            version: (component) => config.components.find((r) => r.component === component)?.version,
            log,
          });
        if (this.options.services !== undefined && this.services.length === 0)
          this.services = await this.options.services(nc, this.sampler);
        break;
      } catch (err) {
        log.warn(
          { err: (err as Error).message, attempt },
          "cannot start the agent's responders yet, retrying",
        );
        await sleep(Math.min(10_000, 500 * 2 ** attempt), this.stopping.signal);
      }
    }
    if (this.stopping.signal.aborted) return;
    log.info(
      { snapshots: this.snapshots !== undefined, services: this.services.length },
      "connected to NATS",
    );
  }

  private registerMetrics(): void {
    collectDefaultMetrics({ register: this.registry, prefix: "resin_agent_" });
    const { counter, gauge } = pulledMetrics(this.registry);
    const s = this.stats;
    const p = this.publisher.stats;
    counter("resin_agent_passes_total", "sampling passes", () => s.passes);
    counter("resin_agent_process_samples_total", "process samples reported", () => s.processes);
    counter("resin_agent_kernel_threads_skipped_total", "kernel threads left out", () => s.kernelThreads);
    counter(
      "resin_agent_below_floor_total",
      "process samples below minProcessBytes, not reported",
      () => s.belowFloor,
    );
    counter(
      "resin_agent_unmatched_total",
      "process samples of unmatched processes (unmatched: skip)",
      () => s.unmatched,
    );
    counter(
      "resin_agent_unreadable_total",
      "processes that exited while read or could not be read",
      () => s.unreadable,
    );
    counter(
      "resin_agent_smaps_fallbacks_total",
      "USS/PSS not readable: reported as rss-anon",
      () => s.smapsFallbacks,
    );
    counter(
      "resin_agent_truncated_total",
      "process samples beyond 1024 per component, not reported",
      () => s.truncated,
    );
    counter("resin_agent_vm_read_failures_total", "failed VM count reads", () => s.vmReadFailures);
    gauge("resin_agent_last_pass_seconds", "wall time of the last sampling pass", () => s.lastPassMs / 1000);
    counter(
      "resin_agent_messages_published_total",
      "telemetry messages stored by JetStream",
      () => p.published,
    );
    counter(
      "resin_agent_messages_duplicate_total",
      "telemetry messages JetStream already had",
      () => p.duplicates,
    );
    counter(
      "resin_agent_messages_dropped_total",
      "telemetry messages dropped: buffer full while NATS was away",
      () => p.dropped,
    );
    counter(
      "resin_agent_messages_rejected_total",
      "telemetry messages refused by NATS for good",
      () => p.rejected,
    );
    counter("resin_agent_publish_retries_total", "telemetry publishes sent again", () => p.retries);
    gauge("resin_agent_messages_buffered", "telemetry messages waiting for NATS", () => p.buffered);
    counter(
      "resin_agent_snapshot_profiles_total",
      "heap profiles stored",
      () => this.snapshots?.stats.profilesStored ?? 0,
    );
    gauge("resin_agent_snapshot_traces", "heap traces running", () => this.snapshots?.traces.length ?? 0);
  }
}
