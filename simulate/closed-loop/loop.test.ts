import { describe, expect, it } from "vitest";
import { presetConfig } from "../config.ts";
import { runClosedLoop } from "./loop.ts";
import { renderClosedLoopHtml, renderClosedLoopTable } from "./report.ts";

const MiB = 2 ** 20;

/** A quiet fleet (hard negatives, faults) with one fast process leak and one fast kernel leak. */
function fleet() {
  const c = presetConfig("quiet");
  c.hosts = 16;
  c.days = 5;
  c.seed = 4;
  c.leaks.explicit = [
    { host: 3, component: "vm-agent", pattern: "steady", at: "1d", bytesPerHour: 400 * MiB },
    {
      host: 9,
      component: "kernel",
      process: "vmalloc",
      pattern: "steady",
      at: "1d",
      bytesPerHour: 300 * MiB,
    },
  ];
  return c;
}

describe("closed loop", () => {
  const r = runClosedLoop({ sim: fleet() });

  it("left alone, the leaks run hosts out of memory", () => {
    expect(r.without.counters.lowMemoryVmReboots).toBeGreaterThan(0);
    expect(r.without.counters.placementFailures).toBeGreaterThan(0);
    expect(r.with.counters.commandsReceived).toBeGreaterThan(0);
  });

  it("with resin in the loop there are fewer low-memory VM reboots and allocation errors", () => {
    expect(r.with.counters.lowMemoryVmReboots).toBeLessThan(r.without.counters.lowMemoryVmReboots);
    expect(r.with.allocationErrorRate).toBeLessThan(r.without.allocationErrorRate);
    expect(r.with.detection!.leaksDetected).toBe(2);
  });

  it("reboots and migrates only leaking hosts, restarts only leaking processes, within the budgets", () => {
    const t = r.with.truth!;
    expect(t.rebootsOfHealthyHosts).toBe(0);
    expect(t.disruptiveOnHealthyHosts).toBe(0);
    expect(t.restartsOfHealthyTargets).toBe(0);
    expect(r.with.budgets!.violations).toBe(0);
    // The kernel leak went through the kernel ladder: VMs moved first, then a (soft) reboot.
    expect(r.with.doneByAction!["migrate-vms"]).toBeGreaterThan(0);
    expect(r.with.doneByAction!["soft-reboot"]).toBeGreaterThan(0);
    expect(r.with.counters.vmRebootsByMitigation).toBe(0);
  });

  it("reports both runs: the table and plots with a line per run", () => {
    const table = renderClosedLoopTable(r);
    expect(table).toMatch(/low-memory VM reboots \/ 100k hosts \/ day/);
    expect(table).toMatch(/reboots of hosts that were not leaking\s+0\s+0\s+0/);
    const html = renderClosedLoopHtml(r);
    expect(html.match(/<polyline/g)).toHaveLength(6);
    expect(html).not.toMatch(/NaN|undefined/);
    expect(r.with.timeline.t).toEqual(r.without.timeline.t);
  });

  it("is deterministic", () => {
    const again = runClosedLoop({ sim: fleet() });
    expect(again.with.counters).toEqual(r.with.counters);
    expect(again.without.timeline).toEqual(r.without.timeline);
  });
});
