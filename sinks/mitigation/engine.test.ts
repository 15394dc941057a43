/**
 * The mitigation engine on event time: every branch of the tree, escalation (failed step, leak
 * not resolved in time, leak returning), stop on resolve, the safety rules (allowlist, budgets,
 * heap traces, one command per host), priority, and a restore that continues the same way.
 */
import { describe, expect, it } from "vitest";
import type { MitigateReply, MitigateRequest, MitigationAction } from "../../lib/agent/mitigate-protocol.ts";
import type { SuspectEvent } from "../../schemas/suspect.ts";
import { parseMitigationConfig } from "./config.ts";
import { type EngineState, type HostFacts, MitigationEngine, targetKey } from "./engine.ts";

const T0 = 1_767_571_200_000;
const MIN = 60_000;
const HOUR = 3_600_000;
const ALL = { components: ["*"] };
const ALLOW_ALL = Object.fromEntries(
  (["restart-process", "restart-service", "migrate-vms", "soft-reboot", "reboot", "custom"] as const).map(
    (a) => [a, ALL],
  ),
);

function suspect(over: Partial<SuspectEvent> = {}): SuspectEvent {
  const host = over.host ?? "h1";
  const component = over.component ?? "api";
  const process = over.process ?? component;
  const pid = over.pid ?? 42;
  return {
    v: 1,
    id: `${component}/${host}/${process}/${pid}`,
    state: "open",
    kind: "process",
    component,
    host,
    process,
    pid,
    start: T0 - 10 * HOUR,
    end: T0,
    detectedAt: T0,
    severity: 5,
    pattern: "steady",
    growthBytesPerHour: 20 * 1048576,
    ...over,
  };
}

function host(over: Partial<HostFacts> = {}): HostFacts {
  return {
    host: "h1",
    at: T0,
    region: "west",
    cluster: "c1",
    vms: 4,
    usedBytes: 50,
    totalBytes: 100,
    processes: { api: 1 },
    ...over,
  };
}

const done = (cmd: MitigateRequest, at: number): MitigateReply => ({
  v: 1,
  ok: true,
  id: cmd.id,
  host: cmd.host,
  action: cmd.action,
  outcome: cmd.dryRun ? "dry-run" : "done",
  startedAt: at,
  finishedAt: at,
});

const failed = (cmd: MitigateRequest, code = "failed"): MitigateReply => ({
  v: 1,
  ok: false,
  id: cmd.id,
  host: cmd.host,
  action: cmd.action,
  error: { code, message: `${cmd.action} went wrong` },
});

const actions = (cmds: MitigateRequest[]): MitigationAction[] => cmds.map((c) => c.action);
const events = (e: MitigationEngine) =>
  e.drainAudit().map((a) => `${a.event}${a.action ? ` ${a.action}` : ""}`);

function engine(config: Parameters<typeof parseMitigationConfig>[0] = {}) {
  return new MitigationEngine({ allow: ALLOW_ALL, ...(config as object) });
}

