import type { Telemetry } from "../schemas/telemetry.ts";
import {
  type CompPlan,
  type HostPlan,
  isDown,
  leakCumulative,
  type Plan,
  type ProcPlan,
  shapeFactor,
} from "./plan.ts";
import { Rand } from "./rng.ts";

/**
 * The sample loop: walks the ticks, computes every (host, component) sample from the plan, and
 * applies delivery faults (loss, duplication, lateness, clock jitter). Per-tick state lives in
 * small runtime records with cursors into the plan's timelines, so each sample is O(processes).
 */

/** Delivery counters of one run. */
export interface DeliveryStats {
  /** Samples taken by the agents (before loss/duplication). */
  samples: number;
  /** Messages delivered, duplicates included. */
  messages: number;
  lost: number;
  duplicated: number;
  late: number;
}

export function emptyDeliveryStats(): DeliveryStats {
  return { samples: 0, messages: 0, lost: 0, duplicated: 0, late: 0 };
}

/** @internal runtime state of one process series. */
export interface ProcRt {
  readonly p: ProcPlan;
  life: number;
  lifeStart: number;
  pid: number;
  /** `{"pid":…,"name":…,"startedAt":…,"bytes":` for the current life. */
  prefix: string;
  burst: number;
  leakBase: number;
  readonly noise: Rand;
  bytes: number;
}

/** @internal runtime state of one (host, component). */
export interface CompRt {
  readonly c: CompPlan;
  ver: number;
  version: string;
  /** `,"host":…,"component":…,"attrs":{…},"hostMemory":{"totalBytes":…,"usedBytes":` for the current version. */
  prefix: string;
  readonly procs: ProcRt[];
  readonly faults: Rand;
}

/** @internal runtime state of one host. */
export interface HostRt {
  readonly h: HostPlan;
  vm: number;
  ts: number;
  readonly jitter: Rand;
  readonly comps: CompRt[];
}

/** Turns the current sample of a (host, component) into an output item. */
export interface Builder<T> {
  build(host: HostRt, comp: CompRt, ts: number, usedBytes: number, vms: number): T;
}

function compPrefix(h: HostPlan, c: CompPlan, version: string): string {
  const attrs = JSON.stringify({ region: h.region, cluster: h.cluster, version, hw: h.hw, os: h.os });
  return `,"host":"${h.id}","component":"${c.name}","attrs":${attrs},"hostMemory":{"totalBytes":${h.totalBytes},"usedBytes":`;
}

/** Serializes samples as NDJSON lines in the contract's key order. */
export const lineBuilder: Builder<string> = {
  build(_h, c, ts, used, vms) {
    let s = `{"v":1,"ts":${ts}${c.prefix}${used}},"vms":${vms},"processes":[`;
    const ps = c.procs;
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i]!;
      s += i === 0 ? `${p.prefix}${p.bytes}}` : `,${p.prefix}${p.bytes}}`;
    }
    return `${s}]}`;
  },
};

/** Builds Telemetry objects with the same key order as the lines. */
export const objectBuilder: Builder<Telemetry> = {
  build(hr, c, ts, used, vms) {
    const h = hr.h;
    return {
      v: 1,
      ts,
      host: h.id,
      component: c.c.name,
      attrs: { region: h.region, cluster: h.cluster, version: c.version, hw: h.hw, os: h.os },
      hostMemory: { totalBytes: h.totalBytes, usedBytes: used },
      vms,
      processes: c.procs.map((p) => ({ pid: p.pid, name: p.p.name, startedAt: p.lifeStart, bytes: p.bytes })),
    };
  },
};

interface Pending<T> {
  key: number;
  seq: number;
  item: T;
}

function byKey<T>(a: Pending<T>, b: Pending<T>): number {
  return a.key - b.key || a.seq - b.seq;
}

function setLife(pr: ProcRt, index: number): void {
  const life = pr.p.lives[index]!;
  pr.life = index;
  pr.lifeStart = life.startedAt;
  pr.pid = life.pid;
  pr.prefix = `{"pid":${life.pid},"name":${pr.p.nameJson},"startedAt":${life.startedAt},"bytes":`;
  const leak = pr.p.leak;
  pr.leakBase = leak === null ? 0 : leakCumulative(leak, Math.max(leak.startTs, life.startedAt));
}

function runtime(plan: Plan): HostRt[] {
  const seed = plan.config.seed;
  return plan.hosts.map((h) => ({
    h,
    vm: 0,
    ts: 0,
    jitter: new Rand(seed, `jitter/${h.id}`),
    comps: h.comps.map((c) => {
      const procs = c.procs.map((p) => {
        const pr: ProcRt = {
          p,
          life: 0,
          lifeStart: 0,
          pid: 0,
          prefix: "",
          burst: 0,
          leakBase: 0,
          noise: new Rand(seed, `noise/${h.id}/${c.name}/${p.name}`),
          bytes: 0,
        };
        setLife(pr, 0);
        return pr;
      });
      return {
        c,
        ver: 0,
        version: c.versions[0]!,
        prefix: compPrefix(h, c, c.versions[0]!),
        procs,
        faults: new Rand(seed, `faults/${h.id}/${c.name}`),
      };
    }),
  }));
}

