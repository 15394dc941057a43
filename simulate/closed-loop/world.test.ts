import { describe, expect, it } from "vitest";
import { MITIGATE_PROTOCOL_VERSION, type MitigateRequest } from "../../lib/agent/mitigate-protocol.ts";
import { presetConfig } from "../config.ts";
import { HOUR, MINUTE } from "../duration.ts";
import { emptyDeliveryStats, generate } from "../engine.ts";
import { buildPlan, type HostPlan, leakedBytesAt, lifeAt, type Plan } from "../plan.ts";
import { validateConfig } from "../scenario.ts";
import { ClosedLoopConfig } from "./config.ts";
import { vmCapacity, World } from "./world.ts";

const GiB = 2 ** 30;

/** A quiet fleet of one cluster with one fast process leak on host 0 from 1 h on. */
function fleet(): Plan {
  const c = presetConfig("quiet");
  c.hosts = 6;
  c.days = 1;
  c.clusterSize = [10, 10];
  c.faults = { lost: 0, duplicated: 0, late: 0, jitterMs: 0 };
  c.events.hostDeaths.share = 0;
  c.events.crashesPerProcessPerDay = 0;
  c.events.deploysPerDay = 0;
  c.vms.emptyShare = 0;
  c.leaks.explicit = [{ host: 0, component: "vm-agent", pattern: "steady", at: "1h", bytesPerHour: 1 * GiB }];
  return buildPlan(validateConfig(c));
}

function command(
  h: HostPlan,
  action: MitigateRequest["action"],
  t: number,
  extra: Partial<MitigateRequest> = {},
) {
  return {
    v: MITIGATE_PROTOCOL_VERSION,
    id: `test:${h.id}:${action}:${t}`,
    host: h.id,
    action,
    component: "vm-agent",
    process: "vm-agent",
    suspect: "s",
    reason: "test",
    issuedAt: t,
    expiresAt: t + 15 * MINUTE,
    dryRun: false,
    ...extra,
  } as MitigateRequest;
}

const config = (over: Partial<ClosedLoopConfig> = {}) => ClosedLoopConfig.parse({ headroom: 0.02, ...over });

