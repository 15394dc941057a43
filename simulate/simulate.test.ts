import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { checkTelemetry } from "../schemas/telemetry.ts";
import { checkTruth } from "../schemas/truth.ts";
import { createSimulation, presetConfig, resolveScenario, type SimConfig } from "./index.ts";

function sha(lines: Iterable<string>): string {
  const h = createHash("sha256");
  for (const l of lines) h.update(`${l}\n`);
  return h.digest("hex");
}

const small = (seed = 1, scenario = "mixed") => resolveScenario(scenario, { hosts: 24, days: 1, seed });

describe("determinism", () => {
  it("gives identical bytes for the same options, different bytes for another seed", () => {
    const a = sha(createSimulation(small(5)).lines());
    const b = sha(createSimulation(small(5)).lines());
    const again = createSimulation(small(5));
    expect(a).toBe(b);
    expect(sha(again.lines())).toBe(a);
    expect(sha(again.lines())).toBe(a); // a second pass over the same simulation
    expect(sha(createSimulation(small(6)).lines())).not.toBe(a);
    expect(sha(createSimulation(small(5)).truthLines())).toBe(sha(createSimulation(small(5)).truthLines()));
  });

  it("yields objects that serialize to exactly the lines", () => {
    const sim = createSimulation(small(2));
    const lines = [...sim.lines()];
    const objects = [...sim.messages()];
    expect(objects.length).toBe(lines.length);
    for (let i = 0; i < lines.length; i += 97) expect(JSON.stringify(objects[i])).toBe(lines[i]);
  });
});

describe("contract", () => {
  it("emits only valid telemetry and truth", () => {
    const sim = createSimulation(small(3));
    let n = 0;
    for (const line of sim.lines()) {
      const checked = checkTelemetry(JSON.parse(line));
      if (!checked.ok) throw new Error(`${checked.reason}: ${line}`);
      n++;
    }
    expect(n).toBeGreaterThan(1000);
    const truth = sim.truth();
    expect(truth.length).toBeGreaterThan(0);
    for (const r of truth) expect(checkTruth(r)).toMatchObject({ ok: true });
  });

  it("uses host ids r{RR}-h{NNNNN}, regions, clusters and attrs", () => {
    const sim = createSimulation(resolveScenario("quiet", { hosts: 200, days: 0.05 }));
    const ids = sim.hosts.map((h) => h.id);
    expect(new Set(ids).size).toBe(200);
    for (const id of ids) expect(id).toMatch(/^r\d{2}-h\d{5}$/);
    expect(new Set(sim.hosts.map((h) => h.region)).size).toBe(4);
    const perCluster = new Map<string, number>();
    for (const h of sim.hosts) perCluster.set(h.cluster, (perCluster.get(h.cluster) ?? 0) + 1);
    expect(Math.min(...perCluster.values())).toBeGreaterThanOrEqual(20);
    expect(Math.max(...perCluster.values())).toBeLessThanOrEqual(50);
    const first = sim.messages().next().value!;
    expect(Object.keys(first.attrs!)).toEqual(["region", "cluster", "version", "hw", "os"]);
    expect(first.hostMemory!.usedBytes).toBeLessThanOrEqual(first.hostMemory!.totalBytes);
    expect(first.ts).toBeGreaterThanOrEqual(sim.start);
  });
});