/** Computes every process of one host at `ts`; returns its memory demand (not clamped to the total). */
function sampleHost(hr: HostRt, ts: number, vms: number): number {
  const h = hr.h;
  let used = vms * h.vmBytes;
  for (const cr of hr.comps) {
    const c = cr.c;
    const va = c.versionAt;
    if (cr.ver + 1 < va.length && va[cr.ver + 1]! <= ts) {
      while (cr.ver + 1 < va.length && va[cr.ver + 1]! <= ts) cr.ver++;
      cr.version = c.versions[cr.ver]!;
      cr.prefix = compPrefix(h, c, cr.version);
    }
    const cfg = ts >= c.configAt ? c.configFactor : 1;
    for (const pr of cr.procs) {
      const p = pr.p;
      const lives = p.lives;
      if (pr.life + 1 < lives.length && lives[pr.life + 1]!.startedAt <= ts) {
        let i = pr.life + 1;
        while (i + 1 < lives.length && lives[i + 1]!.startedAt <= ts) i++;
        setLife(pr, i);
      }
      const ends = p.burstEnd;
      while (pr.burst < ends.length && ends[pr.burst]! <= ts) pr.burst++;
      const burst = pr.burst < ends.length && p.burstStart[pr.burst]! <= ts ? p.burstAmp[pr.burst]! : 0;
      let v =
        (p.base * shapeFactor(p, h.tzOffsetMs, ts, ts - pr.lifeStart) * (1 + burst) + p.perVm * vms) * cfg;
      if (p.noise !== 0) {
        let n = pr.noise.normal();
        if (n > 4) n = 4;
        else if (n < -4) n = -4;
        v *= 1 + p.noise * n;
      }
      const leak = p.leak;
      if (leak !== null && ts > leak.startTs) v += leakCumulative(leak, ts) - pr.leakBase;
      const bytes = v > 0 ? Math.round(v) : 0;
      pr.bytes = bytes;
      used += bytes;
    }
  }
  return Math.round(used);
}

/**
 * Told of every host sample before its messages go out: the host, the agent's timestamp, the
 * memory demand (components + VMs, not clamped to the total) and the VM count. The closed loop
 * uses it to see hosts run out of memory; it may edit the plan's future (lives, VM timeline,
 * outages) but not the sample being built.
 */
export type SampleObserver = (host: HostPlan, ts: number, demandBytes: number, vms: number) => void;

/**
 * Generates the delivered message stream. On-time messages come in ts order; a late message
 * (or a delayed duplicate) is inserted d ≤ lateness ticks later, before the first message whose
 * ts exceeds its own ts + d·interval, so no message is ever more than `lateness` intervals late.
 */
export function* generate<T>(
  plan: Plan,
  builder: Builder<T>,
  stats: DeliveryStats,
  onTick?: (tick: number, ticks: number) => void,
  onSample?: SampleObserver,
): Generator<T> {
  const cfg = plan.config;
  const I = plan.intervalMs;
  const L = cfg.lateness;
  const J = cfg.faults.jitterMs;
  const pLost = cfg.faults.lost;
  const pDup = pLost + cfg.faults.duplicated;
  const pLate = L > 0 ? pDup + cfg.faults.late : pDup;
  const hosts = runtime(plan);
  const order = hosts.map((_, i) => i);
  const buckets: Pending<T>[][] = Array.from({ length: L + 1 }, () => []);
  let seq = 0;

  for (let k = 0; k < plan.ticks; k++) {
    const t = plan.start + k * I;
    for (const hr of hosts) hr.ts = t + hr.h.clockOffsetMs + Math.round(hr.jitter.float() * 0.5 * J);
    order.sort((a, b) => hosts[a]!.ts - hosts[b]!.ts || a - b);
    const due = buckets[k % (L + 1)]!;
    if (due.length > 1) due.sort(byKey);
    let di = 0;
    for (let oi = 0; oi < order.length; oi++) {
      const hr = hosts[order[oi]!]!;
      const ts = hr.ts;
      while (di < due.length && due[di]!.key <= ts) {
        stats.messages++;
        yield due[di++]!.item;
      }
      const h = hr.h;
      if (isDown(h, ts)) continue;
      const vmAt = h.vmAt;
      while (hr.vm + 1 < vmAt.length && vmAt[hr.vm + 1]! <= ts) hr.vm++;
      const vms = h.vmCount[hr.vm]!;
      const demand = sampleHost(hr, ts, vms);
      const used = Math.min(demand, h.totalBytes);
      onSample?.(h, ts, demand, vms);
      for (const cr of hr.comps) {
        stats.samples++;
        const u = cr.faults.float();
        if (u < pLost) {
          stats.lost++;
          continue;
        }
        const item = builder.build(hr, cr, ts, used, vms);
        if (u < pDup) {
          stats.duplicated++;
          stats.messages++;
          yield item;
          const d = L === 0 ? 0 : cr.faults.int(0, L);
          if (d === 0) {
            stats.messages++;
            yield item;
          } else {
            buckets[(k + d) % (L + 1)]!.push({ key: ts + d * I, seq: seq++, item });
          }
        } else if (u < pLate) {
          stats.late++;
          const d = cr.faults.int(1, L);
          buckets[(k + d) % (L + 1)]!.push({ key: ts + d * I, seq: seq++, item });
        } else {
          stats.messages++;
          yield item;
        }
      }
    }
    while (di < due.length) {
      stats.messages++;
      yield due[di++]!.item;
    }
    due.length = 0;
    onTick?.(k + 1, plan.ticks);
  }
  // Messages still in flight after the last tick arrive in order of their delivery keys.
  for (let j = 0; j < L; j++) {
    const due = buckets[(plan.ticks + j) % (L + 1)]!;
    due.sort(byKey);
    for (const p of due) {
      stats.messages++;
      yield p.item;
    }
    due.length = 0;
  }
}
