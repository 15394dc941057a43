import type { Frame } from "../lib/heap/profile.ts";
import type { ProcessSpec, SimConfig } from "./config.ts";
import type { Plan } from "./plan.ts";
import { Rand } from "./rng.ts";

/**
 * The allocation stacks of simulated processes: per (component, process) a catalogue of 30–80
 * plausible stacks, each with the role its memory plays (simulate/heap.ts gives the roles their
 * behaviour), and per injected process leak one leaking stack that no healthy stack shares.
 * Same code everywhere: the catalogue depends on the seed and the (component, process) only, so
 * every host running it has the same stacks, the same functions, files and lines; a canary's
 * leaking stack depends on the leaking version, so all its hosts share it.
 * Imports nothing from plan.ts at run time, so plan.ts can name the leaking stack in the truth.
 */

/** How a runtime's heap profiler samples and names things. */
export type HeapRuntime = "go" | "jemalloc" | "node";

/**
 * What a stack's memory does over time:
 * - `static`: allocated at start-up and kept (config, tables, registries);
 * - `churn`: short-lived request memory, up and down between profiles around a mean;
 * - `load`: memory that follows the load (connections, sessions), diurnal;
 * - `cache`: fills after every (re)start and settles at its capacity;
 * - `vm`: per customer VM (or tenant) state;
 * - `burst`: held while a transient burst lasts.
 */
export type StackRole = "static" | "churn" | "load" | "cache" | "vm" | "burst";

export interface CatalogStack {
  /** Leaf (allocating function) first. */
  frames: Frame[];
  role: StackRole;
  /** Share of its role's memory, before per-host variation (weights of one role need not sum to 1). */
  weight: number;
  /** Typical size of one allocation, bytes: sets the sampling noise. */
  objectBytes: number;
}

export interface HeapCatalog {
  component: string;
  process: string;
  runtime: HeapRuntime;
  /** Mean bytes between two sampled allocations (Go's MemProfileRate, jemalloc's lg_prof_sample, V8's interval). */
  samplingBytes: number;
  stacks: CatalogStack[];
}

/** Go and jemalloc sample every 512 KiB by default; our V8 tracer every 32 KiB. */
export const SAMPLING_BYTES: Record<HeapRuntime, number> = {
  go: 512 * 1024,
  jemalloc: 512 * 1024,
  node: 32 * 1024,
};

/** The runtimes and code areas of the default catalogue's components; others are drawn from their name. */
const KNOWN: Record<string, { runtime: HeapRuntime; packages: string[] }> = {
  "storage-cache": {
    runtime: "go",
    packages: ["cache", "blob", "index", "disk", "storage", "compress", "pool", "rpc", "metrics", "config"],
  },
  "vm-agent": {
    runtime: "go",
    packages: ["vm", "tenant", "disk", "netcfg", "rpc", "metrics", "config", "watch", "lease"],
  },
  "net-proxy": {
    runtime: "jemalloc",
    packages: ["conn", "http", "tls", "dns", "router", "buffer", "filter", "stats", "config", "upstream"],
  },
  "host-api": {
    runtime: "node",
    packages: ["api", "router", "session", "auth", "codec", "db", "metrics", "config", "cache"],
  },
  "monitor-agent": {
    runtime: "go",
    packages: ["collector", "metrics", "scrape", "export", "queue", "config", "logging"],
  },
  "log-shipper": {
    runtime: "jemalloc",
    packages: ["tail", "parser", "batch", "compress", "sink", "buffer", "config", "checkpoint"],
  },
};

const GENERIC_PACKAGES = [
  "server",
  "client",
  "cache",
  "codec",
  "config",
  "metrics",
  "queue",
  "store",
  "session",
  "auth",
  "router",
  "buffer",
  "pool",
  "watch",
  "sched",
  "proto",
  "index",
  "stream",
  "events",
  "worker",
];

