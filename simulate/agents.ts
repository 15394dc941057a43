/**
 * Simulated agents: every host of a simulated fleet answers snapshot requests (lib/agent/
 * protocol.ts) with heap profiles from the simulator's heap model (simulate/heap.ts), taken at
 * the event time the request carries. Simulated agents have no clock of their own, so a request
 * without `at` is refused; a host that is down at `at`, or a process that is not running then,
 * answers as a real agent would find it (unreachable, no-such-process).
 *
 *   const agents = await startSimulatedAgents(nc, sim.plan);
 *   …
 *   await agents.close();
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ProfileStore } from "../lib/agent/profiles.ts";
import { AgentSourceError } from "../lib/agent/protocol.ts";
import { type ProfileSource, SnapshotResponder, type TraceSpec } from "../lib/agent/responder.ts";
import type { HeapProfile } from "../lib/heap/profile.ts";
import { NoHeapProfileError, simulatedHeapProfile } from "./heap.ts";
import type { Plan } from "./plan.ts";

/** The profile source of one simulated host. */
export function simulatedProfileSource(plan: Plan, host: string): ProfileSource {
  const profile = (spec: TraceSpec, at: number | undefined): HeapProfile => {
    if (at === undefined)
      throw new AgentSourceError(
        "bad-request",
        "simulated agents have no clock: the request must carry `at` (run resin with --snapshot-clock event)",
      );
    try {
      return simulatedHeapProfile(
        plan,
        { host, component: spec.component, process: spec.process, pid: spec.pid },
        at,
      );
    } catch (err) {
      if (!(err instanceof NoHeapProfileError)) throw err;
      switch (err.reason) {
        case "host-down":
          throw new AgentSourceError("unreachable", err.message, { cause: err });
        case "kernel":
          throw new AgentSourceError("source-failed", err.message, { cause: err });
        default:
          throw new AgentSourceError("no-such-process", err.message, { cause: err });
      }
    }
  };
  return {
    // Starting checks that the process runs then; profiles need no sampling session.
    async start(spec, at) {
      profile(spec, at);
    },
    async collect(spec, at) {
      return profile(spec, at);
    },
  };
}

export interface SimulatedAgentsOptions {
  /** Only these hosts answer (default: every host of the plan). */
  hosts?: readonly string[];
  /** Traces per host at once. */
  maxTraces?: number;
  log?: Logger;
}

export interface SimulatedAgents {
  readonly responders: readonly SnapshotResponder[];
  /** Requests answered, profiles stored, refusals, over all hosts. */
  stats(): { requests: number; profilesStored: number; invalid: number; failed: number; expired: number };
  close(): Promise<void>;
}

/** One responder per simulated host, sharing one profile store. */
export async function startSimulatedAgents(
  nc: NatsConnection,
  plan: Plan,
  options: SimulatedAgentsOptions = {},
): Promise<SimulatedAgents> {
  const store = await ProfileStore.open(nc);
  const wanted = options.hosts === undefined ? undefined : new Set(options.hosts);
  const responders: SnapshotResponder[] = [];
  for (const h of plan.hosts) {
    if (wanted !== undefined && !wanted.has(h.id)) continue;
    responders.push(
      await SnapshotResponder.start(nc, {
        host: h.id,
        source: simulatedProfileSource(plan, h.id),
        os: h.os,
        store,
        // Traces of simulated agents age in event time; the wall-clock sweep has nothing to do.
        sweepIntervalMs: 60_000,
        ...(options.maxTraces !== undefined ? { maxTraces: options.maxTraces } : {}),
        ...(options.log !== undefined ? { log: options.log.child({ host: h.id }) } : {}),
      }),
    );
  }
  return {
    responders,
    stats() {
      const total = { requests: 0, profilesStored: 0, invalid: 0, failed: 0, expired: 0 };
      for (const r of responders)
        for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += r.stats[k];
      return total;
    },
    async close() {
      for (const r of responders) await r.close();
    },
  };
}
