import { describe, expect, it, vi } from "vitest";
import { type Frame, type HeapProfile, stackKey } from "../lib/heap/profile.ts";
import { checkTruth } from "../schemas/truth.ts";
import {
  heapCatalog,
  inverseNormal,
  leakStackOf,
  NoHeapProfileError,
  poissonQuantile,
  simulatedHeapProfile,
} from "./heap.ts";
import { versionChanges } from "./heap-stacks.ts";
import { createSimulation, resolveScenario } from "./index.ts";
import { healthyBytesAt, leakedBytesAt, lifeAt, type Plan } from "./plan.ts";

const HOUR = 3_600_000;
const HALF_HOUR = HOUR / 2;

// Seed 3 has a net-proxy-worker leak that restarts mid-leak and a storage-cache canary on 5 hosts.
const sim = createSimulation(resolveScenario("mixed", { hosts: 60, days: 2, seed: 3 }));
const plan = sim.plan;
const processLeaks = plan.leaks.filter((l) => l.leak.kind === "process");
const restarted = processLeaks.find((l) => l.proc.lives.some((x) => x.startedAt > l.leak.startTs))!;

function targetAt(p: Plan, host: string, component: string, process: string, at: number) {
  const proc = p.hosts
    .find((h) => h.id === host)!
    .comps.find((c) => c.name === component)!
    .procs.find((x) => x.name === process)!;
  return { target: { host, component, process, pid: lifeAt(proc, at).pid }, proc };
}

function bytesOf(profile: HeapProfile, keys: Set<string>): number {
  return profile.stacks.filter((s) => keys.has(stackKey(s.frames))).reduce((a, s) => a + s.bytes, 0);
}

/** 4σ of pprof's estimate of `bytes` sampled every 512 KiB, plus one sample. */
const samplingError = (bytes: number) => 4 * Math.sqrt(bytes * 600_000) + 600_000;

const total = (p: HeapProfile) => p.stacks.reduce((a, s) => a + s.bytes, 0);