const NOUNS: Record<StackRole | "leak", string[]> = {
  churn: [
    "Request",
    "Response",
    "Frame",
    "Header",
    "Body",
    "Chunk",
    "Payload",
    "Message",
    "Row",
    "Packet",
    "Batch",
    "Record",
  ],
  load: [
    "Conn",
    "Stream",
    "Session",
    "Worker",
    "Upstream",
    "Channel",
    "Peer",
    "Lease",
    "Client",
    "Subscription",
  ],
  static: [
    "Config",
    "Registry",
    "RouteTable",
    "Schema",
    "Index",
    "Pool",
    "Dictionary",
    "Plugins",
    "Catalog",
    "Rules",
  ],
  cache: ["Entry", "Block", "Token", "Record", "Key", "Chunk", "Page", "Segment", "Resolver", "Manifest"],
  vm: ["VM", "Disk", "Nic", "Tenant", "Volume", "Lease", "Port", "Snapshot"],
  burst: ["Samples", "Series", "Events", "Batch", "Points", "Spans", "Traces"],
  leak: [
    "Session",
    "Buffer",
    "Listener",
    "Callback",
    "Span",
    "Handle",
    "Event",
    "Timer",
    "Context",
    "Subscriber",
    "Pending",
    "Waiter",
    "Ticket",
    "Cursor",
    "Delta",
    "Attempt",
    "Closure",
    "Watcher",
    "Inflight",
    "Retry",
  ],
};

const VERBS: Record<StackRole | "leak", string[]> = {
  churn: [
    "read",
    "decode",
    "parse",
    "marshal",
    "unmarshal",
    "encode",
    "copy",
    "format",
    "compress",
    "decompress",
    "serialize",
    "split",
    "clone",
  ],
  load: ["accept", "open", "dial", "acquire", "handle", "dispatch", "start", "attach"],
  static: ["load", "init", "register", "compile", "build", "new", "parse"],
  cache: ["put", "insert", "add", "store", "intern", "memoize", "set", "fill"],
  vm: ["attach", "track", "register", "watch", "open", "sync"],
  burst: ["collect", "snapshot", "gather", "batch", "flush", "scrape"],
  leak: [
    "retain",
    "append",
    "subscribe",
    "track",
    "register",
    "enqueue",
    "remember",
    "record",
    "watch",
    "pin",
    "keep",
    "stash",
    "hold",
    "defer",
    "queue",
    "save",
  ],
};

/** Shared allocation sites of each runtime's standard library: many stacks end in them. */
const STDLIB_LEAVES: Record<HeapRuntime, Frame[]> = {
  go: [
    { fn: "bytes.growSlice", file: "bytes/buffer.go", line: 249 },
    { fn: "bufio.NewReaderSize", file: "bufio/bufio.go", line: 57 },
    { fn: "encoding/json.(*decodeState).literalStore", file: "encoding/json/decode.go", line: 947 },
    { fn: "strings.(*Builder).grow", file: "strings/builder.go", line: 68 },
  ],
  jemalloc: [
    { fn: "std::vector<char>::_M_realloc_insert", file: "/usr/include/c++/12/bits/vector.tcc", line: 440 },
    {
      fn: "std::__cxx11::basic_string::_M_create",
      file: "/usr/include/c++/12/bits/basic_string.tcc",
      line: 141,
    },
    { fn: "absl::InlinedVector::Grow", file: "absl/container/inlined_vector.h", line: 612 },
  ],
  node: [
    { fn: "Buffer.allocUnsafe", file: "node:buffer", line: 389 },
    { fn: "JSON.parse", file: "node:internal/json", line: 1 },
    { fn: "Readable.push", file: "node:internal/streams/readable", line: 278 },
  ],
};

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** One generator of names for a (component, process), shared by the catalogue and its leaks. */
class Namer {
  readonly runtime: HeapRuntime;
  readonly packages: string[];
  private readonly root: string;