describe("ground truth", () => {
  it("mixed 200 hosts x 5 days has every pattern, kernel leaks, a canary and a restart mid-leak", () => {
    const sim = createSimulation(resolveScenario("mixed", { seed: 1 }));
    const truth = sim.truth();
    const patterns = new Set(truth.map((t) => t.pattern));
    expect([...patterns].sort()).toEqual(["spike", "stair", "steady"]);
    const isolated = truth.filter((t) => t.cause === "isolated");
    expect(isolated.length).toBeGreaterThanOrEqual(8);
    expect(isolated.length).toBeLessThanOrEqual(12);
    expect(new Set(isolated.map((t) => t.pattern))).toEqual(new Set(["steady", "stair", "spike"]));
    const kernel = truth.filter((t) => t.kind === "kernel");
    expect(kernel.length).toBeGreaterThanOrEqual(1);
    expect(kernel.length).toBeLessThanOrEqual(3);
    for (const k of kernel) expect(k.component).toBe("kernel");
    const canary = truth.filter((t) => t.cause === "canary");
    expect(canary.length).toBeGreaterThan(0);
    expect(new Set(canary.map((t) => t.version)).size).toBe(1);
    expect(new Set(canary.map((t) => t.component)).size).toBe(1);
    const span = Math.max(...canary.map((t) => t.startTs)) - Math.min(...canary.map((t) => t.startTs));
    expect(span).toBeLessThanOrEqual(3_600_000);
    const restarted = sim.plan.leaks.filter(
      (l) => l.leak.cause === "isolated" && l.proc.lives.some((x) => x.startedAt > l.leak.startTs),
    );
    expect(restarted.length).toBeGreaterThanOrEqual(1);
    const keys = truth.map((t) => `${t.host}/${t.component}/${t.process}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const t of truth) {
      expect(t.startTs).toBeGreaterThanOrEqual(sim.start);
      expect(t.startTs).toBeLessThanOrEqual(sim.end);
    }
  });

  it("puts isolated leak starts in 10-85% of the run with rates of 3-150%/day", () => {
    const sim = createSimulation(resolveScenario("mixed", { seed: 9 }));
    const run = sim.end - sim.start;
    for (const t of sim.truth().filter((x) => x.cause === "isolated")) {
      const frac = (t.startTs - sim.start) / run;
      expect(frac).toBeGreaterThanOrEqual(0.1 - 1e-9);
      expect(frac).toBeLessThanOrEqual(0.85 + 1e-9);
      const perDay = (t.ratePerHour * 24) / t.normalBytes!;
      expect(perDay).toBeGreaterThanOrEqual(0.03 * 0.999);
      expect(perDay).toBeLessThanOrEqual(1.5 * 1.001);
    }
  });

  it("quiet has no leaks; regression has canary leaks and a wider rollout", () => {
    expect(createSimulation(resolveScenario("quiet")).truth()).toEqual([]);
    const reg = createSimulation(resolveScenario("regression"));
    const truth = reg.truth();
    expect(truth.length).toBeGreaterThan(0);
    expect(truth.every((t) => t.cause === "canary")).toBe(true);
    const stats = reg.stats();
    expect(stats.canary!.widerHosts).toBeGreaterThan(stats.canary!.hosts);
  });
});

describe("leaks in the data", () => {
  it("adds the planned leaked bytes on top of the healthy size", async () => {
    const { healthyBytesAt, leakedBytesAt } = await import("./plan.ts");
    const c: SimConfig = resolveScenario("mixed", { hosts: 40, days: 2, seed: 4 });
    c.faults = { lost: 0, duplicated: 0, late: 0, jitterMs: 0 };
    for (const comp of c.components) for (const p of comp.processes) p.noise = [0, 0];
    const sim = createSimulation(c);
    const targets = new Map(sim.plan.leaks.map((l) => [`${l.host.id}/${l.comp.name}/${l.proc.name}`, l]));
    let checked = 0;
    for (const m of sim.messages()) {
      for (const p of m.processes) {
        const l = targets.get(`${m.host}/${m.component}/${p.name}`);
        if (l === undefined) continue;
        const want = healthyBytesAt(l.host, l.comp, l.proc, m.ts) + leakedBytesAt(l.proc, m.ts);
        expect(Math.abs(p.bytes - want)).toBeLessThanOrEqual(1);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(500);
    for (const t of sim.truth()) {
      const l = targets.get(`${t.host}/${t.component}/${t.process}`)!;
      expect(t.grownBytes).toBe(Math.round(leakedBytesAt(l.proc, sim.end)));
    }
  });
});

describe("restarts", () => {
  it("gives a restarted process a new pid and startedAt <= ts", () => {
    const c = presetConfig("quiet");
    c.hosts = 30;
    c.days = 2;
    c.events.crashesPerProcessPerDay = 0.2;
    c.events.deploysPerDay = 1;
    const sim = createSimulation(c);
    const last = new Map<string, { pid: number; startedAt: number; ts: number }>();
    const pidOwner = new Map<string, string>();
    const problems: string[] = [];
    let restarts = 0;
    for (const m of sim.messages()) {
      for (const p of m.processes) {
        const startedAt = p.startedAt!;
        if (startedAt > m.ts) problems.push(`startedAt after ts: ${JSON.stringify(m)}`);
        const key = `${m.host}/${m.component}/${p.name}`;
        const prev = last.get(key);
        if (prev !== undefined && m.ts > prev.ts && (prev.pid !== p.pid || prev.startedAt !== startedAt)) {
          restarts++;
          if (startedAt <= prev.startedAt) problems.push(`startedAt went back: ${key}`);
          if (m.component !== "kernel" && p.pid === prev.pid) problems.push(`same pid after restart: ${key}`);
        }
        if (prev === undefined || m.ts > prev.ts) last.set(key, { pid: p.pid, startedAt, ts: m.ts });
        if (m.component !== "kernel") {
          const owner = `${key}@${startedAt}`;
          const had = pidOwner.get(`${m.host}/${p.pid}`);
          if (had !== undefined && had !== owner)
            problems.push(`pid ${p.pid} reused on ${m.host}: ${had} ${owner}`);
          pidOwner.set(`${m.host}/${p.pid}`, owner);
        }
      }
    }
    expect(problems.slice(0, 5)).toEqual([]);
    expect(restarts).toBeGreaterThan(20);
  });
});

describe("host deaths", () => {
  it("dead hosts stop sending; those that come back restart every process", () => {
    const c = presetConfig("quiet");
    c.hosts = 40;
    c.days = 2;
    c.events.hostDeaths = { share: 0.1, comebackShare: 0.5, downHours: [1, 4] };
    const sim = createSimulation(c);
    const dead = sim.hosts.filter((h) => h.downFrom !== undefined);
    expect(dead.length).toBe(4);
    const back = dead.filter((h) => h.downTo !== undefined);
    expect(back.length).toBeGreaterThan(0);
    const before = new Map<string, string>();
    const after = new Map<string, string>();
    let sentWhileDown = 0;
    for (const m of sim.messages()) {
      const h = dead.find((x) => x.id === m.host);
      if (h === undefined) continue;
      if (m.ts >= h.downFrom! && m.ts < (h.downTo ?? Number.POSITIVE_INFINITY)) sentWhileDown++;
      for (const p of m.processes) {
        const key = `${m.host}/${m.component}/${p.name}`;
        const id = `${p.pid}@${p.startedAt}`;
        if (m.ts < h.downFrom!) before.set(key, id);
        else if (!after.has(key)) after.set(key, id);
      }
    }
    expect(sentWhileDown).toBe(0);
    expect(after.size).toBeGreaterThan(0);
    for (const [key, id] of after) {
      expect(before.get(key)).toBeDefined();
      expect(id).not.toBe(before.get(key));
    }
    expect(sim.stats().delivery.samples).toBe(sim.expectedSamples);
  });
});

describe("delivery", () => {
  const run = (faults: SimConfig["faults"], lateness = 2) => {
    const c = resolveScenario("quiet", { hosts: 40, days: 2, seed: 11, lateness });
    c.faults = faults;
    return createSimulation(c);
  };

  it("is ts-ordered except for late messages, never more than L intervals late", () => {
    const sim = run({ lost: 0.005, duplicated: 0.005, late: 0.02, jitterMs: 5000 });
    const L = sim.config.lateness * sim.intervalMs;
    let max = 0;
    let outOfOrder = 0;
    let worst = 0;
    let total = 0;
    for (const m of sim.messages()) {
      total++;
      if (m.ts < max) {
        outOfOrder++;
        worst = Math.max(worst, max - m.ts);
      }
      max = Math.max(max, m.ts);
    }
    const s = sim.stats().delivery;
    expect(s.messages).toBe(total);
    expect(worst).toBeLessThanOrEqual(L);
    expect(worst).toBeGreaterThan(sim.intervalMs);
    expect(outOfOrder).toBeLessThanOrEqual(s.late + s.duplicated);
    expect(outOfOrder).toBeGreaterThanOrEqual(s.late * 0.9);
  });

  it("has loss, duplication and lateness rates near their settings", () => {
    const sim = run({ lost: 0.01, duplicated: 0.005, late: 0.01, jitterMs: 3000 });
    const seen = new Map<string, number>();
    let max = 0;
    let late = 0;
    for (const line of sim.lines()) {
      seen.set(line, (seen.get(line) ?? 0) + 1);
      const ts = Number(line.slice(13, line.indexOf(",", 13)));
      if (ts < max - 10_000) late++;
      max = Math.max(max, ts);
    }
    const samples = sim.stats().delivery.samples;
    expect(samples).toBe(sim.expectedSamples);
    const dups = [...seen.values()].filter((n) => n > 1).length;
    const delivered = seen.size;
    const near = (x: number, p: number) => {
      expect(x / samples).toBeGreaterThan(p * 0.7);
      expect(x / samples).toBeLessThan(p * 1.3);
    };
    near(samples - delivered, 0.01);
    near(dups, 0.005);
    near(late, 0.01 + 0.005 * (2 / 3));
  });

  it("without faults delivers every sample once, in order", () => {
    const sim = run({ lost: 0, duplicated: 0, late: 0, jitterMs: 0 }, 0);
    let prev = 0;
    let n = 0;
    let backwards = 0;
    for (const m of sim.messages()) {
      if (m.ts < prev) backwards++;
      prev = m.ts;
      n++;
    }
    expect(backwards).toBe(0);
    expect(n).toBe(sim.expectedSamples);
  });
});