describe("simulated heap profiles", () => {
  it("are a function of (plan, target, time): same profile again, in any order, from a fresh plan", () => {
    const l = processLeaks[0]!;
    const t1 = l.leak.startTs + 3 * HOUR;
    const t2 = t1 + HALF_HOUR;
    const a = targetAt(plan, l.host.id, l.comp.name, l.proc.name, t1).target;
    const p2 = simulatedHeapProfile(plan, a, t2);
    const p1 = simulatedHeapProfile(plan, a, t1);
    const fresh = createSimulation(resolveScenario("mixed", { hosts: 60, days: 2, seed: 3 })).plan;
    expect(simulatedHeapProfile(fresh, a, t1)).toEqual(p1);
    expect(simulatedHeapProfile(fresh, a, t2)).toEqual(p2);
    expect(simulatedHeapProfile(plan, a, t1)).toEqual(p1);
    expect(p1.takenAt).toBe(t1);
    expect(p1).not.toEqual(p2);
    const other = createSimulation(resolveScenario("mixed", { hosts: 60, days: 2, seed: 4 })).plan;
    expect(heapCatalog(other.config, "host-api", "host-api").stacks).not.toEqual(
      heapCatalog(plan.config, "host-api", "host-api").stacks,
    );
  });

  it("hold the leak in its own stack, exactly the leaked bytes, reset by a restart", () => {
    const l = restarted;
    const restart = l.proc.lives.find((x) => x.startedAt > l.leak.startTs)!;
    const leakKey = stackKey(leakStackOf(plan, l));
    const times = [-2, -1, 0.5, 1, 2, 3].map((h) => restart.startedAt + h * HOUR);
    const seen: number[] = [];
    let lastPid = -1;
    let lastSampled = 0;
    for (const at of times) {
      const { target } = targetAt(plan, l.host.id, l.comp.name, l.proc.name, at);
      if (at < restart.startedAt) expect(target.pid).not.toBe(restart.pid);
      else expect(target.pid).toBe(restart.pid);
      const exact = simulatedHeapProfile(plan, target, at, { sampling: false });
      expect(bytesOf(exact, new Set([leakKey]))).toBe(Math.round(leakedBytesAt(l.proc, at)));
      seen.push(bytesOf(exact, new Set([leakKey])));
      // Sampled, the leak's samples only accumulate within a life.
      const sampled = bytesOf(simulatedHeapProfile(plan, target, at), new Set([leakKey]));
      const life = target.pid;
      if (life === lastPid) expect(sampled).toBeGreaterThanOrEqual(lastSampled);
      lastPid = life;
      lastSampled = sampled;
      expect(Math.abs(sampled - leakedBytesAt(l.proc, at))).toBeLessThan(
        samplingError(leakedBytesAt(l.proc, at)),
      );
    }
    expect(seen[1]!).toBeGreaterThan(seen[0]!);
    expect(seen[2]!).toBeLessThan(seen[1]! / 2); // reset by the restart
    expect(seen[5]!).toBeGreaterThan(seen[4]!);
    expect(seen[4]!).toBeGreaterThan(seen[3]!);

    // Before the leak starts, the stack is not there at all.
    const before = l.leak.startTs - HOUR;
    const { target } = targetAt(plan, l.host.id, l.comp.name, l.proc.name, before);
    expect(bytesOf(simulatedHeapProfile(plan, target, before), new Set([leakKey]))).toBe(0);
  });

  it("sums to the process's memory: healthy (without GC garbage) plus leaked", () => {
    for (const l of processLeaks) {
      const at = l.leak.startTs + 5 * HOUR;
      const { target, proc } = targetAt(plan, l.host.id, l.comp.name, l.proc.name, at);
      const comp = l.comp;
      const memory = healthyBytesAt(l.host, comp, proc, at) + leakedBytesAt(proc, at);
      const exact = total(simulatedHeapProfile(plan, target, at, { sampling: false }));
      if (proc.sawAmp === 0) expect(Math.abs(exact - memory) / memory).toBeLessThan(1e-3);
      else expect(exact).toBeLessThanOrEqual(memory);
      const sampled = total(simulatedHeapProfile(plan, target, at));
      expect(Math.abs(sampled - exact)).toBeLessThan(samplingError(exact));
    }
  });

  it("has 30–80 stacks per process, caches that fill after a start and settle, and churn", () => {
    const l = processLeaks.find((x) => x.comp.name === "storage-cache" && x.leak.cause === "canary")!;
    const cat = heapCatalog(plan.config, l.comp.name, l.proc.name);
    expect(cat.stacks.length).toBeGreaterThanOrEqual(30);
    expect(cat.stacks.length).toBeLessThanOrEqual(80);
    expect(
      cat.stacks.every((s) => s.frames[0]!.file.endsWith(".go") || !s.frames[0]!.file.includes("/srv")),
    ).toBe(true);
    const caches = new Set(cat.stacks.filter((s) => s.role === "cache").map((s) => stackKey(s.frames)));
    const churn = cat.stacks.filter((s) => s.role === "churn").map((s) => stackKey(s.frames));
    expect(caches.size).toBeGreaterThanOrEqual(1);
    expect(caches.size).toBeLessThanOrEqual(3);

    // The canary's deploy restarted the process: its caches (and warm-up) fill, then settle.
    const start = lifeAt(l.proc, l.leak.startTs + 1).startedAt;
    const at = (h: number) => {
      const t = start + h * HOUR;
      return simulatedHeapProfile(plan, targetAt(plan, l.host.id, l.comp.name, l.proc.name, t).target, t, {
        sampling: false,
      });
    };
    const [early, mid, late, later] = [0.25, 3, 20, 26].map((h) => bytesOf(at(h), caches));
    expect(mid!).toBeGreaterThan(2 * early!);
    expect(late!).toBeGreaterThan(mid!);
    expect(Math.abs(later! - late!) / late!).toBeLessThan(0.02);

    // Churn moves up and down between profiles 30 min apart, around a stable mean.
    const profiles = Array.from({ length: 24 }, (_, i) => at(20 + i / 2));
    let moved = 0;
    let ups = 0;
    let downs = 0;
    for (const key of churn) {
      const series = profiles.map((p) => bytesOf(p, new Set([key])));
      for (let i = 1; i < series.length; i++) {
        const d = series[i]! - series[i - 1]!;
        if (Math.abs(d) > 0.05 * series[i - 1]!) moved++;
        if (d > 0) ups++;
        if (d < 0) downs++;
      }
    }
    expect(moved / (churn.length * 23)).toBeGreaterThan(0.5);
    expect(ups / (ups + downs)).toBeGreaterThan(0.35);
    expect(ups / (ups + downs)).toBeLessThan(0.65);
  });

  it("lets load stacks follow the time of day", () => {
    const h = plan.hosts.find((x) => x.comps.some((c) => c.name === "net-proxy"))!;
    const comp = h.comps.find((c) => c.name === "net-proxy")!;
    const proc = comp.procs[0]!;
    const load = new Set(
      heapCatalog(plan.config, comp.name, proc.name)
        .stacks.filter((s) => s.role === "load")
        .map((s) => stackKey(s.frames)),
    );
    const day = Array.from({ length: 24 }, (_, i) => plan.start + 12 * HOUR + i * HOUR);
    const series = day.map((t) =>
      bytesOf(
        simulatedHeapProfile(
          plan,
          { host: h.id, component: comp.name, process: proc.name, pid: lifeAt(proc, t).pid },
          t,
          {
            sampling: false,
          },
        ),
        load,
      ),
    );
    expect(Math.max(...series) / Math.min(...series)).toBeGreaterThan(1.2);
  });

  it("names one leaking stack per leak, shared by a canary's hosts, in no healthy stack", () => {
    const keys = new Map<string, string[]>();
    for (const l of processLeaks) {
      const frames = leakStackOf(plan, l);
      const leaf = frames[0]!;
      const cat = heapCatalog(plan.config, l.comp.name, l.proc.name);
      expect(cat.stacks.some((s) => s.frames[0]!.fn === leaf.fn && s.frames[0]!.file === leaf.file)).toBe(
        false,
      );
      const group = l.leak.cause === "canary" ? `canary/${l.leak.version}` : `${l.host.id}`;
      keys.set(group, [...(keys.get(group) ?? []), stackKey(frames)]);
    }
    const canary = [...keys].filter(([g]) => g.startsWith("canary/"));
    expect(canary.length).toBe(1);
    expect(new Set(canary[0]![1]).size).toBe(1);
    expect(canary[0]![1].length).toBeGreaterThan(1);
    const distinct = new Set([...keys.values()].map((v) => v[0]));
    expect(distinct.size).toBe(keys.size);
  });

  it("lets a leak's code churn a little where it does not leak: an isolated leak's everywhere, a canary's in its version", () => {
    const isolated = processLeaks.find((l) => l.leak.cause === "isolated")!;
    const canary = processLeaks.find((l) => l.leak.cause === "canary")!;
    const at = Math.max(isolated.leak.startTs, canary.leak.startTs) + 2 * HOUR;
    const peers = (l: typeof isolated) =>
      plan.hosts.filter(
        (h) =>
          h !== l.host &&
          h.downFrom > at &&
          h.comps.some((c) => c.name === l.comp.name && c.procs.some((p) => p.name === l.proc.name)),
      );
    const held = (l: typeof isolated, hostId: string) => {
      const { target } = targetAt(plan, hostId, l.comp.name, l.proc.name, at);
      const p = simulatedHeapProfile(plan, target, at, { sampling: false });
      return { leak: bytesOf(p, new Set([stackKey(leakStackOf(plan, l))])), total: total(p) };
    };
    const elsewhere = peers(isolated).map((h) => held(isolated, h.id));
    expect(elsewhere.length).toBeGreaterThan(3);
    for (const e of elsewhere) {
      expect(e.leak).toBeGreaterThan(0);
      expect(e.leak).toBeLessThan(0.01 * e.total);
    }
    const leaking = held(isolated, isolated.host.id);
    expect(leaking.leak).toBe(Math.round(leakedBytesAt(isolated.proc, at)));

    const canaryHosts = new Set(processLeaks.filter((l) => l.leak.cause === "canary").map((l) => l.host));
    const others = peers(canary).filter((h) => !canaryHosts.has(h));
    expect(others.length).toBeGreaterThan(3);
    for (const h of others) expect(held(canary, h.id).leak).toBe(0);
  });

  it("lets a new version move some stacks to other lines and add a few", () => {
    const canary = processLeaks.find((l) => l.leak.cause === "canary")!;
    const version = canary.leak.version!;
    const changes = versionChanges(plan.config, canary.comp.name, canary.proc.name, version);
    const initial = versionChanges(plan.config, canary.comp.name, canary.proc.name, canary.comp.versions[0]!);
    expect(initial.movedLines.size + initial.added.length).toBe(0);
    expect(changes.movedLines.size).toBeGreaterThan(0);

    const at = canary.leak.startTs + HOUR;
    const old = plan.hosts.find(
      (h) => h.comps.some((c) => c.name === canary.comp.name && c.versions.length === 1) && h.downFrom > at,
    )!;
    const profileOf = (host: string) =>
      simulatedHeapProfile(plan, targetAt(plan, host, canary.comp.name, canary.proc.name, at).target, at, {
        sampling: false,
      });
    const fnKey = (frames: Frame[]) => JSON.stringify(frames.map((f) => [f.fn, f.file]));
    const before = profileOf(old.id).stacks;
    const after = profileOf(canary.host.id).stacks;
    const oldKeys = new Set(before.map((s) => stackKey(s.frames)));
    const oldFunctions = new Set(before.map((s) => fnKey(s.frames)));
    const moved = after.filter((s) => !oldKeys.has(stackKey(s.frames)) && oldFunctions.has(fnKey(s.frames)));
    expect(moved.length).toBe(changes.movedLines.size);
    for (const a of changes.added) {
      expect(after.some((s) => stackKey(s.frames) === stackKey(a.frames))).toBe(true);
      expect(before.some((s) => stackKey(s.frames) === stackKey(a.frames))).toBe(false);
    }
  });

  it("puts the leaking stack in the truth of process leaks only", () => {
    for (const r of sim.truth()) {
      expect(checkTruth(r).ok).toBe(true);
      const entry = plan.leaks.find((l) => l.host.id === r.host && l.proc.name === r.process)!;
      if (r.kind === "kernel") {
        expect(r.stack).toBeUndefined();
        expect(() => leakStackOf(plan, entry)).toThrow(/kernel pool/);
      } else {
        expect(r.stack).toEqual(leakStackOf(plan, entry));
      }
    }
  });

  it("refuses kernel pools, a pid that is not running and a host that is down", () => {
    const k = plan.leaks.find((l) => l.leak.kind === "kernel")!;
    const at = plan.start + HOUR;
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as NoHeapProfileError;
      }
      throw new Error("did not throw");
    };
    const kernel = err(() =>
      simulatedHeapProfile(plan, { host: k.host.id, component: "kernel", process: k.proc.name, pid: 0 }, at),
    );
    expect(kernel).toBeInstanceOf(NoHeapProfileError);
    expect(kernel.reason).toBe("kernel");
    expect(kernel.message).toMatch(/no heap profile/);

    const l = restarted;
    const restart = l.proc.lives.find((x) => x.startedAt > l.leak.startTs)!;
    const old = targetAt(plan, l.host.id, l.comp.name, l.proc.name, restart.startedAt - HOUR).target;
    expect(err(() => simulatedHeapProfile(plan, old, restart.startedAt + HOUR)).reason).toBe("not-running");
    expect(err(() => simulatedHeapProfile(plan, { ...old, host: "nope" }, at)).reason).toBe("unknown-target");

    const dead = createSimulation(resolveScenario("quiet", { hosts: 40, days: 1, seed: 2 })).plan.hosts.find(
      (h) => h.downFrom < Number.POSITIVE_INFINITY,
    );
    if (dead !== undefined) {
      const comp = dead.comps.find((c) => !c.kernel)!;
      const p = comp.procs[0]!;
      const t = dead.downFrom + 1;
      const down = err(() =>
        simulatedHeapProfile(
          createSimulation(resolveScenario("quiet", { hosts: 40, days: 1, seed: 2 })).plan,
          { host: dead.id, component: comp.name, process: p.name, pid: lifeAt(p, t).pid },
          t,
        ),
      );
      expect(down.reason).toBe("host-down");
    }
  });
});