  constructor(
    readonly component: string,
    rng: Rand,
  ) {
    const known = KNOWN[component];
    this.runtime = known?.runtime ?? rng.pick<HeapRuntime>(["go", "jemalloc", "node"]);
    this.packages = known?.packages ?? rng.shuffle([...GENERIC_PACKAGES]).slice(0, rng.int(6, 10));
    this.root =
      this.runtime === "node" ? `/srv/${component}/lib` : this.runtime === "go" ? "internal" : "src";
  }

  file(pkg: string, stem: string): string {
    const ext = this.runtime === "go" ? "go" : this.runtime === "node" ? "js" : "cc";
    return `${this.root}/${pkg}/${stem.toLowerCase()}.${ext}`;
  }

  /** A function named after a verb and a noun, in package `pkg`, defined in `file`. */
  frame(rng: Rand, pkg: string, type: string, verb: string, noun: string): Frame {
    const method = `${verb}${noun}`;
    const exported = capitalize(method);
    const fn =
      this.runtime === "go"
        ? rng.chance(0.6)
          ? `${pkg}.(*${type}).${exported}`
          : `${pkg}.${rng.chance(0.5) ? exported : method}`
        : this.runtime === "node"
          ? rng.chance(0.6)
            ? `${type}.${method}`
            : method
          : `${this.component.replace(/[^A-Za-z0-9]/g, "_")}::${pkg}::${type}::${exported}`;
    return { fn, file: this.file(pkg, rng.chance(0.5) ? type : pkg), line: rng.int(12, 1400) };
  }

  /** Frames that call into a package: a helper or two, then an entry chain. */
  callers(rng: Rand, pkg: string, entries: Frame[][]): Frame[] {
    const out: Frame[] = [];
    const helpers = rng.int(0, 2);
    for (let i = 0; i < helpers; i++) {
      const p = i === 0 ? pkg : rng.pick(this.packages);
      out.push(
        this.frame(
          rng,
          p,
          capitalize(p),
          rng.pick(["handle", "process", "run", "do", "serve", "apply"]),
          rng.pick(["Request", "Batch", "Op", "Call", "Task", "Event"]),
        ),
      );
    }
    return [...out, ...rng.pick(entries)];
  }

  /** Entry chains (the top of many stacks): server loops, workers, timers. */
  entries(rng: Rand): Frame[][] {
    const n = rng.int(4, 7);
    const chains: Frame[][] = [];
    for (let i = 0; i < n; i++) {
      const pkg = rng.pick(this.packages);
      const top = this.frame(
        rng,
        pkg,
        capitalize(pkg),
        rng.pick(["serve", "run", "loop", "poll", "tick"]),
        rng.pick(["Conn", "Loop", "Worker", "Queue", "Timer", ""]),
      );
      const root: Frame =
        this.runtime === "go"
          ? { fn: "runtime.goexit", file: "runtime/asm_amd64.s", line: 1700 }
          : this.runtime === "node"
            ? { fn: "processTicksAndRejections", file: "node:internal/process/task_queues", line: 95 }
            : { fn: "start_thread", file: "./nptl/pthread_create.c", line: 442 };
      chains.push([top, root]);
    }
    return chains;
  }
}

const catalogs = new WeakMap<SimConfig, Map<string, HeapCatalog>>();

function processSpec(config: SimConfig, component: string, process: string): ProcessSpec {
  const spec = config.components.find((c) => c.name === component)?.processes.find((p) => p.name === process);
  if (spec === undefined)
    throw new RangeError(`no process ${component}/${process} in the simulation's catalog`);
  return spec;
}

/** The heap stacks of a (component, process) of a simulation: the same on every host. */
export function heapCatalog(config: SimConfig, component: string, process: string): HeapCatalog {
  let perConfig = catalogs.get(config);
  if (perConfig === undefined) {
    perConfig = new Map();
    catalogs.set(config, perConfig);
  }
  const key = `${component}\u0000${process}`;
  let cat = perConfig.get(key);
  if (cat === undefined) {
    cat = buildCatalog(config.seed, component, process, processSpec(config, component, process));
    perConfig.set(key, cat);
  }
  return cat;
}

