/**
 * The agent side of the snapshot protocol (lib/agent/protocol.ts) for one host: answers start /
 * collect / stop on `resin.agent.<host>.snapshot`, takes profiles from a `ProfileSource` and
 * stores them in the Object Store. The source is what differs between agents: a Node.js process
 * through its inspector (agent/snapshot-node.ts), a simulated process (simulate/agents.ts), or
 * any `(target) => Promise<HeapProfile>`.
 *
 *   const responder = await SnapshotResponder.start(nc, { host: "h1", source });
 *   …
 *   await responder.close(); // stops every trace it runs
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { HeapProfile } from "../heap/profile.ts";
import { ProfileStore } from "./profiles.ts";
import {
  AGENT_PROTOCOL_VERSION,
  type AgentErrorCode,
  AgentSourceError,
  type CollectReply,
  type ErrorReply,
  PROFILE_BUCKET,
  SnapshotRequest,
  type SnapshotTarget,
  type StartReply,
  type StopReply,
  snapshotSubject,
} from "./protocol.ts";
import {
  echoed,
  errorBody,
  parseRequest,
  Refusal,
  type RequestServer,
  refusalOf,
  serveRequests,
} from "./request-responder.ts";

/** One trace as the source sees it. */
export interface TraceSpec extends SnapshotTarget {
  trace: string;
  host: string;
  samplingIntervalBytes: number;
}

/**
 * Where profiles come from. `start` and `stop` bracket a trace (a sampling profiler needs
 * them; a source that can profile at any time omits them). `at` is the request's event time,
 * for sources without a clock of their own. Throw `AgentSourceError` to choose the reply's code.
 */
export interface ProfileSource {
  start?(spec: TraceSpec, at: number | undefined): Promise<void>;
  collect(spec: TraceSpec, at: number | undefined): Promise<HeapProfile>;
  stop?(spec: TraceSpec, at: number | undefined): Promise<void>;
  /** Releases whatever the source holds (called by `SnapshotResponder.close`). */
  close?(): Promise<void>;
}

export type ProfileSourceLike = ProfileSource | ((spec: TraceSpec, at?: number) => Promise<HeapProfile>);

export { AgentSourceError } from "./protocol.ts";

export function asProfileSource(source: ProfileSourceLike): ProfileSource {
  return typeof source === "function" ? { collect: source } : source;
}

export interface SnapshotResponderOptions {
  host: string;
  source: ProfileSourceLike;
  /** Traces at most at once; more is refused with `busy` (profiling costs the host). */
  maxTraces: number;
  /** Operating system of the host, reported to resin for reference fingerprints. */
  os?: string;
  /** Component version, when the agent knows it. */
  version?: (component: string) => string | undefined;
  /** Profile store; opened on `resin_profiles` when not given (share one across simulated hosts). */
  store?: ProfileStore;
  /** Queue group, so that two responders for one host answer each request once. */
  queue: string;
  /** How often traces that aged past their TTL on the wall clock are stopped, ms. */
  sweepIntervalMs: number;
  now: () => number;
  log?: Logger;
}

export const DEFAULT_RESPONDER_OPTIONS = {
  maxTraces: 4,
  queue: "resin-agent",
  sweepIntervalMs: 5000,
  now: Date.now,
} satisfies Partial<SnapshotResponderOptions>;

export interface ResponderStats {
  requests: number;
  /** Requests answered with bad-request or unsupported-version. */
  invalid: number;
  /** Requests answered with any other error. */
  failed: number;
  profilesStored: number;
  /** Traces stopped because nobody named them within their TTL. */
  expired: number;
}

interface Session {
  spec: TraceSpec;
  /** "event": ages by the `at` of requests; "wall": by `now()`. */
  clock: "event" | "wall";
  lastHeardAt: number;
  ttlMs: number;
  collected: number;
}

const SNAPSHOT_PROTOCOL = {
  name: "snapshot",
  version: AGENT_PROTOCOL_VERSION,
  noun: "request",
  schema: SnapshotRequest,
};

