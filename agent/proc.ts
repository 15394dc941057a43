/**
 * Parsers for the Linux /proc files the agent reads, kept pure (text in, values out) so they are
 * tested on fixture text; agent/host.ts does the reading. Sizes come out in bytes, times in
 * the units the kernel uses, converted by the caller.
 *
 * Formats: proc(5) and Documentation/filesystems/proc.rst of the kernel.
 */

/** What the agent needs of `/proc/<pid>/stat`. */
export interface ProcStat {
  pid: number;
  /** `comm`: the executable name, truncated by the kernel to 15 characters. */
  comm: string;
  /** One letter: R, S, D, Z (zombie), T, t, X, I (idle kernel thread)… */
  state: string;
  ppid: number;
  /** `flags` (field 9): PF_* bits; PF_KTHREAD marks kernel threads. */
  flags: number;
  /** Start time after boot, in clock ticks (field 22). */
  startTicks: number;
}

/** PF_KTHREAD in include/linux/sched.h: the task is a kernel thread (no user memory). */
export const PF_KTHREAD = 0x00200000;

/**
 * Parses `/proc/<pid>/stat`. The command name is in parentheses and may itself contain spaces
 * and parentheses, so the fields are counted from the last `)`. Undefined for text that is not
 * a stat line (a process that exited while being read gives an empty file).
 */
export function parseStat(text: string): ProcStat | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 1 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 2).split(" ");
  // rest[0] is field 3 (state), so field N is rest[N - 3].
  const state = rest[0];
  const ppid = Number(rest[1]);
  const flags = Number(rest[6]);
  const startTicks = Number(rest[19]);
  if (
    state === undefined ||
    state === "" ||
    !Number.isInteger(pid) ||
    !Number.isFinite(ppid) ||
    !Number.isFinite(flags) ||
    !Number.isFinite(startTicks)
  )
    return undefined;
  return { pid, comm: text.slice(open + 1, close), state, ppid, flags, startTicks };
}

/** Kernel threads own no user memory and are not services: the agent leaves them out. */
export function isKernelThread(stat: ProcStat): boolean {
  // The flag, not "pid 2 and its children": inside a PID namespace pid 2 is an ordinary process.
  return (stat.flags & PF_KTHREAD) !== 0;
}

/**
 * Anonymous resident bytes from `/proc/<pid>/statm`: `resident − shared` pages, which is exactly
 * RssAnon of `/proc/<pid>/status` (the kernel computes `shared` as RssFile + RssShmem and
 * `resident` as their sum with RssAnon), read from a file a tenth the size with no other
 * fields to format. Undefined when the text is not statm (the process exited).
 */
export function parseStatmAnonBytes(text: string, pageSize: number): number | undefined {
  const f = text.split(" ");
  const resident = Number(f[1]);
  const shared = Number(f[2]);
  if (f.length < 3 || !Number.isFinite(resident) || !Number.isFinite(shared)) return undefined;
  return Math.max(0, resident - shared) * pageSize;
}

/** `Key:   123 kB` lines (status, meminfo, smaps_rollup) as bytes per key; other lines are skipped. */
export function parseKbLines(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const value = line.slice(colon + 1).trim();
    const m = /^(\d+)(?:\s+kB)?$/.exec(value);
    if (m === null) continue;
    out.set(line.slice(0, colon), Number(m[1]) * (value.endsWith("kB") ? 1024 : 1));
  }
  return out;
}

/** The private memory measures of `/proc/<pid>/smaps_rollup`. */
export interface SmapsRollup {
  /** Proportional set size: private pages plus a share of each shared page. */
  pss: number;
  /** Unique set size: pages mapped by this process only (Private_Clean + Private_Dirty). */
  uss: number;
}

export function parseSmapsRollup(text: string): SmapsRollup | undefined {
  const kb = parseKbLines(text);
  const pss = kb.get("Pss");
  const clean = kb.get("Private_Clean");
  const dirty = kb.get("Private_Dirty");
  if (pss === undefined || clean === undefined || dirty === undefined) return undefined;
  return { pss, uss: clean + dirty };
}

/** What the agent needs of `/proc/meminfo`, in bytes. */
export interface MemInfo {
  totalBytes: number;
  availableBytes: number;
  /** Slab memory the kernel cannot reclaim under pressure: where kernel leaks show. */
  sUnreclaimBytes?: number;
  /** vmalloc'ed memory (drivers, modules, BPF…). */
  vmallocUsedBytes?: number;
}