function namerOf(seed: number, component: string, process: string): { namer: Namer; entries: Frame[][] } {
  const rng = new Rand(seed, `heap-names/${component}/${process}`);
  const namer = new Namer(component, rng);
  return { namer, entries: namer.entries(rng) };
}

function buildCatalog(seed: number, component: string, process: string, spec: ProcessSpec): HeapCatalog {
  const { namer, entries } = namerOf(seed, component, process);
  const rng = new Rand(seed, `heap-catalog/${component}/${process}`);
  const stacks: CatalogStack[] = [];
  const seen = new Set<string>();
  const leafKey = (f: Frame) => `${f.fn}\u0000${f.file}`;
  const add = (role: StackRole, objectRange: [number, number]) => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const pkg = rng.pick(namer.packages);
      const stdlib = role === "churn" && rng.chance(0.25);
      const leaf = stdlib
        ? rng.pick(STDLIB_LEAVES[namer.runtime])
        : namer.frame(
            rng,
            pkg,
            capitalize(rng.pick(NOUNS[role])),
            rng.pick(VERBS[role]),
            rng.pick(NOUNS[role]),
          );
      if (!stdlib && seen.has(leafKey(leaf))) continue;
      seen.add(leafKey(leaf));
      const frames = [leaf, ...namer.callers(rng, pkg, entries)];
      stacks.push({
        frames,
        role,
        weight: Math.exp(1.1 * rng.normal()),
        objectBytes: Math.round(rng.logRange(objectRange)),
      });
      return;
    }
  };

  const n = rng.int(30, 80);
  const caches = rng.int(1, 3);
  const vms = spec.perVmBytes !== undefined ? rng.int(1, 3) : 0;
  const bursts = spec.bursts !== undefined ? rng.int(1, 2) : 0;
  for (let i = 0; i < caches; i++) add("cache", [64, 8192]);
  for (let i = 0; i < vms; i++) add("vm", [1024, 65536]);
  for (let i = 0; i < bursts; i++) add("burst", [256, 32768]);
  const rest = n - caches - vms - bursts;
  const nStatic = Math.round(rest * 0.32);
  const nLoad = Math.round(rest * 0.2);
  for (let i = 0; i < nStatic; i++) add("static", [32, 4096]);
  for (let i = 0; i < nLoad; i++) add("load", [512, 65536]);
  for (let i = 0; i < rest - nStatic - nLoad; i++) add("churn", [128, 131072]);
  // Interleave the roles, as a profiler lists stacks in no meaningful order.
  rng.shuffle(stacks);
  return { component, process, runtime: namer.runtime, samplingBytes: SAMPLING_BYTES[namer.runtime], stacks };
}

/** How one version changed a process's code, relative to the component's initial version. */
export interface VersionChanges {
  /** New leaf line of the catalogue stacks whose allocating function this version edited, by index. */
  movedLines: Map<number, number>;
  /** Stacks of code this version added (`weight`: their share of the process's base size). */
  added: CatalogStack[];
}

const NO_CHANGES: VersionChanges = { movedLines: new Map(), added: [] };
const versionCache = new WeakMap<SimConfig, Map<string, VersionChanges>>();

/**
 * What a release changes in the heap: about 1 allocating function in 10 is edited (its stacks
 * move to another line, so they no longer match the old version's by line), and 0–2 new stacks
 * come with new code. Each version is drawn against the initial one, the same on every host.
 */
