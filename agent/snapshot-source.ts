/**
 * The agent's profile source for the snapshot protocol: routes each trace by the component of
 * the traced process to where its heap profiles come from (config `components[].snapshot`):
 *
 * - "pprof-http": a pprof heap endpoint such as Go's `/debug/pprof/heap`, fetched on each
 *   collect and decoded with lib/heap/pprof (Go samples the heap all the time, so start only
 *   checks that the endpoint answers);
 * - "node-inspector": a Node.js process through its inspector (agent/snapshot-node.ts);
 * - "none": refused.
 *
 * Without a setting a component is not profiled (refused as unreachable, saying what to
 * configure): opening a Node.js process's inspector (SIGUSR1) exposes a debugger on loopback,
 * which a host's owner should choose per service. A request is honoured only for a process the
 * agent itself puts in the requested component: resin cannot make the agent signal or profile an
 * arbitrary pid.
 */
import { AgentSourceError } from "../lib/agent/protocol.ts";
import type { ProfileSource, TraceSpec } from "../lib/agent/responder.ts";
import { activateInspector } from "../lib/heap/inspector.ts";
import { fromPprof } from "../lib/heap/pprof.ts";
import type { HeapProfile } from "../lib/heap/profile.ts";
import type { SnapshotSourceConfig } from "./config.ts";
import type { ProcessIdentity } from "./sampler.ts";
import { NodeSnapshotSource } from "./snapshot-node.ts";

export interface AgentProfileSourceOptions {
  /** The running process as the agent classifies it (Sampler.identify). */
  identify: (pid: number) => ProcessIdentity | undefined;
  /** Injected for tests. */
  fetch: typeof fetch;
  now: () => number;
}

type Route = Exclude<SnapshotSourceConfig, { kind: "none" }>;

/** The route of a process: its rule's setting, else none. */
export function routeOf(identity: ProcessIdentity): SnapshotSourceConfig {
  return identity.rule?.snapshot ?? { kind: "none" };
}

const withPid = (template: string, pid: number) => template.replaceAll("{pid}", String(pid));

export class AgentProfileSource implements ProfileSource {
  private readonly options: AgentProfileSourceOptions;
  /**
   * Each trace's route, and the start time of its process: with the pid, the process's identity
   * (a restart or a reused pid differs).
   */
  private readonly traces = new Map<string, { route: Route; startedAt: number }>();
  private readonly node: NodeSnapshotSource;

  constructor(options: Pick<AgentProfileSourceOptions, "identify"> & Partial<AgentProfileSourceOptions>) {
    this.options = { fetch, now: Date.now, ...options };
    this.node = new NodeSnapshotSource({
      inspectorFor: async (spec) => {
        const route = this.traces.get(spec.trace)?.route;
        return route?.kind === "node-inspector" && route.inspector !== undefined
          ? withPid(route.inspector, spec.pid)
          : await activateInspector(spec.pid);
      },
    });
  }

  async start(spec: TraceSpec): Promise<void> {
    const identity = this.options.identify(spec.pid);
    if (identity === undefined)
      throw new AgentSourceError("no-such-process", `no process ${spec.pid} watched on ${spec.host}`);
    if (identity.component !== spec.component)
      throw new AgentSourceError(
        "no-such-process",
        `process ${spec.pid} (${identity.comm}) is in component ${identity.component}, not ${spec.component}`,
      );
    const route = routeOf(identity);
    if (route.kind === "none")
      throw new AgentSourceError(
        "unreachable",
        `no heap profile source for component ${spec.component} (process ${identity.comm}): ` +
          'set components[].snapshot in the agent config ("pprof-http" with the URL of its heap profile, or "node-inspector")',
      );
    this.traces.set(spec.trace, { route, startedAt: identity.startedAt });
    try {
      if (route.kind === "pprof-http") await this.fetchPprof(route, spec, identity.startedAt);
      else await this.node.start(spec);
    } catch (err) {
      this.traces.delete(spec.trace);
      throw err;
    }
  }

  async collect(spec: TraceSpec): Promise<HeapProfile> {
    const trace = this.traces.get(spec.trace);
    if (trace === undefined) throw new AgentSourceError("unknown-trace", `no route for trace ${spec.trace}`);
    return trace.route.kind === "pprof-http"
      ? await this.fetchPprof(trace.route, spec, trace.startedAt)
      : await this.node.collect(spec);
  }

  async stop(spec: TraceSpec): Promise<void> {
    const route = this.traces.get(spec.trace)?.route;
    this.traces.delete(spec.trace);
    if (route?.kind === "node-inspector") await this.node.stop(spec);
  }

  async close(): Promise<void> {
    this.traces.clear();
    await this.node.close();
  }

  private async fetchPprof(
    route: Extract<Route, { kind: "pprof-http" }>,
    spec: TraceSpec,
    startedAt: number,
  ): Promise<HeapProfile> {
    const url = withPid(route.url, spec.pid);
    // A fixed-port endpoint answers for whichever process holds the port now: after the traced
    // process died and its supervisor started another, it would serve the new one's heap under
    // the old pid, and the leak would seem to vanish from the diagnosis.
    if (this.options.identify(spec.pid)?.startedAt !== startedAt)
      throw new AgentSourceError("no-such-process", `process ${spec.pid} is gone`);
    let body: Uint8Array;
    try {
      const res = await this.options.fetch(url, { signal: AbortSignal.timeout(route.timeoutMs) });
      body = new Uint8Array(await res.arrayBuffer());
      if (!res.ok)
        throw new AgentSourceError(
          "source-failed",
          `pprof endpoint ${url} of ${spec.process} (pid ${spec.pid}) answered ${res.status}`,
        );
    } catch (err) {
      if (err instanceof AgentSourceError) throw err;
      if (this.options.identify(spec.pid) === undefined)
        throw new AgentSourceError("no-such-process", `process ${spec.pid} is gone`, { cause: err });
      throw new AgentSourceError(
        "unreachable",
        `cannot fetch the heap profile of ${spec.process} (pid ${spec.pid}) from ${url}: ${reasonOf(err)}`,
        { cause: err },
      );
    }
    let profile: HeapProfile;
    try {
      profile = fromPprof(body);
    } catch (err) {
      throw new AgentSourceError(
        "source-failed",
        `${url} did not serve a pprof heap profile: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    // Go sets time_nanos; a producer that does not gets the agent's clock.
    return profile.takenAt > 0 ? profile : { ...profile, takenAt: this.options.now() };
  }
}

/** fetch's own message is a bare "fetch failed"; the reason (ECONNREFUSED, a DNS failure) is in its causes. */
function reasonOf(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e instanceof Error && parts.length < 3; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    parts.push(typeof code === "string" && !e.message.includes(code) ? `${e.message} (${code})` : e.message);
  }
  return parts.join(": ");
}
