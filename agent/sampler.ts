/**
 * One sampling pass over /proc: every user process's private memory and start time, grouped
 * by component, plus kernel memory as the `kernel` component and the host's memory, as
 * telemetry v1 messages (CONTRACT §1), one per component. Synchronous and free of timers: the
 * agent (agent/agent.ts) calls `sample(now)` once per interval.
 *
 *   const sampler = new Sampler(config, { host: "h1", fs: new RealProcFs() });
 *   const { messages, stats } = sampler.sample(Date.now());
 *
 * Choices (README "The Linux agent" says why):
 * - memory is RssAnon by default (from statm), or USS / PSS from smaps_rollup (config `memory`);
 * - a process's component is the first matching config rule, else its systemd unit (cgroup v2),
 *   else its name; `unmatched: "skip"` watches the configured components only;
 * - kernel threads (PF_KTHREAD) and zombies are left out, and so are processes below
 *   `minProcessBytes`;
 * - a component with more than 1024 processes (the contract's limit per message) reports its
 *   1024 largest; the others are counted in `stats.truncated` (a leak is among the largest long
 *   before it matters).
 */
import { hostname } from "node:os";
import { KERNEL_COMPONENT, MAX_PROCESSES, type ProcessSample, type Telemetry } from "../schemas/telemetry.ts";
import type { AgentConfig, ComponentRule } from "./config.ts";
import {
  componentToken,
  isKernelThread,
  parseBootTimeSeconds,
  parseCgroupV2Path,
  parseCmdline,
  parseMeminfo,
  parseSlabinfo,
  parseSmapsRollup,
  parseStat,
  parseStatmAnonBytes,
  systemdUnitOf,
} from "./proc.ts";
import type { ProcFs } from "./procfs.ts";

/** Counts of one pass (and, summed, of the agent's life): nothing is left out silently. */
export interface SampleStats {
  /** Processes reported. */
  processes: number;
  /** Kernel threads skipped. */
  kernelThreads: number;
  /** Zombies skipped (they hold no memory). */
  zombies: number;
  /** Processes below minProcessBytes. */
  belowFloor: number;
  /** Processes no rule matched, with `unmatched: "skip"`. */
  unmatched: number;
  /** Processes that exited while being read, or whose files could not be read. */
  unreadable: number;
  /** USS/PSS asked for but smaps_rollup not readable: reported as rss-anon. */
  smapsFallbacks: number;
  /** Processes beyond the 1024 largest of a component, not reported. */
  truncated: number;
  /** Kernel pseudo-processes reported. */
  kernelPools: number;
}

export const emptyStats = (): SampleStats => ({
  processes: 0,
  kernelThreads: 0,
  zombies: 0,
  belowFloor: 0,
  unmatched: 0,
  unreadable: 0,
  smapsFallbacks: 0,
  truncated: 0,
  kernelPools: 0,
});

export function addStats(into: SampleStats, s: SampleStats): void {
  for (const k of Object.keys(s) as (keyof SampleStats)[]) into[k] += s[k];
}

/** What the agent knows of a running process: used to route snapshots and mitigations. */
export interface ProcessIdentity {
  pid: number;
  /** Reported process name. */
  process: string;
  comm: string;
  component: string;
  /** systemd unit from the cgroup v2 path, when there is one. */
  unit?: string;
  /** Start time, epoch ms (with the pid, the process's identity). */
  startedAt: number;
  /** The config rule that placed it, if any. */
  rule?: ComponentRule;
}

interface Classified {
  key: string;
  /** Undefined: not watched (`unmatched: "skip"`). */
  identity: Omit<ProcessIdentity, "pid" | "startedAt" | "comm"> | undefined;
}

interface CompiledRule {
  rule: ComponentRule;
  name?: RegExp;
  cmdline?: RegExp;
  unit?: RegExp;
}

export interface SamplerOptions {
  host: string;
  fs: ProcFs;
  /** Bytes per page (statm and slabinfo count pages). */
  pageSize: number;
  /** USER_HZ: the unit of a process's start time in /proc/<pid>/stat. */
  clockTicks: number;
  /** attrs.os when the config does not set one. */
  os?: string;
}

export const DEFAULT_PAGE_SIZE = 4096;
export const DEFAULT_CLOCK_TICKS = 100;

/** A host id from the machine's hostname: the first label, made a NATS subject token. */
export function defaultHostId(name = hostname()): string {
  return componentToken(name.split(".")[0] ?? name) ?? "localhost";
}