describe("decision tree", () => {
  it("process leak, one process: restart the process; restart-service does not apply, so it gives up", () => {
    const e = engine();
    e.observeHost(host());
    e.onSuspect(suspect());
    const [first] = e.decide(T0);
    expect(first).toMatchObject({ action: "restart-process", pid: 42, component: "api", dryRun: true });
    expect(first!.expiresAt - first!.issuedAt).toBe(15 * MIN);
    e.onResult(done(first!, T0 + MIN), T0 + MIN);
    expect(e.decide(T0 + 6 * HOUR + MIN)).toEqual([]);
    expect(events(e)).toEqual([
      "skipped custom",
      "issued restart-process",
      "succeeded restart-process",
      "escalated restart-service",
      "skipped restart-service",
      "gave-up",
    ]);
    expect(e.target("h1", "api", "api")?.status).toBe("gave-up");
  });

  it("process leak, several processes: restart the process, then the service", () => {
    const e = engine();
    e.observeHost(host({ processes: { api: 3 } }));
    e.onSuspect(suspect());
    const [first] = e.decide(T0);
    e.onResult(done(first!, T0), T0);
    expect(actions(e.decide(T0 + 6 * HOUR))).toEqual(["restart-service"]);
  });

  it("a team's registered action comes first", () => {
    const e = engine({ customActions: { api: { script: "flush-cache" } } });
    e.observeHost(host());
    e.onSuspect(suspect());
    const [first] = e.decide(T0);
    expect(first).toMatchObject({ action: "custom", script: "flush-cache" });
    e.onResult(failed(first!), T0 + MIN);
    expect(actions(e.decide(T0 + MIN))).toEqual(["restart-process"]);
  });

  it("kernel leak with VMs: migrate, then soft reboot at once; a failed soft reboot leads to a reboot", () => {
    const e = engine();
    e.observeHost(host({ processes: { kernel: 1 } }));
    e.onSuspect(suspect({ kind: "kernel", component: "kernel", process: "slab", pid: 0 }));
    const [migrate] = e.decide(T0);
    expect(migrate).toMatchObject({ action: "migrate-vms", component: "kernel" });
    expect(migrate!.pid).toBeUndefined();
    e.onResult(done(migrate!, T0 + 10 * MIN), T0 + 10 * MIN);
    const [soft] = e.decide(T0 + 10 * MIN);
    expect(soft?.action).toBe("soft-reboot");
    e.onResult(failed(soft!), T0 + 20 * MIN);
    expect(actions(e.decide(T0 + 20 * MIN))).toEqual(["reboot"]);
  });

  it("kernel leak: a soft reboot that worked is not followed by a full reboot when the leak returns", () => {
    const e = engine({ verifyMs: 2 * HOUR });
    e.observeHost(host());
    const kernel = suspect({ kind: "kernel", component: "kernel", process: "slab", pid: 0 });
    e.onSuspect(kernel);
    e.onResult(done(e.decide(T0)[0]!, T0), T0);
    e.onResult(done(e.decide(T0)[0]!, T0), T0);
    e.onSuspect({ ...kernel, state: "resolved", detectedAt: T0 + HOUR });
    e.onSuspect({ ...kernel, id: "kernel/h1/slab/0#2", detectedAt: T0 + 20 * HOUR });
    expect(e.decide(T0 + 20 * HOUR)).toEqual([]);
    expect(events(e).slice(-6)).toEqual([
      "succeeded soft-reboot",
      "resolved",
      "returned soft-reboot",
      "escalated reboot",
      "skipped reboot",
      "gave-up",
    ]);
    expect(e.target("h1", "kernel", "slab")?.status).toBe("gave-up");
  });

  it("kernel leak on an empty host: reboot", () => {
    const e = engine();
    e.observeHost(host({ vms: 0 }));
    e.onSuspect(suspect({ kind: "kernel", component: "kernel", process: "slab", pid: 0 }));
    expect(actions(e.decide(T0))).toEqual(["reboot"]);
  });

  it("kernel leak on a host whose VM count is unknown: migrate first", () => {
    const e = engine();
    e.onSuspect(suspect({ kind: "kernel", component: "kernel", process: "slab", pid: 0 }));
    expect(actions(e.decide(T0))).toEqual(["migrate-vms"]);
  });

  it("rules come from data: the first matching rule wins", () => {
    const e = engine({
      rules: [
        { name: "db", match: { components: ["db"] }, ladder: [{ action: "restart-service" }] },
        { name: "rest", ladder: [{ action: "restart-process" }] },
      ],
    });
    e.onSuspect(suspect({ component: "db" }));
    e.onSuspect(suspect({ host: "h2" }));
    expect(e.decide(T0).map((c) => `${c.host} ${c.action}`)).toEqual([
      "h1 restart-service",
      "h2 restart-process",
    ]);
  });
});

