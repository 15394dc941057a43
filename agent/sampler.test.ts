import { describe, expect, it } from "vitest";
import { checkTelemetry } from "../schemas/telemetry.ts";
import { type AgentConfigInput, parseAgentConfig } from "./config.ts";
import { FixtureProcFs } from "./procfs.ts";
import { Sampler } from "./sampler.ts";

const BTIME = 1_767_571_200;
const MiB = 1024 * 1024;

/** A stat line: comm, flags, start ticks (pages are 4096 bytes, USER_HZ 100). */
const stat = (pid: number, comm: string, startTicks: number, { flags = 4194560, state = "S" } = {}) =>
  `${pid} (${comm}) ${state} 1 ${pid} ${pid} 0 -1 ${flags} 0 0 0 0 0 0 0 0 20 0 1 0 ${startTicks} 0 0 0\n`;
/** statm with `anonPages` anonymous resident pages over 100 shared. */
const statm = (anonPages: number) => `9999 ${anonPages + 100} 100 10 0 500 0\n`;

function proc(
  files: Record<string, string>,
  processes: {
    pid: number;
    comm: string;
    start: number;
    anonMiB: number;
    cgroup?: string;
    cmdline?: string;
  }[],
) {
  const map = new Map<string, string>([
    ["stat", `cpu 1 2 3\nbtime ${BTIME}\n`],
    [
      "meminfo",
      "MemTotal: 16000000 kB\nMemAvailable: 12000000 kB\nSUnreclaim: 50000 kB\nVmallocUsed: 30000 kB\n",
    ],
    ...Object.entries(files),
  ]);
  for (const p of processes) {
    map.set(`${p.pid}/stat`, stat(p.pid, p.comm, p.start));
    map.set(`${p.pid}/statm`, statm((p.anonMiB * MiB) / 4096));
    map.set(`${p.pid}/cgroup`, `0::${p.cgroup ?? "/"}\n`);
    map.set(`${p.pid}/cmdline`, `${(p.cmdline ?? p.comm).split(" ").join("\0")}\0`);
  }
  return map;
}

const sampler = (files: Map<string, string>, config: AgentConfigInput = {}) =>
  new Sampler(parseAgentConfig(config), {
    host: "h1",
    fs: new FixtureProcFs(files),
    pageSize: 4096,
    clockTicks: 100,
    os: "debian 12",
  });

const NOW = BTIME * 1000 + 3_600_000;

