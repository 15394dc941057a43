import { describe, expect, it } from "vitest";
import { createSimulation, HOUR, presetConfig, type SimConfig, type Simulation } from "./index.ts";
import { apportionPatterns, type LeakPlan, leakCumulative } from "./plan.ts";
import { Rand } from "./rng.ts";

/** A quiet fleet without noise or delivery faults, so shapes can be checked exactly. */
function clean(edit: (c: SimConfig) => void = () => {}): Simulation {
  const c = presetConfig("quiet");
  c.hosts = 24;
  c.days = 2;
  c.faults = { lost: 0, duplicated: 0, late: 0, jitterMs: 0 };
  c.events.hostDeaths.share = 0;
  for (const comp of c.components) for (const p of comp.processes) p.noise = [0, 0];
  edit(c);
  return createSimulation(c);
}

type Point = { ts: number; bytes: number; vms: number; pid: number; startedAt: number };

function series(sim: Simulation, component: string, process: string): Map<string, Point[]> {
  const out = new Map<string, Point[]>();
  for (const m of sim.messages()) {
    if (m.component !== component) continue;
    for (const p of m.processes) {
      if (p.name !== process) continue;
      const list = out.get(m.host) ?? [];
      list.push({ ts: m.ts, bytes: p.bytes, vms: m.vms ?? 0, pid: p.pid, startedAt: p.startedAt! });
      out.set(m.host, list);
    }
  }
  return out;
}

function procPlan(sim: Simulation, host: string, component: string, process: string) {
  const h = sim.plan.hosts.find((x) => x.id === host)!;
  const c = h.comps.find((x) => x.name === component)!;
  return { host: h, comp: c, proc: c.procs.find((x) => x.name === process)! };
}