export class SnapshotResponder {
  readonly stats: ResponderStats = { requests: 0, invalid: 0, failed: 0, profilesStored: 0, expired: 0 };
  readonly subject: string;
  private readonly sessions = new Map<string, Session>();
  /** Per trace, the request being handled: requests naming one trace run one after another. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly source: ProfileSource;
  private served: RequestServer | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly store: ProfileStore,
    private readonly options: SnapshotResponderOptions,
  ) {
    this.source = asProfileSource(options.source);
    this.subject = snapshotSubject(options.host);
  }

  static async start(
    nc: NatsConnection,
    options: Partial<SnapshotResponderOptions> & Pick<SnapshotResponderOptions, "host" | "source">,
  ): Promise<SnapshotResponder> {
    const opts: SnapshotResponderOptions = { ...DEFAULT_RESPONDER_OPTIONS, ...options };
    const store = opts.store ?? (await ProfileStore.open(nc));
    const responder = new SnapshotResponder(store, opts);
    responder.served = await serveRequests(nc, responder.subject, {
      queue: opts.queue,
      what: "snapshot",
      answer: (text) => {
        responder.stats.requests++;
        return responder.answer(text);
      },
      log: opts.log,
    });
    responder.sweeper = setInterval(() => responder.sweepWall(), opts.sweepIntervalMs);
    responder.sweeper.unref();
    return responder;
  }

  get host(): string {
    return this.options.host;
  }

  /** Traces running now. */
  get traces(): string[] {
    return [...this.sessions.keys()];
  }