describe("world model", () => {
  it("packs hosts to the capacity the headroom leaves", () => {
    const plan = fleet();
    const h = plan.hosts[0]!;
    const w = new World(plan, config());
    const cap = vmCapacity(h, 0.02);
    expect(cap).toBeGreaterThan(0);
    expect(w.vmsOn(h.id)).toBe(cap);
    expect(vmCapacity(h, 0.2)).toBeLessThan(cap);
    // The sold VMs and the components' peak leave at least the headroom free.
    expect(cap * h.vmBytes).toBeLessThan(h.totalBytes * 0.98);
  });

  it("a host over capacity loses a VM to the OOM killer: a low-memory VM reboot, healed on a peer", () => {
    const plan = fleet();
    const h = plan.hosts[0]!;
    const w = new World(plan, config());
    const before = w.vmsOn(h.id);
    w.advance(plan.start);
    w.observe(h, plan.start, h.totalBytes + 100 * 2 ** 20, before);
    expect(w.counters.lowMemoryVmReboots).toBe(1);
    expect(w.vmsOn(h.id)).toBe(before - 1);
    expect(w.counters.relocatedLanded + w.counters.relocatedLeftFleet).toBe(1);
    expect(h.vmCount[h.vmCount.length - 1]).toBe(before - 1);
    // Enough free memory: nothing happens.
    w.observe(h, plan.start + 5 * MINUTE, h.totalBytes - 4 * GiB, before - 1);
    expect(w.counters.lowMemoryVmReboots).toBe(1);
  });

  it("kills the leaking process instead when it is larger than a VM (its leak starts over)", () => {
    const plan = fleet();
    const h = plan.hosts[0]!;
    const p = h.comps.find((c) => c.name === "vm-agent")!.procs[0]!;
    const w = new World(plan, config());
    const t = plan.start + 30 * HOUR; // 29 GiB leaked, more than any VM (4..16 GiB)
    w.advance(t);
    expect(leakedBytesAt(p, t)).toBeGreaterThan(16 * GiB);
    w.observe(h, t, h.totalBytes, w.vmsOn(h.id));
    expect(w.counters.oomProcessKills).toBe(1);
    expect(w.counters.oomKillsOfLeakers).toBe(1);
    expect(w.counters.lowMemoryVmReboots).toBe(0);
    expect(leakedBytesAt(p, t + HOUR)).toBeLessThan(1.2 * GiB);
  });

  it("fails a placement the books allow when the host's memory is short: an allocation error", () => {
    const plan = fleet();
    const h = plan.hosts[0]!;
    const w = new World(plan, config({ refillHours: 0.01 }));
    const cap = w.vmsOn(h.id);
    w.advance(plan.start);
    // A VM killed for low memory frees a slot in the books; the memory is still short.
    w.observe(h, plan.start, h.totalBytes - 100 * 2 ** 20, cap);
    expect(w.vmsOn(h.id)).toBe(cap - 1);
    w.observe(h, plan.start + 1, h.totalBytes - h.vmBytes, cap - 1);
    w.advance(plan.start + 5 * MINUTE);
    expect(w.counters.placementRequests).toBeGreaterThanOrEqual(1);
    expect(w.counters.placementFailures).toBe(w.counters.placementRequests);
    expect(w.vmsOn(h.id)).toBe(cap - 1);
    // With memory to spare the slot is filled.
    w.observe(h, plan.start + 6 * MINUTE, h.totalBytes - 3 * h.vmBytes, cap - 1);
    w.advance(plan.start + 10 * MINUTE);
    expect(w.vmsOn(h.id)).toBe(cap);
  });

  it("restart-process gives the process a new pid; the leaked memory starts over; a stale pid is refused", () => {
    const plan = fleet();
    const h = plan.hosts[0]!;
    const p = h.comps.find((c) => c.name === "vm-agent")!.procs[0]!;
    const w = new World(plan, config());
    const t = plan.start + 10 * HOUR;
    w.advance(t);
    const pid = lifeAt(p, t).pid;
    expect(w.execute(command(h, "restart-process", t, { pid: pid + 1 }), t)).toBe("refused");
    expect(w.execute(command(h, "restart-process", t, { pid }), t)).toBe("done");
    const after = t + 2 * MINUTE;
    expect(lifeAt(p, after).pid).not.toBe(pid);
    expect(leakedBytesAt(p, t)).toBeGreaterThan(8 * GiB);
    expect(leakedBytesAt(p, after)).toBeLessThan(0.1 * GiB);
    const replies = w.advance(t + 5 * MINUTE).map((r) => r.reply);
    expect(replies).toHaveLength(2);
    expect(replies[0]).toMatchObject({ ok: false, error: { code: "no-such-process", field: "pid" } });
    expect(replies[1]).toMatchObject({ ok: true, outcome: "done", action: "restart-process" });
    expect(w.executed[1]!.targetLeaking).toBe(true);
  });

  it("a reboot takes the host down (no telemetry), reboots its VMs and restarts every process, kernel included", () => {
    const plan = fleet();
    const h = plan.hosts[1]!;
    const w = new World(plan, config());
    const t = plan.start + 6 * HOUR;
    w.advance(t);
    const vms = w.vmsOn(h.id);
    expect(w.execute(command(h, "soft-reboot", t), t)).toBe("done");
    expect(w.counters.vmRebootsByMitigation).toBe(vms);
    expect(w.isDown(h, t + 5 * MINUTE)).toBe(true);
    expect(w.isDown(h, t + 10 * MINUTE)).toBe(false);
    for (const c of h.comps)
      for (const p of c.procs) expect(lifeAt(p, t + 10 * MINUTE).startedAt).toBe(t + 10 * MINUTE);
    // A host that is down answers nothing.
    expect(w.execute(command(h, "reboot", t + MINUTE, { id: "x" }), t + MINUTE)).toBe("unanswered");
    expect(w.executed.every((e) => e.leakKindsOnHost.length === 0)).toBe(true);
    // The generator sends nothing from the host while it is down.
    const seen: number[] = [];
    for (const _ of generate(plan, { build: () => 0 }, emptyDeliveryStats(), undefined, (host, ts) => {
      if (host === h) seen.push(ts);
    })) {
      // samples only
    }
    expect(seen.some((ts) => ts >= t && ts < t + 10 * MINUTE)).toBe(false);
    expect(seen.some((ts) => ts >= t + 10 * MINUTE)).toBe(true);
  });

  it("migrate-vms moves the VMs away over time, closes the host to placements and replies when empty", () => {
    const plan = fleet();
    const h = plan.hosts[2]!;
    const w = new World(plan, config({ refillHours: 0.01 }));
    const t = plan.start + 2 * HOUR;
    w.advance(t);
    const vms = w.vmsOn(h.id);
    expect(vms).toBeGreaterThan(4);
    expect(w.execute(command(h, "migrate-vms", t), t)).toBe("done");
    expect(w.vmsOn(h.id)).toBe(vms);
    // One command per host at a time: another while the migration runs is refused as busy.
    expect(w.execute(command(h, "soft-reboot", t + MINUTE), t + MINUTE)).toBe("refused");
    expect(w.executed.at(-1)?.code).toBe("busy");
    expect(w.advance(t + MINUTE).map((r) => r.reply)).toMatchObject([{ ok: false, error: { code: "busy" } }]);
    const mid = w.advance(t + 2 * MINUTE);
    expect(w.vmsOn(h.id)).toBe(vms - 4);
    expect(mid).toHaveLength(0);
    let replies: ReturnType<World["advance"]> = [];
    for (let k = 1; k <= 40 && replies.length === 0; k++)
      replies = w.advance(t + 2 * MINUTE + k * 5 * MINUTE);
    expect(w.vmsOn(h.id)).toBe(0);
    expect(w.counters.vmsMigrated).toBe(vms);
    expect(w.counters.relocatedLanded + w.counters.relocatedLeftFleet).toBe(vms);
    expect(replies[0]!.reply).toMatchObject({ ok: true, action: "migrate-vms", outcome: "done" });
    // Drained: the allocator places nothing there while the hold lasts.
    const requests = w.counters.placementRequests;
    w.advance(t + 4 * HOUR);
    expect(w.vmsOn(h.id)).toBe(0);
    expect(w.counters.placementRequests).toBeGreaterThanOrEqual(requests);
  });
});