export function parseMeminfo(text: string): MemInfo | undefined {
  const kb = parseKbLines(text);
  const total = kb.get("MemTotal");
  if (total === undefined) return undefined;
  // MemAvailable exists since Linux 3.14; before that, free + buffers + cache is the usual estimate.
  const available =
    kb.get("MemAvailable") ?? (kb.get("MemFree") ?? 0) + (kb.get("Buffers") ?? 0) + (kb.get("Cached") ?? 0);
  const out: MemInfo = { totalBytes: total, availableBytes: Math.min(total, available) };
  const sUnreclaim = kb.get("SUnreclaim");
  if (sUnreclaim !== undefined) out.sUnreclaimBytes = sUnreclaim;
  const vmalloc = kb.get("VmallocUsed");
  if (vmalloc !== undefined) out.vmallocUsedBytes = vmalloc;
  return out;
}

/** `btime` of `/proc/stat`: boot time, epoch seconds. */
export function parseBootTimeSeconds(text: string): number | undefined {
  const m = /^btime\s+(\d+)\s*$/m.exec(text);
  return m === null ? undefined : Number(m[1]);
}

/** One cache of `/proc/slabinfo` and the memory its slabs hold. */
export interface SlabCache {
  name: string;
  /** num_slabs × pages per slab × page size: what the cache holds, as slabtop's "cache size". */
  bytes: number;
  activeObjects: number;
}

/** Parses `/proc/slabinfo` version 2.x; undefined for another version. */
export function parseSlabinfo(text: string, pageSize: number): SlabCache[] | undefined {
  const lines = text.split("\n");
  if (!/^slabinfo - version: 2\./.test(lines[0] ?? "")) return undefined;
  const out: SlabCache[] = [];
  for (const line of lines.slice(1)) {
    if (line.startsWith("#") || line.trim() === "") continue;
    // name active_objs num_objs objsize objperslab pagesperslab : tunables … : slabdata active_slabs num_slabs sharedavail
    const [head, , slabdata] = line.split(" : ");
    const h = head?.trim().split(/\s+/);
    const s = slabdata?.trim().split(/\s+/);
    if (h === undefined || s === undefined || h.length < 6 || s.length < 3) continue;
    const pagesPerSlab = Number(h[5]);
    const numSlabs = Number(s[2]);
    const active = Number(h[1]);
    if (!Number.isFinite(pagesPerSlab) || !Number.isFinite(numSlabs) || !Number.isFinite(active)) continue;
    out.push({ name: h[0]!, bytes: numSlabs * pagesPerSlab * pageSize, activeObjects: active });
  }
  return out;
}

/**
 * The cgroup v2 path of a process (`0::<path>` in `/proc/<pid>/cgroup`); undefined on a pure
 * cgroup v1 host, where the unified line is absent.
 */
export function parseCgroupV2Path(text: string): string | undefined {
  const m = /^0::(\S*)$/m.exec(text);
  return m === null ? undefined : m[1];
}

/**
 * The systemd unit a cgroup path names: the innermost `.service` (a service's own processes,
 * also when it delegates sub-cgroups), else the innermost `.scope` (a session or a container
 * started with systemd-run --scope). `/system.slice/nginx.service` → `nginx.service`;
 * `/user.slice/user-1000.slice/user@1000.service/app.slice/app.service` → `app.service`.
 */
export function systemdUnitOf(cgroupPath: string): string | undefined {
  const parts = cgroupPath.split("/").filter((p) => p !== "");
  for (const suffix of [".service", ".scope"]) {
    for (let i = parts.length - 1; i >= 0; i--) if (parts[i]!.endsWith(suffix)) return parts[i];
  }
  return undefined;
}

/**
 * A subject token ([A-Za-z0-9_-]{1,128}) for a unit or process name: the unit suffix dropped,
 * template instances kept (`getty@tty1.service` → `getty_tty1`), other characters as `_`.
 * Undefined when nothing is left.
 */
export function componentToken(name: string): string | undefined {
  const bare = name.replace(/\.(service|scope)$/, "");
  const token = bare
    .replace(/[^A-Za-z0-9_-]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, 128);
  return token === "" ? undefined : token;
}

/** `/proc/<pid>/cmdline`: NUL-separated arguments, joined by spaces for matching. */
export function parseCmdline(text: string): string {
  return text.replace(/\0+$/, "").split("\0").join(" ");
}

/**
 * The OS as `<ID> <VERSION_ID>` from `/etc/os-release` (e.g. "debian 12", "ubuntu 24.04"):
 * stable across point releases, so reference fingerprints of one OS stay together.
 */
export function parseOsRelease(text: string): string | undefined {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m !== null) fields.set(m[1]!, m[2]!.replace(/^["']|["']$/g, ""));
  }
  const id = fields.get("ID");
  if (id === undefined || id === "") return fields.get("PRETTY_NAME");
  const version = fields.get("VERSION_ID");
  return version === undefined || version === "" ? id : `${id} ${version}`;
}