export function versionChanges(
  config: SimConfig,
  component: string,
  process: string,
  version: string,
): VersionChanges {
  const initial = config.components.find((c) => c.name === component)?.version;
  if (version === initial) return NO_CHANGES;
  let perConfig = versionCache.get(config);
  if (perConfig === undefined) {
    perConfig = new Map();
    versionCache.set(config, perConfig);
  }
  const key = `${component}\u0000${process}\u0000${version}`;
  const cached = perConfig.get(key);
  if (cached !== undefined) return cached;
  const catalog = heapCatalog(config, component, process);
  const { namer, entries } = namerOf(config.seed, component, process);
  const rng = new Rand(config.seed, `heap-version/${component}/${process}/${version}`);
  const movedLines = new Map<number, number>();
  catalog.stacks.forEach((s, i) => {
    if (!rng.chance(0.1)) return;
    const shift = rng.int(1, 40) * (rng.chance(0.5) ? 1 : -1);
    movedLines.set(i, Math.max(1, s.frames[0]!.line + shift));
  });
  const added: CatalogStack[] = [];
  const n = rng.int(0, 2);
  for (let i = 0; i < n; i++) {
    const role: StackRole = rng.chance(0.5) ? "static" : "churn";
    const pkg = rng.pick(namer.packages);
    const leaf = namer.frame(
      rng,
      pkg,
      capitalize(rng.pick(NOUNS[role])),
      rng.pick(VERBS[role]),
      rng.pick(NOUNS[role]),
    );
    added.push({
      frames: [leaf, ...namer.callers(rng, pkg, entries)],
      role,
      weight: rng.range([0.005, 0.03]),
      objectBytes: Math.round(rng.logRange(role === "static" ? [32, 4096] : [128, 131072])),
    });
  }
  const changes = { movedLines, added };
  perConfig.set(key, changes);
  return changes;
}

/** The leaking allocation stack of a leak (process leaks only) and the size of one leaked object. */
export interface LeakStack {
  frames: Frame[];
  objectBytes: number;
}

type LeakEntry = Plan["leaks"][number];

/**
 * The stack that allocates what a process leak retains. Drawn per leak: an isolated leak is a
 * bug on its own host; a canary regression is one bug in one version, so every host of the
 * version leaks from the same stack. Its leaf (function and file) is in no healthy stack of the
 * process, so naming it is unambiguous. Throws for kernel pool leaks (no heap profile).
 */
export function leakStackOf(plan: Plan, entry: LeakEntry): Frame[] {
  return leakStack(plan, entry).frames;
}

export function leakStack(plan: Plan, entry: LeakEntry): LeakStack {
  const { host, comp, proc, leak } = entry;
  if (leak.kind !== "process" || comp.kernel) {
    throw new RangeError(`kernel pool leak ${host.id}/${comp.name}/${proc.name} has no allocation stack`);
  }
  const seed = plan.config.seed;
  const catalog = heapCatalog(plan.config, comp.name, proc.name);
  const taken = new Set(catalog.stacks.map((s) => `${s.frames[0]!.fn}\u0000${s.frames[0]!.file}`));
  const { namer, entries } = namerOf(seed, comp.name, proc.name);
  const key =
    leak.cause === "canary" && leak.version !== undefined
      ? `heap-leak/version/${comp.name}/${proc.name}/${leak.version}`
      : `heap-leak/${host.id}/${comp.name}/${proc.name}/${leak.startTs}`;
  const rng = new Rand(seed, key);
  for (let attempt = 0; ; attempt++) {
    const pkg = rng.pick(namer.packages);
    const leaf = namer.frame(
      rng,
      pkg,
      capitalize(rng.pick(NOUNS.leak)),
      rng.pick(VERBS.leak),
      rng.pick(NOUNS.leak),
    );
    if (attempt >= 50) leaf.fn += String(attempt); // a vocabulary this small cannot be exhausted; just in case
    if (taken.has(`${leaf.fn}\u0000${leaf.file}`)) continue;
    return {
      frames: [leaf, ...namer.callers(rng, pkg, entries)],
      objectBytes: Math.round(rng.logRange([48, 16384])),
    };
  }
}
