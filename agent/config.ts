/**
 * The agent's configuration: one JSON file, validated by one strict schema (unknown keys are
 * errors, every error names the field and the value), with CLI flags for the basics on top
 * (cli/agent.ts). Every field is documented where it is declared; README "The Linux agent" has
 * an example.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { checkOrThrow, SUBJECT_TOKEN, SubjectToken } from "../schemas/common.ts";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds, as a number or a string like "500ms", "30s", "5m", "1h". */
export const Duration = z.union([
  z.number().int().nonnegative(),
  z
    .string()
    .regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, 'must be milliseconds or a duration like "30s", "5m", "1h"')
    .transform((s) => {
      const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(s)!;
      return Math.round(Number(m[1]) * UNITS[m[2]!]!);
    }),
]);

/** Bytes, as a number or a string like "512KiB", "1MiB", "2GiB". */
export const Size = z.union([
  z.number().int().nonnegative(),
  z
    .string()
    .regex(/^\d+(\.\d+)?(B|KiB|MiB|GiB)$/, 'must be bytes or a size like "512KiB", "4MiB", "1GiB"')
    .transform((s) => {
      const m = /^(\d+(?:\.\d+)?)(B|KiB|MiB|GiB)$/.exec(s)!;
      const unit = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2] as "B"];
      return Math.round(Number(m[1]) * unit);
    }),
]);

/** A regular expression given as a string; refused at load time when it does not compile. */
const Pattern = z.string().refine(
  (s) => {
    try {
      new RegExp(s);
      return true;
    } catch {
      return false;
    }
  },
  { message: "is not a valid regular expression" },
);

/** Where a component's heap profiles come from (the snapshot protocol). */
export const SnapshotSourceConfig = z.discriminatedUnion("kind", [
  z.strictObject({
    /** A pprof heap endpoint, e.g. Go's net/http/pprof `/debug/pprof/heap`, fetched on each collect. */
    kind: z.literal("pprof-http"),
    /** URL of the profile; `{pid}` is replaced by the traced process's pid. */
    url: z.string().url(),
    /** Longest wait for one profile, ms. */
    timeoutMs: Duration.default(30_000),
  }),
  z.strictObject({
    /** A Node.js process, through its inspector and V8's sampling heap profiler (agent/snapshot-node.ts). */
    kind: z.literal("node-inspector"),
    /**
     * The inspector's `host:port` or WebSocket URL; `{pid}` is replaced. Without it, the
     * inspector of a process started without --inspect is opened by SIGUSR1 on 127.0.0.1:9229.
     */
    inspector: z.string().min(1).optional(),
  }),
  z.strictObject({
    /** Refuse snapshots of this component (profiling it is not allowed or not possible). */
    kind: z.literal("none"),
  }),
]);
export type SnapshotSourceConfig = z.infer<typeof SnapshotSourceConfig>;

/** One rule mapping processes to a component; the first rule that matches wins. */
export const ComponentRule = z
  .strictObject({
    /** Component of the matching processes (telemetry `component`; a NATS subject token). */
    component: SubjectToken,
    /** Regular expression on the process name (`comm`, at most 15 characters). */
    name: Pattern.optional(),
    /** Regular expression on the command line (arguments joined by spaces). */
    cmdline: Pattern.optional(),
    /** Regular expression on the systemd unit (e.g. "^nginx\\.service$"). */
    unit: Pattern.optional(),
    /** Process name reported in telemetry (default: the process's `comm`). */
    process: z.string().min(1).max(256).optional(),
    /** Version of the component, sent as attrs.version (part of reference fingerprints). */
    version: z.string().min(1).optional(),
    /** How heap profiles of this component are taken (default: not at all). */
    snapshot: SnapshotSourceConfig.optional(),
  })
  .refine((r) => r.name !== undefined || r.cmdline !== undefined || r.unit !== undefined, {
    message: "a component rule needs at least one of name, cmdline or unit",
  });
export type ComponentRule = z.infer<typeof ComponentRule>;