describe("escalation", () => {
  it("a failed command escalates at once", () => {
    const e = engine();
    e.observeHost(host({ processes: { api: 2 } }));
    e.onSuspect(suspect());
    e.onResult(failed(e.decide(T0)[0]!), T0 + MIN);
    expect(actions(e.decide(T0 + MIN))).toEqual(["restart-service"]);
  });

  it("a command without a result past its expiry counts as failed", () => {
    const e = engine();
    e.observeHost(host({ processes: { api: 2 } }));
    e.onSuspect(suspect());
    e.decide(T0);
    expect(e.decide(T0 + 20 * MIN)).toEqual([]);
    expect(actions(e.decide(T0 + 31 * MIN))).toEqual(["restart-service"]);
    expect(e.drainAudit().find((a) => a.event === "failed")?.result?.code).toBe("no-result");
  });

  it("a step that worked but is not resolved within verifyMs escalates", () => {
    const e = engine({ verifyMs: 3 * HOUR });
    e.observeHost(host({ processes: { api: 2 } }));
    e.onSuspect(suspect());
    e.onResult(done(e.decide(T0)[0]!, T0), T0);
    expect(e.decide(T0 + 3 * HOUR - 1)).toEqual([]);
    expect(actions(e.decide(T0 + 3 * HOUR))).toEqual(["restart-service"]);
  });

  it("the leak returning under a new pid (new suspect id) escalates, whether or not the old one was resolved first", () => {
    for (const resolveFirst of [false, true]) {
      const e = engine();
      e.observeHost(host({ processes: { api: 2 } }));
      e.onSuspect(suspect());
      e.onResult(done(e.decide(T0)[0]!, T0), T0);
      if (resolveFirst) e.onSuspect(suspect({ state: "resolved", detectedAt: T0 + HOUR }));
      e.onSuspect(suspect({ pid: 43, detectedAt: T0 + 2 * HOUR }));
      expect(actions(e.decide(T0 + 2 * HOUR))).toEqual(["restart-service"]);
      expect(events(e)).toContain("returned restart-process");
    }
  });

  it("a new leak long after the return window starts again from the first step", () => {
    const e = engine({ returnWindowMs: 24 * HOUR });
    e.observeHost(host({ processes: { api: 2 } }));
    e.onSuspect(suspect());
    e.onResult(done(e.decide(T0)[0]!, T0), T0);
    e.onSuspect(suspect({ state: "resolved", detectedAt: T0 + HOUR }));
    e.onSuspect(suspect({ pid: 50, detectedAt: T0 + 30 * HOUR }));
    expect(actions(e.decide(T0 + 30 * HOUR))).toEqual(["restart-process"]);
  });

  it("gives up after the last step and audits it", () => {
    const e = engine({ rules: [{ name: "only", ladder: [{ action: "restart-process" }] }] });
    e.onSuspect(suspect());
    e.onResult(failed(e.decide(T0)[0]!), T0);
    expect(e.decide(T0 + HOUR)).toEqual([]);
    const gaveUp = e.drainAudit().find((a) => a.event === "gave-up");
    expect(gaveUp?.reason).toMatch(/no step is left: a human must look/);
    expect(e.stats.gaveUp).toBe(1);
  });
});

describe("stop on resolve", () => {
  it("a suspect resolved before its command is issued gets no command", () => {
    const e = engine();
    e.setTracing("h1", true);
    e.onSuspect(suspect());
    expect(e.decide(T0)).toEqual([]);
    e.onSuspect(suspect({ state: "resolved", detectedAt: T0 + HOUR }));
    e.setTracing("h1", false);
    expect(e.decide(T0 + HOUR)).toEqual([]);
    expect(e.target("h1", "api", "api")?.status).toBe("resolved");
  });

  it("resolved while verifying: no escalation when the verification period ends", () => {
    const e = engine({ verifyMs: HOUR });
    e.observeHost(host({ processes: { api: 2 } }));
    e.onSuspect(suspect());
    e.onResult(done(e.decide(T0)[0]!, T0), T0);
    e.onSuspect(suspect({ state: "resolved", detectedAt: T0 + 30 * MIN }));
    expect(e.decide(T0 + 5 * HOUR)).toEqual([]);
    expect(events(e)).toEqual([
      "skipped custom",
      "issued restart-process",
      "succeeded restart-process",
      "resolved",
    ]);
  });

  it("resolved while a command is out: its failure is audited but does not escalate", () => {
    const e = engine();
    e.observeHost(host({ processes: { api: 2 } }));
    e.onSuspect(suspect());
    const [cmd] = e.decide(T0);
    e.onSuspect(suspect({ state: "resolved", detectedAt: T0 + MIN }));
    e.onResult(failed(cmd!), T0 + 2 * MIN);
    expect(e.decide(T0 + 3 * MIN)).toEqual([]);
    expect(events(e).slice(-2)).toEqual(["resolved", "failed restart-process"]);
  });
});