describe("healthy shapes", () => {
  it("storage-cache warms up after a restart: 1 - exp(-age/tau) to a +30-80% plateau", () => {
    const sim = clean((c) => {
      c.events.deploysPerDay = 0;
      c.events.configChange = null;
      c.events.crashesPerProcessPerDay = 0.5;
    });
    let checked = 0;
    for (const [host, points] of series(sim, "storage-cache", "storage-cache")) {
      const { proc } = procPlan(sim, host, "storage-cache", "storage-cache");
      expect(proc.warmGain).toBeGreaterThanOrEqual(0.3);
      expect(proc.warmGain).toBeLessThanOrEqual(0.8);
      expect(proc.warmTauMs).toBeGreaterThanOrEqual(1 * HOUR);
      expect(proc.warmTauMs).toBeLessThanOrEqual(4 * HOUR);
      for (let i = 1; i < points.length; i++) {
        const p = points[i]!;
        if (p.pid === points[i - 1]!.pid) continue;
        // A restart: the next 10 hours (if no other restart) rise monotonically towards the plateau.
        const life = points.slice(i).filter((x) => x.pid === p.pid && x.ts - p.startedAt <= 10 * HOUR);
        if (life.length < 110) continue;
        for (let j = 1; j < life.length; j++)
          expect(life[j]!.bytes).toBeGreaterThanOrEqual(life[j - 1]!.bytes);
        const expected = (age: number) =>
          proc.base * (1 + proc.warmGain * (1 - Math.exp(-age / proc.warmTauMs)));
        for (const x of [life[0]!, life[30]!, life[life.length - 1]!]) {
          expect(Math.abs(x.bytes - expected(x.ts - x.startedAt))).toBeLessThanOrEqual(1);
        }
        const rise = life[life.length - 1]!.bytes / life[0]!.bytes;
        expect(rise).toBeGreaterThan(1.2);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(0);
  });

  it("net-proxy follows a diurnal cycle peaking at the region's local afternoon", () => {
    const sim = clean((c) => {
      c.events.deploysPerDay = 0;
      c.events.configChange = null;
      c.events.crashesPerProcessPerDay = 0;
    });
    const day = 24 * HOUR;
    let checked = 0;
    for (const [host, points] of series(sim, "net-proxy", "net-proxy")) {
      const { host: h, proc } = procPlan(sim, host, "net-proxy", "net-proxy");
      const firstDay = points.filter((p) => p.ts < sim.start + day);
      const max = firstDay.reduce((a, b) => (b.bytes > a.bytes ? b : a));
      const min = firstDay.reduce((a, b) => (b.bytes < a.bytes ? b : a));
      const localPeak = (((max.ts + h.tzOffsetMs) % day) + day) % day;
      expect(localPeak / HOUR).toBeGreaterThanOrEqual(12.9);
      expect(localPeak / HOUR).toBeLessThanOrEqual(16.1);
      const amp = (max.bytes - min.bytes) / (max.bytes + min.bytes);
      expect(amp).toBeGreaterThanOrEqual(0.1 * 0.99);
      expect(amp).toBeLessThanOrEqual(0.25 * 1.01);
      expect(Math.abs(amp - proc.diurnalAmp)).toBeLessThan(0.005);
      expect(Math.abs((max.ts - min.ts) % day)).toBeGreaterThan(11 * HOUR);
      checked++;
    }
    expect(checked).toBeGreaterThan(10);
    // Peaks differ between regions (local time).
    const peaks = new Set<number>();
    for (const [host, points] of series(sim, "net-proxy", "net-proxy")) {
      const max = points.slice(0, 288).reduce((a, b) => (b.bytes > a.bytes ? b : a));
      peaks.add(Math.round((max.ts - sim.start) / (3 * HOUR)));
      void host;
    }
    expect(peaks.size).toBeGreaterThan(1);
  });

  it("host-api has a GC sawtooth: linear rises of 10-40% that drop back", () => {
    const sim = clean((c) => {
      c.intervalMs = 60_000;
      c.days = 1;
      c.events.deploysPerDay = 0;
      c.events.configChange = null;
      c.events.crashesPerProcessPerDay = 0;
    });
    let checked = 0;
    for (const [host, points] of series(sim, "host-api", "host-api")) {
      const { proc } = procPlan(sim, host, "host-api", "host-api");
      expect(proc.sawPeriodMs).toBeGreaterThanOrEqual(0.5 * HOUR);
      expect(proc.sawPeriodMs).toBeLessThanOrEqual(6 * HOUR);
      const drops = points.filter((p, i) => i > 0 && p.bytes < points[i - 1]!.bytes);
      const expectedDrops = (sim.end - sim.start) / proc.sawPeriodMs;
      expect(Math.abs(drops.length - expectedDrops)).toBeLessThanOrEqual(1);
      const lo = Math.min(...points.map((p) => p.bytes));
      const hi = Math.max(...points.map((p) => p.bytes));
      expect(lo).toBeGreaterThanOrEqual(Math.floor(proc.base));
      const swing = (hi - lo) / lo;
      expect(swing).toBeGreaterThan(proc.sawAmp * 0.85);
      expect(swing).toBeLessThanOrEqual(proc.sawAmp + 1e-6);
      checked++;
    }
    expect(checked).toBeGreaterThan(10);
  });

  it("vm-agent follows the VM count up and down", () => {
    const sim = clean((c) => {
      c.events.deploysPerDay = 0;
      c.events.configChange = null;
      c.events.crashesPerProcessPerDay = 0;
      c.vms.changesPerDay = [4, 8];
    });
    let ups = 0;
    let downs = 0;
    for (const [host, points] of series(sim, "vm-agent", "vm-agent")) {
      const { proc } = procPlan(sim, host, "vm-agent", "vm-agent");
      expect(proc.perVm).toBeGreaterThanOrEqual(40 * 2 ** 20);
      for (let i = 1; i < points.length; i++) {
        const a = points[i - 1]!;
        const b = points[i]!;
        if (b.vms > a.vms) ups++;
        if (b.vms < a.vms) downs++;
        expect(Math.abs(b.bytes - a.bytes - proc.perVm * (b.vms - a.vms))).toBeLessThanOrEqual(1);
      }
    }
    expect(ups).toBeGreaterThan(5);
    expect(downs).toBeGreaterThan(5);
    const empty = sim.plan.hosts.filter((h) => h.vmCount.every((n) => n === 0)).length;
    expect(empty).toBeLessThan(sim.plan.hosts.length * 0.3);
  });

  it("monitor-agent bursts 1-3 times a day by 20-100%, then comes back", () => {
    const sim = clean((c) => {
      c.days = 3;
      c.events.deploysPerDay = 0;
      c.events.configChange = null;
      c.events.crashesPerProcessPerDay = 0;
    });
    let bursts = 0;
    let hosts = 0;
    for (const [, points] of series(sim, "monitor-agent", "monitor-agent")) {
      hosts++;
      const base = Math.min(...points.map((p) => p.bytes));
      let inBurst = false;
      let startAt = 0;
      for (const p of points) {
        const up = p.bytes / base - 1;
        if (!inBurst && up > 0.15) {
          inBurst = true;
          startAt = p.ts;
          expect(up).toBeLessThanOrEqual(1.0001);
        } else if (inBurst && up < 0.001) {
          inBurst = false;
          bursts++;
          expect(p.ts - startAt).toBeLessThanOrEqual(2 * HOUR + 10 * 60_000);
        }
      }
    }
    const perHostDay = bursts / hosts / 3;
    expect(perHostDay).toBeGreaterThan(0.8);
    expect(perHostDay).toBeLessThan(3.5);
  });

  it("a fleet-wide config change steps one component up once by 10-30% within about an hour", () => {
    const sim = clean((c) => {
      c.events.deploysPerDay = 0;
      c.events.crashesPerProcessPerDay = 0;
      c.events.configChange = { component: "vm-agent", step: [0.1, 0.3], at: [0.5, 0.5], withinHours: 1 };
      c.vms.changesPerDay = [0, 0];
    });
    const change = sim.stats().configChange!;
    expect(change.component).toBe("vm-agent");
    let hosts = 0;
    for (const [, points] of series(sim, "vm-agent", "vm-agent")) {
      const steps = points.filter((p, i) => i > 0 && p.bytes !== points[i - 1]!.bytes);
      expect(steps.length).toBe(1);
      const i = points.indexOf(steps[0]!);
      const ratio = points[i]!.bytes / points[i - 1]!.bytes;
      expect(ratio).toBeGreaterThan(1.09);
      expect(ratio).toBeLessThan(1.32);
      expect(points[i]!.ts - change.at).toBeGreaterThanOrEqual(0);
      expect(points[i]!.ts - change.at).toBeLessThanOrEqual(HOUR + sim.intervalMs);
      hosts++;
    }
    expect(hosts).toBeGreaterThan(10);
  });

  it("rolling deploys restart a component by cluster with a new version", () => {
    const sim = clean((c) => {
      c.days = 3;
      c.events.deploysPerDay = 1;
      c.events.crashesPerProcessPerDay = 0;
    });
    const deploys = sim.stats().deploys;
    expect(deploys.length).toBe(3);
    const d = deploys[0]!;
    const versions = new Map<string, string[]>();
    for (const m of sim.messages()) {
      if (m.component !== d.component) continue;
      const list = versions.get(m.host) ?? [];
      if (list[list.length - 1] !== m.attrs!.version) list.push(m.attrs!.version!);
      versions.set(m.host, list);
    }
    const upgraded = [...versions.values()].filter((v) => v.includes(d.version)).length;
    expect(upgraded).toBeGreaterThan(0);
    expect(sim.stats().restarts.deploy).toBeGreaterThan(0);
  });
});

describe("leak growth", () => {
  const make = (pattern: "steady" | "stair" | "spike") => {
    const c = presetConfig("quiet");
    c.hosts = 20;
    c.days = 4;
    c.events.crashesPerProcessPerDay = 0;
    c.events.deploysPerDay = 0;
    c.events.hostDeaths.share = 0;
    c.leaks.explicit = [
      { host: 3, component: "kernel", process: "dentry", pattern, at: "6h", bytesPerHour: 10 * 2 ** 20 },
    ];
    const sim = createSimulation(c);
    return sim.plan.leaks[0]!.leak;
  };
  const hourly = (leak: LeakPlan, hours: number) =>
    Array.from(
      { length: hours },
      (_, i) =>
        leakCumulative(leak, leak.startTs + (i + 1) * HOUR) - leakCumulative(leak, leak.startTs + i * HOUR),
    );

  it("averages ratePerHour for every pattern", () => {
    for (const pattern of ["steady", "stair", "spike"] as const) {
      const leak = make(pattern);
      const total = leakCumulative(leak, leak.startTs + 72 * HOUR);
      expect(total / 72 / leak.ratePerHour).toBeGreaterThan(0.7);
      expect(total / 72 / leak.ratePerHour).toBeLessThan(1.4);
    }
  });

  it("steady grows every hour, stair has flat phases, spike rises within 1-2 samples", () => {
    const steady = hourly(make("steady"), 60);
    expect(steady.every((x) => x > 0)).toBe(true);
    const stair = hourly(make("stair"), 60);
    expect(stair.filter((x) => x === 0).length).toBeGreaterThan(15);
    expect(stair.filter((x) => x > 0).length).toBeGreaterThan(10);
    const spike = make("spike");
    for (let i = 0; i + 1 < spike.t.length; i++) {
      const dt = spike.t[i + 1]! - spike.t[i]!;
      const grow = spike.c[i + 1]! - spike.c[i]!;
      if (grow > 0) expect(dt).toBeLessThanOrEqual(2 * 5 * 60_000);
      else expect(dt).toBeGreaterThan(HOUR);
    }
  });

  it("apportions patterns so that every pattern appears once n allows", () => {
    const w = { steady: 0.55, stair: 0.25, spike: 0.2 };
    expect(apportionPatterns(3, w).sort()).toEqual(["spike", "stair", "steady"]);
    const ten = apportionPatterns(10, w);
    expect(ten.filter((p) => p === "steady").length).toBe(5);
    expect(ten.length).toBe(10);
    expect(apportionPatterns(1, w)).toEqual(["steady"]);
  });

  it("draws the same values for the same entity key regardless of order", () => {
    const a = new Rand(7, "host/x");
    new Rand(7, "host/y").float();
    const b = new Rand(7, "host/x");
    expect([a.float(), a.float()]).toEqual([b.float(), b.float()]);
    expect(new Rand(8, "host/x").float()).not.toBe(new Rand(7, "host/x").float());
  });
});