/** Where the VM / tenant count of the host comes from. */
export const VmSource = z.union([
  /** A fixed count (a host that never runs VMs: 0). */
  z.strictObject({ count: z.number().int().nonnegative() }),
  /** A file holding the count (a decimal integer), e.g. written by the hypervisor's tooling. */
  z.strictObject({ file: z.string().min(1) }),
  /** A command printing the count on stdout, run once per interval, e.g. ["sh", "-c", "virsh list --name | grep -c ."]. */
  z.strictObject({
    command: z.array(z.string().min(1)).min(1),
    timeoutMs: Duration.default(5000),
  }),
]);
export type VmSource = z.infer<typeof VmSource>;

/** Components a host-wide action may be run for (a kernel leak, by default). */
const HostComponents = z
  .array(z.union([SubjectToken, z.literal("*")]))
  .min(1)
  .default(["kernel"]);

/**
 * One allowlisted mitigation: what the agent does when resin asks for this action on this
 * component, and nothing else (lib/agent/mitigate-protocol.ts names the actions).
 */
export const MitigationRule = z.discriminatedUnion("action", [
  z.strictObject({
    /**
     * Stop the leaking process (`signal`, then SIGKILL after `graceMs`) and, with `command`,
     * start it again, detached from the agent (output appended to `logFile`, else discarded).
     * Without `command` its supervisor is expected to restart it.
     */
    action: z.literal("restart-process"),
    component: SubjectToken,
    /** Regular expression the process name must match too (default: any process of the component). */
    process: Pattern.optional(),
    signal: z.enum(["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR2"]).default("SIGTERM"),
    graceMs: Duration.default(10_000),
    /** argv of the command that starts the process again. */
    command: z.array(z.string().min(1)).min(1).optional(),
    cwd: z.string().min(1).optional(),
    /** Added to the agent's environment for `command`. */
    env: z.record(z.string(), z.string()).optional(),
    logFile: z.string().min(1).optional(),
  }),
  z.strictObject({
    /** `systemctl restart <unit>`: the unit of the named process, else `unit`. */
    action: z.literal("restart-service"),
    component: SubjectToken,
    /** Unit to restart when the command names no process of a unit (default: `<component>.service`). */
    unit: z.string().min(1).optional(),
    timeoutMs: Duration.default(120_000),
  }),
  z.strictObject({
    /** A team's registered action for its component: resin names it by `script`. */
    action: z.literal("custom"),
    component: SubjectToken,
    script: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, "must match [A-Za-z0-9_.-]{1,128}"),
    /** argv run for it; RESIN_COMPONENT, RESIN_PROCESS, RESIN_PID and RESIN_SUSPECT are set. */
    command: z.array(z.string().min(1)).min(1),
    timeoutMs: Duration.default(600_000),
  }),
  z.strictObject({
    /** Live-migrate the host's VMs away (before a reboot): the hypervisor's own tooling. */
    action: z.literal("migrate-vms"),
    components: HostComponents,
    command: z.array(z.string().min(1)).min(1),
    timeoutMs: Duration.default(3_600_000),
  }),
  z.strictObject({
    /**
     * Restart userspace on the running kernel's terms: "soft-reboot" (`systemctl soft-reboot`,
     * systemd ≥ 254; kernel state stays, so it helps userspace leaks only) or "kexec"
     * (`systemctl kexec`: a fresh kernel without firmware and hardware initialisation, which
     * frees a kernel leak).
     */
    action: z.literal("soft-reboot"),
    components: HostComponents,
    method: z.enum(["kexec", "soft-reboot"]).default("kexec"),
  }),
  z.strictObject({
    /** `systemctl reboot`: the last resort. */
    action: z.literal("reboot"),
    components: HostComponents,
  }),
]);
export type MitigationRule = z.infer<typeof MitigationRule>;