export class Sampler {
  private readonly rules: CompiledRule[];
  private readonly needsCmdline: boolean;
  private readonly needsUnit: boolean;
  /** Per pid, its classification while pid, start time and comm stay the same. */
  private readonly classified = new Map<number, Classified>();
  /**
   * Series reported in the last pass (`pid|startTicks`, or the pool name): they stay reported
   * until they fall below half the floor, so a process hovering at the floor does not appear and
   * vanish every pass (each reappearance would look like a new series that grows).
   */
  private reported = new Set<string>();
  private bootMs: number | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly options: SamplerOptions,
  ) {
    this.rules = config.components.map((rule) => {
      const c: CompiledRule = { rule };
      if (rule.name !== undefined) c.name = new RegExp(rule.name);
      if (rule.cmdline !== undefined) c.cmdline = new RegExp(rule.cmdline);
      if (rule.unit !== undefined) c.unit = new RegExp(rule.unit);
      return c;
    });
    this.needsCmdline = this.rules.some((r) => r.cmdline !== undefined);
    this.needsUnit = config.unmatched === "unit" || this.rules.some((r) => r.unit !== undefined);
  }

  get host(): string {
    return this.options.host;
  }

  /** Boot time, epoch ms (btime of /proc/stat, read once: it does not change while the host runs). */
  bootTimeMs(): number {
    if (this.bootMs === undefined) {
      const btime = parseBootTimeSeconds(this.options.fs.read("stat") ?? "");
      if (btime === undefined) throw new Error("cannot read btime from /proc/stat");
      this.bootMs = btime * 1000;
    }
    return this.bootMs;
  }

  /** The running process `pid` as the agent classifies it now, or undefined (gone, kernel thread, not watched). */
  identify(pid: number): ProcessIdentity | undefined {
    const stat = parseStat(this.options.fs.read(`${pid}/stat`) ?? "");
    if (stat === undefined || isKernelThread(stat) || stat.state === "Z") return undefined;
    const c = this.classify(pid, stat.comm, stat.startTicks);
    if (c.identity === undefined) return undefined;
    return { pid, comm: stat.comm, startedAt: this.startedAt(stat.startTicks), ...c.identity };
  }

  /** One pass: the telemetry messages of this interval, one per component, and what was left out. */
  sample(now: number, vms?: number): { messages: Telemetry[]; stats: SampleStats } {
    const stats = emptyStats();
    const byComponent = new Map<string, { samples: ProcessSample[]; version?: string }>();
    const seen = new Set<number>();
    const reported = new Set<string>();
    const aboveFloor = (key: string, bytes: number, floor: number): boolean => {
      const keep = bytes >= floor || (this.reported.has(key) && bytes >= floor / 2);
      if (keep) reported.add(key);
      return keep;
    };
    for (const pid of this.options.fs.pids()) {
      const stat = parseStat(this.options.fs.read(`${pid}/stat`) ?? "");
      if (stat === undefined) {
        stats.unreadable++;
        continue;
      }
      if (isKernelThread(stat)) {
        stats.kernelThreads++;
        continue;
      }
      if (stat.state === "Z" || stat.state === "X") {
        stats.zombies++;
        continue;
      }
      seen.add(pid);
      const c = this.classify(pid, stat.comm, stat.startTicks);
      if (c.identity === undefined) {
        stats.unmatched++;
        continue;
      }
      const bytes = this.privateBytes(pid, stats);
      if (bytes === undefined) {
        stats.unreadable++;
        continue;
      }
      if (!aboveFloor(`${pid}|${stat.startTicks}`, bytes, this.config.minProcessBytes)) {
        stats.belowFloor++;
        continue;
      }
      let group = byComponent.get(c.identity.component);
      if (group === undefined) {
        group = { samples: [] };
        if (c.identity.rule?.version !== undefined) group.version = c.identity.rule.version;
        byComponent.set(c.identity.component, group);
      }
      group.samples.push({
        pid,
        name: c.identity.process,
        startedAt: Math.min(now, this.startedAt(stat.startTicks)),
        bytes,
      });
    }
    for (const pid of this.classified.keys()) if (!seen.has(pid)) this.classified.delete(pid);

    const meminfo = parseMeminfo(this.options.fs.read("meminfo") ?? "");
    const hostMemory =
      meminfo === undefined
        ? undefined
        : { totalBytes: meminfo.totalBytes, usedBytes: meminfo.totalBytes - meminfo.availableBytes };
    const attrs: Record<string, string> = { ...this.config.attrs };
    if (attrs.os === undefined && this.options.os !== undefined) attrs.os = this.options.os;

    const message = (component: string, samples: ProcessSample[], version?: string): Telemetry => {
      if (samples.length > MAX_PROCESSES) {
        samples.sort((a, b) => b.bytes - a.bytes);
        stats.truncated += samples.length - MAX_PROCESSES;
        samples.length = MAX_PROCESSES;
      }
      stats.processes += component === KERNEL_COMPONENT ? 0 : samples.length;
      const a = version !== undefined ? { ...attrs, version } : attrs;
      return {
        v: 1,
        ts: now,
        host: this.options.host,
        component,
        ...(Object.keys(a).length > 0 ? { attrs: a } : {}),
        ...(hostMemory !== undefined ? { hostMemory } : {}),
        ...(vms !== undefined ? { vms } : {}),
        processes: samples,
      };
    };

    const messages: Telemetry[] = [];
    for (const [component, g] of [...byComponent].sort((a, b) => (a[0] < b[0] ? -1 : 1)))
      messages.push(message(component, g.samples, g.version));
    if (this.config.kernel.enabled) {
      const pools = this.kernelPools(meminfo, aboveFloor);
      stats.kernelPools = pools.length;
      if (pools.length > 0) messages.push(message(KERNEL_COMPONENT, pools));
    }
    this.reported = reported;
    return { messages, stats };
  }

  private startedAt(startTicks: number): number {
    return this.bootTimeMs() + Math.floor((startTicks * 1000) / this.options.clockTicks);
  }

  private privateBytes(pid: number, stats: SampleStats): number | undefined {
    const mode = this.config.memory;
    if (mode !== "rss-anon") {
      const rollup = parseSmapsRollup(this.options.fs.read(`${pid}/smaps_rollup`) ?? "");
      if (rollup !== undefined) return mode === "uss" ? rollup.uss : rollup.pss;
      stats.smapsFallbacks++;
    }
    return parseStatmAnonBytes(this.options.fs.read(`${pid}/statm`) ?? "", this.options.pageSize);
  }

  private classify(pid: number, comm: string, startTicks: number): Classified {
    // exec keeps pid and start time but changes comm (and the command line): classify again.
    const key = `${startTicks}|${comm}`;
    const cached = this.classified.get(pid);
    if (cached?.key === key) return cached;
    const fs = this.options.fs;
    const cmdline = this.needsCmdline ? parseCmdline(fs.read(`${pid}/cmdline`) ?? "") : "";
    let unit: string | undefined;
    if (this.needsUnit) {
      const path = parseCgroupV2Path(fs.read(`${pid}/cgroup`) ?? "");
      unit = path === undefined ? undefined : systemdUnitOf(path);
    }
    let identity: Classified["identity"];
    const rule = this.rules.find(
      (r) =>
        (r.name === undefined || r.name.test(comm)) &&
        (r.cmdline === undefined || r.cmdline.test(cmdline)) &&
        (r.unit === undefined || (unit !== undefined && r.unit.test(unit))),
    );
    if (rule !== undefined) {
      identity = { component: rule.rule.component, process: rule.rule.process ?? comm, rule: rule.rule };
    } else if (this.config.unmatched === "unit") {
      const component =
        (unit !== undefined ? componentToken(unit) : undefined) ?? componentToken(comm) ?? `pid-${pid}`;
      identity = { component, process: comm };
    }
    if (identity !== undefined && unit !== undefined) identity.unit = unit;
    const c: Classified = { key, identity };
    this.classified.set(pid, c);
    return c;
  }

  private kernelPools(
    meminfo: ReturnType<typeof parseMeminfo>,
    aboveFloor: (key: string, bytes: number, floor: number) => boolean,
  ): ProcessSample[] {
    const startedAt = this.bootTimeMs();
    const pools: ProcessSample[] = [];
    const pool = (name: string, bytes: number | undefined) => {
      if (bytes !== undefined) pools.push({ pid: 0, name, startedAt, bytes });
    };
    pool("SUnreclaim", meminfo?.sUnreclaimBytes);
    pool("VmallocUsed", meminfo?.vmallocUsedBytes);
    if (this.config.kernel.slab) {
      const caches = parseSlabinfo(this.options.fs.read("slabinfo") ?? "", this.options.pageSize);
      for (const c of caches ?? [])
        if (aboveFloor(`slab:${c.name}`, c.bytes, this.config.kernel.minSlabBytes))
          pool(`slab:${c.name}`, c.bytes);
    }
    return pools;
  }
}
