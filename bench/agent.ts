/**
 * The Linux agent's own cost on this machine with ~500 extra processes (cheap `sleep`s): CPU per
 * sampling pass (in process, on the real /proc), the projected share of one core at one pass a
 * minute, and the memory of a real `resin agent` process publishing to a real nats-server.
 * Baselines measured in the same run: `ps -eo pid,rss,lstart,comm` (procps reading the same
 * /proc, in C) for the pass, and a bare Node.js process for the memory.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseAgentConfig } from "../agent/config.ts";
import { clockTicks, pageSize } from "../agent/host.ts";
import { RealProcFs } from "../agent/procfs.ts";
import { Sampler } from "../agent/sampler.ts";
import { startNats } from "../lib/testing/servers.ts";
import type { BenchRow, BenchSuite } from "./types.ts";

const EXTRA_PROCESSES = 500;
const PASSES = 40;
const TARGET_CORE_SHARE = 0.01;
const TARGET_RSS_BYTES = 80 * 1024 * 1024;
const ROOT = resolve(import.meta.dirname, "..");

/** CPU ms (user + system) of this process. */
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** CPU ms of one `ps` over the whole process table, averaged over `runs` (children's times via the shell). */
function psPassCpuMs(runs: number): number {
  const out = execFileSync(
    "sh",
    [
      "-c",
      `i=0; while [ $i -lt ${runs} ]; do ps -eo pid,rss,lstart,comm >/dev/null; i=$((i+1)); done; cat /proc/$$/stat`,
    ],
    { encoding: "utf8" },
  );
  const fields = out.slice(out.lastIndexOf(")") + 2).split(" ");
  // cutime and cstime are fields 16 and 17 (rest[13], rest[14]), in clock ticks.
  const ticks = Number(fields[13]) + Number(fields[14]);
  return (ticks * 1000) / clockTicks() / runs;
}

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

function cpuTicks(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return Number(rest[11]) + Number(rest[12]);
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const agentBench: BenchSuite = {
  name: "agent (the Linux agent's overhead)",
  async run({ quick }) {
    const extra = quick ? 100 : EXTRA_PROCESSES;
    const sleepers: ChildProcess[] = [];
    const children: ChildProcess[] = [];
    const server = await startNats();
    try {
      for (let i = 0; i < extra; i++)
        sleepers.push(spawn("sleep", ["3600"], { stdio: "ignore", detached: false }));
      await pause(500);
      const processes = new RealProcFs().pids().length;

      // 1. One sampling pass, in this process, on the real /proc (the first pass classifies every
      //    process; later passes reuse that).
      const sampler = new Sampler(parseAgentConfig({}), {
        host: "bench",
        fs: new RealProcFs(),
        pageSize: pageSize(),
        clockTicks: clockTicks(),
      });
      sampler.sample(Date.now());
      const c0 = cpuMs();
      let messages = 0;
      for (let i = 0; i < PASSES; i++) messages += sampler.sample(Date.now()).messages.length;
      const passMs = (cpuMs() - c0) / PASSES;
      const psMs = psPassCpuMs(PASSES);

      // 2. A real agent process at one pass a minute, publishing to nats-server: its memory once
      //    it has published, and its CPU over a minute (one pass, timers, NATS pings).
      const bare = spawn(process.execPath, ["-e", "setTimeout(() => {}, 120000)"], { stdio: "ignore" });
      children.push(bare);
      const agent = spawn(
        process.execPath,
        [
          resolve(ROOT, "bin/resin.js"),
          "agent",
          "--nats",
          server.url,
          "--interval",
          "1m",
          "--metrics-port",
          "0",
          "--host",
          "bench",
        ],
        { stdio: "ignore" },
      );
      children.push(agent);
      await pause(8000);
      const window = quick ? 20_000 : 60_000;
      const t0 = cpuTicks(agent.pid!);
      const w0 = Date.now();
      let rss = rssBytes(agent.pid!);
      while (Date.now() - w0 < window) {
        await pause(1000);
        rss = Math.max(rss, rssBytes(agent.pid!));
      }
      const agentCpuMs = ((cpuTicks(agent.pid!) - t0) * 1000) / clockTicks();
      const share = agentCpuMs / (Date.now() - w0);
      const bareRss = rssBytes(bare.pid!);
      // At one pass a minute: the measured minute holds about one pass (the agent samples at
      // start and every minute); the in-process figure is the pass alone.
      const projected = passMs / 60_000;

      const rows: BenchRow[] = [
        {
          name: `agent: processes on the host during the bench (${extra} sleeps added)`,
          value: processes,
          unit: "processes",
        },
        {
          name: "agent: CPU per sampling pass (in process)",
          value: passMs,
          unit: "ms",
          baseline: { name: "ps -eo pid,rss,lstart,comm ms", value: Number(psMs.toFixed(2)) },
          ratio: passMs / psMs,
        },
        { name: "agent: messages per pass (one per component)", value: messages / PASSES, unit: "messages" },
        {
          name: "agent: CPU share of one core at 1 pass/min (pass alone)",
          value: projected * 100,
          unit: "%",
          target: `< ${TARGET_CORE_SHARE * 100}%`,
          met: projected < TARGET_CORE_SHARE,
        },
        {
          name: `agent: CPU share of one core, resin agent measured over ${window / 1000} s`,
          value: share * 100,
          unit: "%",
          target: `< ${TARGET_CORE_SHARE * 100}%`,
          met: share < TARGET_CORE_SHARE,
        },
        {
          name: "agent: RSS of resin agent (peak after start-up)",
          value: rss / 2 ** 20,
          unit: "MiB",
          baseline: { name: "bare node MiB", value: Number((bareRss / 2 ** 20).toFixed(1)) },
          ratio: rss / bareRss,
          target: `< ${TARGET_RSS_BYTES / 2 ** 20} MiB`,
          met: rss < TARGET_RSS_BYTES,
        },
      ];
      return rows;
    } finally {
      for (const c of [...children, ...sleepers]) c.kill("SIGKILL");
      await server.dispose();
    }
  },
};
