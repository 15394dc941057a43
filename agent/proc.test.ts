import { describe, expect, it } from "vitest";
import {
  componentToken,
  isKernelThread,
  parseBootTimeSeconds,
  parseCgroupV2Path,
  parseCmdline,
  parseMeminfo,
  parseOsRelease,
  parseSlabinfo,
  parseSmapsRollup,
  parseStat,
  parseStatmAnonBytes,
  systemdUnitOf,
} from "./proc.ts";

// A node process whose comm holds a space and a parenthesis (counted from the last ')').
const STAT =
  "4242 (my (weird) svc) S 1 4242 4242 0 -1 4194560 12041 0 3 0 120 45 0 0 20 0 11 0 987654 1190000000 12345 18446744073709551615 1 1 0 0 0 0 0 16781312 134234626 0 0 0 17 1 0 0 0 0 0\n";
const KTHREAD =
  "14 (ksoftirqd/0) S 2 0 0 0 -1 69238848 0 0 0 0 0 3 0 0 20 0 1 0 24 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 17 0 0 0 0 0 0\n";

describe("/proc parsers", () => {
  it("reads stat fields after the last parenthesis", () => {
    expect(parseStat(STAT)).toEqual({
      pid: 4242,
      comm: "my (weird) svc",
      state: "S",
      ppid: 1,
      flags: 4194560,
      startTicks: 987654,
    });
    expect(isKernelThread(parseStat(STAT)!)).toBe(false);
    expect(isKernelThread(parseStat(KTHREAD)!)).toBe(true);
    expect(parseStat("")).toBeUndefined();
    expect(parseStat("12 (x) S 1")).toBeUndefined();
  });

  it("takes anonymous RSS from statm as resident minus shared pages", () => {
    // /proc/1/status of the same process said RssAnon: 6504 kB.
    expect(parseStatmAnonBytes("10615 3232 1606 1330 0 8769 0\n", 4096)).toBe(6504 * 1024);
    expect(parseStatmAnonBytes("", 4096)).toBeUndefined();
  });

  it("reads USS and PSS from smaps_rollup", () => {
    const text = [
      "55d0c8a5e000-7ffd2b7f3000 ---p 00000000 00:00 0                          [rollup]",
      "Rss:               47360 kB",
      "Pss:               40121 kB",
      "Pss_Anon:          36000 kB",
      "Shared_Clean:       9000 kB",
      "Shared_Dirty:          0 kB",
      "Private_Clean:      2360 kB",
      "Private_Dirty:     36000 kB",
      "",
    ].join("\n");
    expect(parseSmapsRollup(text)).toEqual({ pss: 40121 * 1024, uss: (2360 + 36000) * 1024 });
    expect(parseSmapsRollup("Rss: 1 kB\n")).toBeUndefined();
  });

  it("reads host and kernel memory from meminfo", () => {
    const text = [
      "MemTotal:       24684000 kB",
      "MemFree:        23220000 kB",
      "MemAvailable:   23610000 kB",
      "Buffers:           10000 kB",
      "SUnreclaim:        61234 kB",
      "VmallocUsed:       20480 kB",
      "HugePages_Total:       0",
      "",
    ].join("\n");
    expect(parseMeminfo(text)).toEqual({
      totalBytes: 24684000 * 1024,
      availableBytes: 23610000 * 1024,
      sUnreclaimBytes: 61234 * 1024,
      vmallocUsedBytes: 20480 * 1024,
    });
    // Kernels before 3.14 have no MemAvailable.
    expect(parseMeminfo("MemTotal: 100 kB\nMemFree: 20 kB\nCached: 30 kB\n")?.availableBytes).toBe(50 * 1024);
    expect(parseMeminfo("nothing")).toBeUndefined();
  });

  it("reads btime and slab caches", () => {
    expect(parseBootTimeSeconds("cpu  1 2 3\nbtime 1767571200\nprocesses 99\n")).toBe(1767571200);
    const slab = [
      "slabinfo - version: 2.1",
      "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>",
      "kmalloc-64          5120   5376     64   64    1 : tunables    0    0    0 : slabdata     84     84      0",
      "task_struct          420    440   7872    4    8 : tunables    0    0    0 : slabdata    110    110      0",
      "",
    ].join("\n");
    expect(parseSlabinfo(slab, 4096)).toEqual([
      { name: "kmalloc-64", bytes: 84 * 4096, activeObjects: 5120 },
      { name: "task_struct", bytes: 110 * 8 * 4096, activeObjects: 420 },
    ]);
    expect(parseSlabinfo("slabinfo - version: 1.1\n", 4096)).toBeUndefined();
  });

  it("finds the systemd unit in the cgroup v2 path and makes a component of it", () => {
    expect(parseCgroupV2Path("12:memory:/x\n0::/system.slice/nginx.service\n")).toBe(
      "/system.slice/nginx.service",
    );
    expect(parseCgroupV2Path("4:memory:/x\n")).toBeUndefined();
    expect(systemdUnitOf("/system.slice/nginx.service")).toBe("nginx.service");
    expect(systemdUnitOf("/user.slice/user-1000.slice/user@1000.service/app.slice/app.service")).toBe(
      "app.service",
    );
    expect(systemdUnitOf("/user.slice/user-1000.slice/session-3.scope")).toBe("session-3.scope");
    expect(systemdUnitOf("/")).toBeUndefined();
    expect(componentToken("nginx.service")).toBe("nginx");
    expect(componentToken("getty@tty1.service")).toBe("getty_tty1");
    expect(componentToken("(sd-pam)")).toBe("sd-pam");
    expect(componentToken("...")).toBeUndefined();
  });

  it("reads the command line and the OS", () => {
    expect(parseCmdline("node\0server.js\0--port\x003000\0")).toBe("node server.js --port 3000");
    expect(parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')).toBe(
      "debian 12",
    );
    expect(parseOsRelease('NAME="Arch Linux"\nID=arch\n')).toBe("arch");
  });
});