describe("safety", () => {
  it("dry run by default; live only when configured", () => {
    const dry = engine();
    dry.onSuspect(suspect());
    expect(dry.decide(T0)[0]?.dryRun).toBe(true);
    const live = engine({ dryRun: false });
    live.onSuspect(suspect());
    expect(live.decide(T0)[0]?.dryRun).toBe(false);
  });

  it("allowlists are opt-in: a step not allowed is skipped, in dry runs too", () => {
    const e = new MitigationEngine({
      allow: { "restart-service": { components: ["api"], clusters: ["c1"] } },
    });
    e.observeHost(host({ processes: { api: 2 } }));
    e.onSuspect(suspect());
    expect(actions(e.decide(T0))).toEqual(["restart-service"]);
    expect(e.drainAudit().find((a) => a.action === "restart-process")?.reason).toMatch(/not allowlisted/);

    const elsewhere = new MitigationEngine({
      allow: { "restart-service": { components: ["api"], clusters: ["c1"] } },
    });
    elsewhere.observeHost(host({ cluster: "c2", processes: { api: 2 } }));
    elsewhere.onSuspect(suspect());
    expect(elsewhere.decide(T0)).toEqual([]);
    expect(elsewhere.target("h1", "api", "api")?.status).toBe("gave-up");
  });

  it("a preparation that is not allowed stops the ladder: no reboot with the VMs on the host", () => {
    const e = new MitigationEngine({ allow: { "soft-reboot": ALL, reboot: ALL } });
    e.observeHost(host());
    e.onSuspect(suspect({ kind: "kernel", component: "kernel", process: "slab", pid: 0 }));
    expect(e.decide(T0)).toEqual([]);
    expect(events(e)).toEqual(["gave-up migrate-vms"]);
  });

  it("budget: commands per cluster per hour; the rest wait (audited once) and go when the hour has passed", () => {
    const e = engine({ maxActionsPerClusterHour: 2 });
    for (const h of ["h1", "h2", "h3"]) {
      e.observeHost(host({ host: h }));
      e.onSuspect(suspect({ host: h }));
    }
    expect(e.decide(T0)).toHaveLength(2);
    expect(e.decide(T0 + 10 * MIN)).toEqual([]);
    expect(e.decide(T0 + 20 * MIN)).toEqual([]);
    const deferred = e.drainAudit().filter((a) => a.event === "deferred");
    expect(deferred).toHaveLength(1);
    expect(deferred[0]?.reason).toMatch(/cluster c1 had 2 commands in the last hour/);
    expect(e.stats.deferredClusterBudget).toBe(1);
    expect(e.decide(T0 + HOUR)).toHaveLength(1);
  });

  it("budget: reboots at once per region, freed when the result is in and the host settled", () => {
    const e = engine({ maxConcurrentRebootsPerRegion: 1, rebootSettleMs: 10 * MIN });
    for (const h of ["h1", "h2"]) {
      e.observeHost(host({ host: h, vms: 0 }));
      e.onSuspect(suspect({ host: h, kind: "kernel", component: "kernel", process: "slab", pid: 0 }));
    }
    const [first, ...rest] = e.decide(T0);
    expect(rest).toEqual([]);
    expect(e.decide(T0 + 5 * MIN)).toEqual([]);
    e.onResult(done(first!, T0 + 5 * MIN), T0 + 5 * MIN);
    expect(e.decide(T0 + 10 * MIN)).toEqual([]);
    expect(e.decide(T0 + 15 * MIN + 1).map((c) => c.host)).toEqual(["h2"]);
    expect(e.stats.deferredRebootBudget).toBe(1);
  });

  it("defers while a heap trace runs on the host", () => {
    const e = engine();
    e.onSuspect(suspect());
    e.setTracing("h1", true);
    expect(e.decide(T0)).toEqual([]);
    expect(e.drainAudit().at(-1)?.reason).toMatch(/heap trace/);
    e.setTracing("h1", false);
    expect(actions(e.decide(T0 + MIN))).toEqual(["restart-process"]);
  });

  it("a trace of another process waits only for steps that would end it", () => {
    const e = engine({
      rules: [{ name: "host", ladder: [{ action: "restart-process" }, { action: "reboot" }] }],
      allow: { "restart-process": { components: ["*"] }, reboot: { components: ["*"] } },
    });
    e.observeHost(host({ vms: 0 }));
    e.onSuspect(suspect());
    // The snapshot sink traces another component's process on h1: restarting api does not end it.
    e.setTracing(targetKey("h1", "db", "db"), true);
    const first = e.decide(T0);
    expect(actions(first)).toEqual(["restart-process"]);
    e.onResult(failed(first[0]!), T0 + MIN);
    // A reboot would end it: the next step waits for the trace.
    expect(e.decide(T0 + 2 * MIN)).toEqual([]);
    expect(e.drainAudit().at(-1)?.reason).toMatch(/heap trace/);
    e.setTracing(targetKey("h1", "db", "db"), false);
    expect(actions(e.decide(T0 + 3 * MIN))).toEqual(["reboot"]);
    // A trace of the target itself holds every step.
    const f = engine();
    f.onSuspect(suspect());
    f.setTracing(targetKey("h1", "api", "api"), true);
    expect(f.decide(T0)).toEqual([]);
  });

  it("one command per host at a time", () => {
    const e = engine();
    e.onSuspect(suspect());
    e.onSuspect(suspect({ component: "db" }));
    expect(e.decide(T0)).toHaveLength(1);
    expect(e.decide(T0 + MIN)).toEqual([]);
    expect(e.stats.deferredHostBusy).toBe(1);
  });

  it("command ids are stable for the same decision and differ between steps", () => {
    const run = () => {
      const e = engine();
      e.observeHost(host({ processes: { api: 2 } }));
      e.onSuspect(suspect());
      const a = e.decide(T0)[0]!;
      e.onResult(failed(a), T0);
      return [a.id, e.decide(T0)[0]!.id];
    };
    const [a, b] = run();
    expect(run()).toEqual([a, b]);
    expect(a).not.toBe(b);
  });

  it("suspects below minSeverity are left alone (audited)", () => {
    const e = engine({ minSeverity: 6 });
    e.onSuspect(suspect({ severity: 5 }));
    expect(e.decide(T0)).toEqual([]);
    expect(events(e)).toEqual(["ignored"]);
  });
});