describe("Sampler", () => {
  it("groups processes by systemd unit, else name, with start times from btime and ticks", () => {
    const files = proc({}, [
      { pid: 100, comm: "nginx", start: 500, anonMiB: 20, cgroup: "/system.slice/nginx.service" },
      { pid: 101, comm: "nginx", start: 510, anonMiB: 30, cgroup: "/system.slice/nginx.service" },
      { pid: 200, comm: "redis-server", start: 600, anonMiB: 8 },
      { pid: 300, comm: "tiny", start: 700, anonMiB: 0.5 },
    ]);
    files.set("14/stat", stat(14, "ksoftirqd/0", 24, { flags: 69238848 }));
    files.set("15/stat", stat(15, "defunct", 30, { state: "Z" }));
    const { messages, stats } = sampler(files, {
      attrs: { region: "westeurope" },
      kernel: { slab: false },
    }).sample(NOW);
    for (const m of messages) expect(checkTelemetry(m).ok).toBe(true);
    expect(messages.map((m) => m.component)).toEqual(["nginx", "redis-server", "kernel"]);
    expect(messages[0]).toEqual({
      v: 1,
      ts: NOW,
      host: "h1",
      component: "nginx",
      attrs: { region: "westeurope", os: "debian 12" },
      hostMemory: { totalBytes: 16000000 * 1024, usedBytes: 4000000 * 1024 },
      processes: [
        { pid: 100, name: "nginx", startedAt: BTIME * 1000 + 5000, bytes: 20 * MiB },
        { pid: 101, name: "nginx", startedAt: BTIME * 1000 + 5100, bytes: 30 * MiB },
      ],
    });
    expect(messages[2]!.processes).toEqual([
      { pid: 0, name: "SUnreclaim", startedAt: BTIME * 1000, bytes: 50000 * 1024 },
      { pid: 0, name: "VmallocUsed", startedAt: BTIME * 1000, bytes: 30000 * 1024 },
    ]);
    expect(stats).toMatchObject({
      processes: 3,
      kernelThreads: 1,
      zombies: 1,
      belowFloor: 1,
      kernelPools: 2,
    });
  });

  it("lets config rules win over the unit, and skips the unmatched when asked", () => {
    const files = proc({}, [
      {
        pid: 100,
        comm: "node",
        start: 500,
        anonMiB: 40,
        cgroup: "/system.slice/api.service",
        cmdline: "node /srv/checkout/server.js",
      },
      {
        pid: 101,
        comm: "node",
        start: 510,
        anonMiB: 40,
        cgroup: "/system.slice/api.service",
        cmdline: "node /srv/other.js",
      },
      { pid: 200, comm: "redis-server", start: 600, anonMiB: 8 },
    ]);
    const config: AgentConfigInput = {
      unmatched: "skip",
      kernel: { enabled: false },
      components: [
        { component: "checkout", cmdline: "checkout/server\\.js", process: "checkout", version: "1.2.3" },
      ],
    };
    const { messages, stats } = sampler(files, config).sample(NOW, 7);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({
      component: "checkout",
      attrs: { os: "debian 12", version: "1.2.3" },
      vms: 7,
      processes: [{ pid: 100, name: "checkout" }],
    });
    expect(stats.unmatched).toBe(2);
  });

  it("classifies again after exec (same pid and start, new comm)", () => {
    const files = proc({}, [{ pid: 100, comm: "sh", start: 500, anonMiB: 4 }]);
    const s = sampler(files, { kernel: { enabled: false } });
    expect(s.sample(NOW).messages[0]?.component).toBe("sh");
    files.set("100/stat", stat(100, "postgres", 500));
    expect(s.sample(NOW + 60_000).messages[0]?.component).toBe("postgres");
    expect(s.identify(100)).toMatchObject({
      pid: 100,
      component: "postgres",
      startedAt: BTIME * 1000 + 5000,
    });
    expect(s.identify(999)).toBeUndefined();
  });

  it("reports USS from smaps_rollup, falling back to rss-anon where it is not readable", () => {
    const files = proc({}, [
      { pid: 100, comm: "a", start: 500, anonMiB: 10 },
      { pid: 101, comm: "a", start: 501, anonMiB: 10 },
    ]);
    files.set("100/smaps_rollup", "Pss: 14336 kB\nPrivate_Clean: 1024 kB\nPrivate_Dirty: 11264 kB\n");
    const { messages, stats } = sampler(files, { memory: "uss", kernel: { enabled: false } }).sample(NOW);
    expect(messages[0]!.processes.map((p) => p.bytes)).toEqual([12 * MiB, 10 * MiB]);
    expect(stats.smapsFallbacks).toBe(1);
  });

  it("reports slab caches above the floor, and the 1024 largest processes of a component", () => {
    const slab = [
      "slabinfo - version: 2.1",
      "# name ...",
      "kmalloc-64 5120 5376 64 64 1 : tunables 0 0 0 : slabdata 84 84 0",
      "dentry 90000 90000 192 21 1 : tunables 0 0 0 : slabdata 4286 4286 0",
      "",
    ].join("\n");
    const many = Array.from({ length: 1030 }, (_, i) => ({
      pid: 1000 + i,
      comm: "worker",
      start: 100 + i,
      anonMiB: 2 + i / 1024,
    }));
    const { messages, stats } = sampler(proc({ slabinfo: slab }, many)).sample(NOW);
    const worker = messages.find((m) => m.component === "worker")!;
    expect(worker.processes).toHaveLength(1024);
    expect(Math.min(...worker.processes.map((p) => p.pid))).toBe(1006);
    expect(stats.truncated).toBe(6);
    const kernel = messages.find((m) => m.component === "kernel")!;
    expect(kernel.processes.map((p) => p.name)).toEqual(["SUnreclaim", "VmallocUsed", "slab:dentry"]);
  });

  it("keeps reporting a process until it falls below half the floor", () => {
    const files = proc({}, [
      { pid: 100, comm: "a", start: 500, anonMiB: 1.2 },
      { pid: 101, comm: "a", start: 501, anonMiB: 0.8 },
    ]);
    const s = sampler(files, { kernel: { enabled: false } });
    const pids = () => s.sample(NOW).messages[0]?.processes.map((p) => p.pid) ?? [];
    expect(pids()).toEqual([100]);
    files.set("100/statm", statm((0.8 * MiB) / 4096));
    expect(pids()).toEqual([100]);
    files.set("100/statm", statm((0.4 * MiB) / 4096));
    expect(pids()).toEqual([]);
    files.set("100/statm", statm((0.8 * MiB) / 4096));
    expect(pids()).toEqual([]);
  });
});