export const AgentConfig = z.strictObject({
  /** Host id in telemetry and agent subjects (default: the machine's hostname, made a subject token). */
  host: z.string().regex(SUBJECT_TOKEN, "must match [A-Za-z0-9_-]{1,128}").optional(),
  /** NATS server URL(s), comma separated (the --nats flag and RESIN_NATS_URL win). */
  nats: z.string().min(1).optional(),
  /** Sampling interval (contract default 5 minutes). */
  interval: Duration.pipe(z.number().min(100, "must be at least 100 ms")).default(300_000),
  /**
   * Private memory of a process:
   * - "rss-anon": anonymous resident memory (RssAnon, read from /proc/<pid>/statm), the default:
   *   cheap, readable for every process, and what a leak on the heap grows;
   * - "uss": pages only this process maps (smaps_rollup Private_*; includes private file pages);
   * - "pss": USS plus a share of shared pages.
   * USS and PSS walk every mapping of the process under its memory-map lock (costlier) and need
   * ptrace permission; where smaps_rollup is not readable the agent falls back to rss-anon.
   */
  memory: z.enum(["rss-anon", "uss", "pss"]).default("rss-anon"),
  /**
   * Processes below this many bytes are not reported; one that grows past it starts a series,
   * reported until it falls below half of it.
   */
  minProcessBytes: Size.default(1024 * 1024),
  /** Attributes of every message: region, cluster, hw, os (default from /etc/os-release), others allowed. */
  attrs: z
    .record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must match [A-Za-z0-9_.-]{1,64}"), z.string())
    .default({}),
  /** VM or tenant count of the host (omitted from telemetry when not configured). */
  vms: VmSource.optional(),
  /** Process → component rules, tried in order; they win over the systemd unit. */
  components: z.array(ComponentRule).default([]),
  /**
   * Processes no rule matches: "unit" puts them in the component of their systemd unit (else of
   * their name), "skip" leaves them out (watch only the configured components).
   */
  unmatched: z.enum(["unit", "skip"]).default("unit"),
  /** Kernel memory as the `kernel` component (pid 0 pseudo-processes). */
  kernel: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** One pseudo-process per slab cache from /proc/slabinfo (readable by root only). */
      slab: z.boolean().default(true),
      /**
       * Slab caches smaller than this are not reported (as processes, with the same half-floor
       * hysteresis). Small caches follow the host's process count and file activity by tens of
       * percent; a leak in one of them shows in SUnreclaim, which is always reported.
       */
      minSlabBytes: Size.default(8 * 1024 * 1024),
    })
    .prefault({}),
  /** Telemetry kept while NATS is unreachable, in messages; the oldest beyond it are dropped and counted. */
  bufferMessages: z.number().int().min(1).max(10_000_000).default(10_000),
  /** Wait for one JetStream acknowledgement before retrying, ms. */
  ackTimeout: Duration.default(5000),
  /** Heap snapshots (resin.agent.<host>.snapshot). */
  snapshots: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Traces at once; more are refused as busy. */
      maxTraces: z.number().int().min(1).max(64).default(4),
    })
    .prefault({}),
  /** Mitigation: what this host allows resin to do. Anything not listed is refused. */
  mitigation: z
    .strictObject({
      /**
       * Refuse every command, logging what would have been done (the allowlist is the opt-in;
       * this is for trying a config). `resin agent --dry-run` sets it.
       */
      dryRun: z.boolean().default(false),
      allow: z.array(MitigationRule).default([]),
    })
    .prefault({}),
  /** Port of /metrics and /healthz (0: off). */
  metricsPort: z.number().int().min(0).max(65535).default(9465),
  /** Address of /metrics and /healthz. */
  metricsHost: z.string().min(1).default("127.0.0.1"),
});
export type AgentConfig = z.infer<typeof AgentConfig>;
export type AgentConfigInput = z.input<typeof AgentConfig>;

/** Validates a parsed config; throws a ValidationError naming every bad field and its value. */
export function parseAgentConfig(input: unknown, what = "agent config"): AgentConfig {
  return checkOrThrow(AgentConfig, input, what);
}

/** Reads and validates a config file. */
export function loadAgentConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`cannot read agent config ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`agent config ${JSON.stringify(path)} is not JSON: ${(err as Error).message}`);
  }
  return parseAgentConfig(json, `agent config ${path}`);
}