describe("sampling helpers", () => {
  it("poissonQuantile is monotone in the mean and has the right mean", () => {
    let sum = 0;
    const n = 2000;
    for (let i = 0; i < n; i++) sum += poissonQuantile(7.5, (i + 0.5) / n);
    expect(sum / n).toBeCloseTo(7.5, 1);
    expect(poissonQuantile(0, 0.9)).toBe(0);
    for (const u of [0.1, 0.5, 0.9]) {
      expect(poissonQuantile(40, u)).toBeLessThanOrEqual(poissonQuantile(41, u));
      expect(poissonQuantile(100, u)).toBeLessThanOrEqual(poissonQuantile(120, u));
    }
    expect(inverseNormal(0.5)).toBeCloseTo(0, 9);
    expect(inverseNormal(0.975)).toBeCloseTo(1.959964, 5);
    expect(inverseNormal(0.01)).toBeCloseTo(-2.326348, 5);
  });
});

describe("simulated heap profiles across seeds", () => {
  /** The same plan, but for its seed (a fresh object: its own models). */
  const reseeded = (p: Plan, seed: number): Plan => ({ ...p, config: { ...p.config, seed } });

  it("do not depend on what another plan profiled before in the same process", async () => {
    const l = processLeaks[0]!;
    const at = l.leak.startTs + 6 * HOUR;
    const { target } = targetAt(plan, l.host.id, l.comp.name, l.proc.name, at);
    vi.resetModules();
    const fresh = await import("./heap.ts");
    const alone = fresh.simulatedHeapProfile(reseeded(plan, 4), target, at);
    vi.resetModules();
    const after = await import("./heap.ts");
    after.simulatedHeapProfile(plan, target, at);
    expect(after.simulatedHeapProfile(reseeded(plan, 4), target, at)).toEqual(alone);
  });

  it("draw the churn's samples afresh for another seed", () => {
    // Same catalogue under both seeds (cached before the seed changes), so the same stacks churn.
    const l = processLeaks.find((x) => x.comp.name === "storage-cache")!;
    const configB = { ...plan.config };
    const cat = heapCatalog(configB, l.comp.name, l.proc.name);
    (configB as { seed: number }).seed = plan.config.seed + 1;
    const planB: Plan = { ...plan, config: configB };
    const churn = cat.stacks.filter((s) => s.role === "churn").map((s) => stackKey(s.frames));
    // Where the profiler sampled above or below a stack's exact bytes: the draw's side of its median.
    const sides = (p: Plan, at: number) => {
      const { target } = targetAt(p, l.host.id, l.comp.name, l.proc.name, at);
      const exact = simulatedHeapProfile(p, target, at, { sampling: false });
      const sampled = simulatedHeapProfile(p, target, at);
      // Only stacks with many samples' worth of bytes, where the side is the draw's, not rounding's.
      return churn.map((k) => {
        const e = bytesOf(exact, new Set([k]));
        return e < 8 * 2 ** 20 ? Number.NaN : Math.sign(bytesOf(sampled, new Set([k])) - e);
      });
    };
    let same = 0;
    let n = 0;
    for (let h = 0; h < 24; h++) {
      const at = l.leak.startTs + h * HOUR;
      const a = sides(plan, at);
      const b = sides(planB, at);
      for (let i = 0; i < a.length; i++) {
        if (Number.isNaN(a[i]!) || Number.isNaN(b[i]!)) continue;
        n++;
        if (a[i] === b[i]) same++;
      }
    }
    expect(n).toBeGreaterThan(100);
    expect(same / n).toBeLessThan(0.75);
  });
});