describe("priority", () => {
  it("hosts closest to running out of memory first, then leak size, then rate", () => {
    const e = engine({ maxActionsPerClusterHour: 1 });
    e.observeHost(host({ host: "roomy", usedBytes: 10, totalBytes: 100 }));
    e.observeHost(host({ host: "tight", usedBytes: 97, totalBytes: 100 }));
    e.onSuspect(suspect({ host: "roomy", growthBytesPerHour: 500 * 1048576 }));
    e.onSuspect(suspect({ host: "tight", growthBytesPerHour: 1048576 }));
    expect(e.decide(T0).map((c) => c.host)).toEqual(["tight"]);

    const bySize = engine({ maxActionsPerClusterHour: 1 });
    bySize.onSuspect(suspect({ host: "small", growthBytesPerHour: 1048576 }));
    bySize.onSuspect(suspect({ host: "large", growthBytesPerHour: 1048576, start: T0 - 100 * HOUR }));
    expect(bySize.decide(T0).map((c) => c.host)).toEqual(["large"]);
  });
});

describe("state", () => {
  it("a restored engine continues exactly as the original", () => {
    const script = (e: MitigationEngine, from: number, to: number) => {
      const out: string[] = [];
      for (let step = from; step < to; step++) {
        const at = T0 + step * 4 * HOUR;
        for (const c of e.decide(at)) {
          out.push(`${step} ${c.id} ${c.action}`);
          e.onResult(step % 2 === 0 ? failed(c) : done(c, at), at);
        }
      }
      return out;
    };
    const config = { maxActionsPerClusterHour: 1 };
    const a = engine(config);
    const b = engine(config);
    for (const e of [a, b]) {
      e.observeHost(host({ processes: { api: 3 } }));
      e.observeHost(host({ host: "h2", vms: 0 }));
      e.onSuspect(suspect());
      e.onSuspect(suspect({ host: "h2", kind: "kernel", component: "kernel", process: "slab", pid: 0 }));
    }
    const full = script(a, 0, 6);
    const head = script(b, 0, 2);
    const state = JSON.parse(JSON.stringify(b.snapshot())) as EngineState;
    const restored = MitigationEngine.restore({ allow: ALLOW_ALL, ...config }, state);
    expect([...head, ...script(restored, 2, 6)]).toEqual(full);
    // h2's reboot waited for the cluster budget, and is issued by the restored engine.
    expect(full.map((line) => line.split(" ")[2])).toEqual(["restart-process", "restart-service", "reboot"]);
    // Undrained audit records travel with the state.
    expect(restored.drainAudit()).toEqual(a.drainAudit());
    expect(restored.stats).toEqual(a.stats);
  });

  it("refuses a state of another version", () => {
    expect(() => MitigationEngine.restore({}, { v: 2 })).toThrow(/version 2/);
  });
});

describe("config", () => {
  it("names the bad field and value", () => {
    expect(() => parseMitigationConfig({ rules: [{ name: "x", ladder: [{ action: "explode" }] }] })).toThrow(
      /rules\[0\]\.ladder\[0\]\.action.*"explode"/,
    );
    expect(() => parseMitigationConfig({ verifyMs: -1 })).toThrow(/verifyMs/);
    expect(() => parseMitigationConfig({ surprise: 1 })).toThrow(/surprise/);
  });
});
