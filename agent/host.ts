/**
 * Facts about the host the agent reads once or per interval outside /proc/<pid>: page size and
 * USER_HZ (from getconf), the OS (from /etc/os-release), and the VM / tenant count (config
 * `vms`: a fixed count, a file or a command).
 */
import { execFile, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { VmSource } from "./config.ts";
import { parseOsRelease } from "./proc.ts";
import { DEFAULT_CLOCK_TICKS, DEFAULT_PAGE_SIZE } from "./sampler.ts";

function getconf(name: string, fallback: number): number {
  try {
    const n = Number(execFileSync("getconf", [name], { encoding: "utf8", timeout: 5000 }).trim());
    return Number.isInteger(n) && n > 0 ? n : fallback;
  } catch {
    // no getconf (minimal images): Linux uses these values on every architecture resin runs on
    return fallback;
  }
}

export const pageSize = (): number => getconf("PAGESIZE", DEFAULT_PAGE_SIZE);
export const clockTicks = (): number => getconf("CLK_TCK", DEFAULT_CLOCK_TICKS);

/** "debian 12", or undefined without a readable /etc/os-release. */
export function hostOs(path = "/etc/os-release"): string | undefined {
  try {
    return parseOsRelease(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** A non-negative integer in the text, or an error naming where it came from and what it was. */
function count(text: string, where: string): number {
  const t = text.trim();
  if (!/^\d+$/.test(t))
    throw new Error(
      `${where}: expected a VM count (a non-negative integer), got ${JSON.stringify(t.slice(0, 80))}`,
    );
  return Number(t);
}

/** Reads the VM count as configured; rejects with an error naming the source and what it gave. */
export async function readVmCount(source: VmSource): Promise<number> {
  if ("count" in source) return source.count;
  if ("file" in source) return count(readFileSync(source.file, "utf8"), `vms.file ${source.file}`);
  const [cmd, ...args] = source.command;
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(cmd!, args, { timeout: source.timeoutMs, encoding: "utf8" }, (err, out) => {
      if (err) reject(new Error(`vms.command ${JSON.stringify(source.command)} failed: ${err.message}`));
      else resolve(out);
    });
  });
  return count(stdout, `vms.command ${JSON.stringify(source.command)}`);
}
