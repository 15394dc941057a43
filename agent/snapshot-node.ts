/**
 * The agent's profile source for Node.js processes: heap sampling through the process's inspector
 * (lib/heap/inspector.ts). `start` connects and starts V8's sampling heap profiler, `collect`
 * takes the live sampled memory per stack, `stop` ends sampling and disconnects; nothing is
 * installed in the target, and a trace that is dropped (agent exit, TTL) ends with the inspector
 * session, which stops the sampling in the target.
 *
 *   const source = new NodeSnapshotSource({ inspectorFor: async (t) => urlOf(t.pid) });
 *   await SnapshotResponder.start(nc, { host, source, os: `${os.type()} ${os.release()}` });
 */

import { AgentSourceError } from "../lib/agent/protocol.ts";
import type { ProfileSource, TraceSpec } from "../lib/agent/responder.ts";
import {
  activateInspector,
  InspectorClosedError,
  InspectorHeapTracer,
  type InspectorHeapTracerOptions,
  InspectorUnreachableError,
} from "../lib/heap/inspector.ts";
import type { HeapProfile } from "../lib/heap/profile.ts";

export interface NodeSnapshotSourceOptions {
  /**
   * The inspector of the traced process: its WebSocket URL or `host:port`. The default opens the
   * inspector of a process started without `--inspect` by SIGUSR1, on 127.0.0.1:9229 (so one
   * such process at a time per host; give processes their own `--inspect-port` and map pids to
   * ports here otherwise).
   */
  inspectorFor: (spec: TraceSpec) => Promise<string>;
  /** Tracer settings; the sampling interval comes from each start request. */
  tracer: Partial<Omit<InspectorHeapTracerOptions, "samplingIntervalBytes">>;
  /** Whether a pid exists on this host (a trace of a gone process fails as no-such-process). */
  processExists: (pid: number) => boolean;
}

export const DEFAULT_NODE_SNAPSHOT_SOURCE_OPTIONS: NodeSnapshotSourceOptions = {
  inspectorFor: (spec) => activateInspector(spec.pid),
  tracer: {},
  processExists: (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      // EPERM: it exists, it is just not ours to signal.
      return (err as NodeJS.ErrnoException).code === "EPERM";
    }
  },
};

export class NodeSnapshotSource implements ProfileSource {
  private readonly options: NodeSnapshotSourceOptions;
  private readonly tracers = new Map<string, InspectorHeapTracer>();

  constructor(options: Partial<NodeSnapshotSourceOptions> = {}) {
    this.options = { ...DEFAULT_NODE_SNAPSHOT_SOURCE_OPTIONS, ...options };
  }

  async start(spec: TraceSpec): Promise<void> {
    this.requireProcess(spec);
    // A trace started again (the agent lost its reply) gets a fresh session.
    await this.drop(spec.trace);
    let tracer: InspectorHeapTracer;
    try {
      const url = await this.options.inspectorFor(spec);
      tracer = await InspectorHeapTracer.connect(url, {
        ...this.options.tracer,
        samplingIntervalBytes: spec.samplingIntervalBytes,
      });
    } catch (err) {
      throw this.explain(spec, err as Error, "cannot reach the inspector of");
    }
    try {
      await tracer.start();
    } catch (err) {
      await tracer.close().catch(() => undefined);
      throw this.explain(spec, err as Error, "cannot start heap sampling in");
    }
    this.tracers.set(spec.trace, tracer);
  }

  async collect(spec: TraceSpec): Promise<HeapProfile> {
    const tracer = this.tracers.get(spec.trace);
    if (tracer === undefined)
      throw new AgentSourceError("unknown-trace", `no inspector session for trace ${spec.trace}`);
    try {
      return await tracer.snapshot();
    } catch (err) {
      if (err instanceof InspectorClosedError) await this.drop(spec.trace);
      throw this.explain(spec, err as Error, "cannot take a heap profile of");
    }
  }

  async stop(spec: TraceSpec): Promise<void> {
    const tracer = this.tracers.get(spec.trace);
    if (tracer === undefined) return;
    this.tracers.delete(spec.trace);
    try {
      await tracer.stop();
    } catch {
      // Closing the session below ends the sampling anyway.
    } finally {
      await tracer.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    for (const trace of [...this.tracers.keys()]) await this.drop(trace);
  }

  private async drop(trace: string): Promise<void> {
    const tracer = this.tracers.get(trace);
    this.tracers.delete(trace);
    await tracer?.close().catch(() => undefined);
  }

  private requireProcess(spec: TraceSpec): void {
    if (!this.options.processExists(spec.pid))
      throw new AgentSourceError(
        "no-such-process",
        `no process ${spec.pid} (${spec.process}) on ${spec.host}`,
      );
  }

  private explain(spec: TraceSpec, err: Error, doing: string): AgentSourceError {
    const what = `${doing} ${spec.process} (pid ${spec.pid}): ${err.message}`;
    if (!this.options.processExists(spec.pid))
      return new AgentSourceError("no-such-process", `process ${spec.pid} is gone; ${what}`, { cause: err });
    if (err instanceof InspectorUnreachableError || err instanceof InspectorClosedError)
      return new AgentSourceError("unreachable", what, { cause: err });
    return new AgentSourceError("source-failed", what, { cause: err });
  }
}