  /** Unsubscribes, waits for the requests in hand, stops every trace and closes the source. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    await this.served?.close();
    for (const [trace, s] of [...this.sessions]) {
      this.sessions.delete(trace);
      await this.source.stop?.(s.spec, undefined).catch(() => undefined);
    }
    await this.source.close?.().catch(() => undefined);
  }

  private async answer(text: string): Promise<StartReply | CollectReply | StopReply | ErrorReply> {
    const parsed = parseRequest(text, SNAPSHOT_PROTOCOL);
    const input = parsed.input;
    if (!parsed.ok) return this.refused(input, parsed.refusal);
    const req = parsed.value;
    if (this.closed) return this.refused(input, new Refusal("busy", "agent is shutting down"));
    // One request per trace at a time, in arrival order.
    const previous = this.chains.get(req.trace) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const chain = previous.then(() => mine);
    this.chains.set(req.trace, chain);
    await previous;
    try {
      if (req.at !== undefined) await this.sweepEvent(req.at, req.trace);
      switch (req.op) {
        case "start":
          return await this.startTrace(req);
        case "collect":
          return await this.collect(req.trace, req.at);
        default:
          return await this.stop(req.trace, req.at);
      }
    } catch (err) {
      return this.refused(input, refusalOf(err, AgentSourceError, "source-failed"));
    } finally {
      release();
      if (this.chains.get(req.trace) === chain) this.chains.delete(req.trace);
    }
  }

  private async startTrace(req: Extract<SnapshotRequest, { op: "start" }>): Promise<StartReply> {
    const now = req.at ?? this.options.now();
    const existing = this.sessions.get(req.trace);
    if (existing !== undefined) {
      const same =
        existing.spec.pid === req.pid &&
        existing.spec.process === req.process &&
        existing.spec.component === req.component;
      if (!same)
        throw new Refusal<AgentErrorCode>(
          "trace-conflict",
          `trace ${req.trace} already samples pid ${existing.spec.pid} (${existing.spec.process})`,
          "trace",
          req.trace,
        );
      existing.lastHeardAt = now;
      existing.ttlMs = req.ttlMs;
      return this.startReply(existing);
    }
    if (this.sessions.size >= this.options.maxTraces)
      throw new Refusal<AgentErrorCode>(
        "busy",
        `this agent already runs ${this.sessions.size} traces (at most ${this.options.maxTraces})`,
      );
    const spec: TraceSpec = {
      trace: req.trace,
      host: this.options.host,
      pid: req.pid,
      process: req.process,
      component: req.component,
      samplingIntervalBytes: req.samplingIntervalBytes,
    };
    await this.source.start?.(spec, req.at);
    const session: Session = {
      spec,
      clock: req.at !== undefined ? "event" : "wall",
      lastHeardAt: now,
      ttlMs: req.ttlMs,
      collected: 0,
    };
    this.sessions.set(req.trace, session);
    this.options.log?.info({ trace: req.trace, targetPid: req.pid, process: req.process }, "trace started");
    return this.startReply(session);
  }

  private startReply(s: Session): StartReply {
    return {
      v: AGENT_PROTOCOL_VERSION,
      ok: true,
      op: "start",
      host: this.options.host,
      trace: s.spec.trace,
      pid: s.spec.pid,
      expiresAt: s.lastHeardAt + s.ttlMs,
      ...(this.options.os !== undefined ? { os: this.options.os } : {}),
    };
  }

  private async collect(trace: string, at: number | undefined): Promise<CollectReply> {
    const s = this.sessions.get(trace);
    if (s === undefined)
      throw new Refusal<AgentErrorCode>(
        "unknown-trace",
        `no trace ${trace} on ${this.options.host} (never started, stopped, expired, or the agent restarted)`,
        "trace",
        trace,
      );
    s.lastHeardAt = at ?? this.options.now();
    const profile = await this.source.collect(s.spec, at);
    s.collected++;
    const id = `${this.options.host}/${trace}/${String(s.collected).padStart(5, "0")}`;
    let stored: Awaited<ReturnType<ProfileStore["put"]>>;
    try {
      stored = await this.store.put(id, profile, {
        host: this.options.host,
        pid: s.spec.pid,
        process: s.spec.process,
        component: s.spec.component,
        trace,
        ...(this.options.os !== undefined ? { os: this.options.os } : {}),
      });
    } catch (err) {
      throw new Refusal<AgentErrorCode>(
        "store-failed",
        `profile taken but not stored: ${(err as Error).message}`,
      );
    }
    this.stats.profilesStored++;
    const version = this.options.version?.(s.spec.component);
    return {
      v: AGENT_PROTOCOL_VERSION,
      ok: true,
      op: "collect",
      host: this.options.host,
      trace,
      id,
      bucket: PROFILE_BUCKET,
      pid: s.spec.pid,
      process: s.spec.process,
      component: s.spec.component,
      takenAt: Math.round(stored.takenAt),
      bytes: stored.bytes,
      stacks: stored.stacks,
      size: stored.size,
      ...(this.options.os !== undefined ? { os: this.options.os } : {}),
      ...(version !== undefined ? { version } : {}),
    };
  }

  private async stop(trace: string, at: number | undefined): Promise<StopReply> {
    const s = this.sessions.get(trace);
    const reply: StopReply = {
      v: AGENT_PROTOCOL_VERSION,
      ok: true,
      op: "stop",
      host: this.options.host,
      trace,
      known: s !== undefined,
    };
    if (s === undefined) return reply;
    this.sessions.delete(trace);
    await this.source.stop?.(s.spec, at);
    this.options.log?.info({ trace }, "trace stopped");
    return reply;
  }

  private refused(input: unknown, r: Refusal<AgentErrorCode>): ErrorReply {
    if (r.code === "bad-request" || r.code === "unsupported-version") this.stats.invalid++;
    else this.stats.failed++;
    return {
      v: AGENT_PROTOCOL_VERSION,
      ok: false,
      host: this.options.host,
      ...echoed(input, ["op", "trace"]),
      error: errorBody(r),
    };
  }

  private sweepWall(): void {
    const now = this.options.now();
    for (const [trace, s] of this.sessions)
      if (s.clock === "wall" && now > s.lastHeardAt + s.ttlMs) void this.expire(trace, s, undefined);
  }

  /** Traces on event time that the request's `at` shows expired (not the one it names). */
  private async sweepEvent(at: number, except: string): Promise<void> {
    for (const [trace, s] of this.sessions)
      if (trace !== except && s.clock === "event" && at > s.lastHeardAt + s.ttlMs)
        await this.expire(trace, s, at);
    const own = this.sessions.get(except);
    if (own !== undefined && own.clock === "event" && at > own.lastHeardAt + own.ttlMs)
      await this.expire(except, own, at);
  }

  private async expire(trace: string, s: Session, at: number | undefined): Promise<void> {
    if (this.sessions.get(trace) !== s) return;
    this.sessions.delete(trace);
    this.stats.expired++;
    this.options.log?.info({ trace, ttlMs: s.ttlMs }, "trace expired: nobody asked for it within its TTL");
    await this.source.stop?.(s.spec, at).catch(() => undefined);
  }
}
