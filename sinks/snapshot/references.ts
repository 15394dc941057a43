/**
 * Reference profiles (DESIGN.md, "Reference snapshots"): short series of heap profiles of healthy
 * hosts running the same component as a suspect, so the diagnosis can drop stacks that grow there
 * too (warm-up, load, fleet-wide growth). Each is keyed by its host's fingerprint (component,
 * cluster, OS, component version, date); fresh for `refreshMs` (then taken again when a case
 * needs it), removed with its profiles after `maxAgeMs`. The catalogue is plain data, saved with
 * the sink's state; the profiles live in the Object Store. Pure.
 *
 * Which healthy hosts: RESIN takes the suspect's own fingerprint. Measured on simulated fleets
 * (`resin eval --diagnose-sim`, mixed, seed 101, 200 hosts: top-1 root cause 1.00 for eval's
 * `baseline` references against 0.33 for same-version ones; eval also skips hosts whose memory
 * grew, as the sink now does too), the better reference runs the version most hosts run, in the suspect's
 * cluster, with about as many VMs: a canary leak is then compared with the version it replaces,
 * not with other canaries that carry the same bug below the detector's threshold (their leaking
 * stack grows there too, and the diagnosis drops it); and VM memory, which scales with VMs,
 * does not look like memory only the suspect holds. The OS stays in the key but not the choice.
 */
import { theilSenSlope } from "../../lib/stats.ts";

export interface Fingerprint {
  component: string;
  cluster: string;
  /** As the agent reports it; "" when it does not. */
  os: string;
  version: string;
  /** UTC day the reference was taken, YYYY-MM-DD. */
  date: string;
}

/** What a case asks references for: the component in the suspect's cluster, on the baseline version. */
export interface ReferenceWant {
  component: string;
  cluster: string;
  /** The version most hosts of the component run (the suspect's when unknown). */
  version: string;
}

export interface ProfileRef {
  id: string;
  takenAt: number;
  bytes: number;
}

export interface ReferenceRecord {
  fingerprint: Fingerprint;
  host: string;
  pid: number;
  process: string;
  profiles: ProfileRef[];
  /** Sink clock when the reference was complete. */
  createdAt: number;
}

export interface ReferencePolicy {
  refreshMs: number;
  maxAgeMs: number;
}

export function dateOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** A key made only of characters a NATS KV key allows. */
export function fingerprintKey(fp: Fingerprint): string {
  return Buffer.from(JSON.stringify([fp.component, fp.cluster, fp.os, fp.version, fp.date])).toString(
    "base64url",
  );
}

export interface ChosenReferences {
  records: ReferenceRecord[];
  /** Where the best of them runs: "cluster" (the suspect's, baseline version first), or "elsewhere". */
  match: "cluster" | "elsewhere";
}

/** 0: the suspect's cluster on the baseline version; 1: its cluster, another version; 2: elsewhere on the baseline; 3: the rest. */
function rankOf(cluster: string, version: string, want: ReferenceWant): number {
  const baseline = version === want.version;
  return cluster === want.cluster ? (baseline ? 0 : 1) : baseline ? 2 : 3;
}

export class ReferenceCatalog {
  private readonly byKey = new Map<string, ReferenceRecord>();

  constructor(
    private readonly policy: ReferencePolicy,
    records: readonly ReferenceRecord[] = [],
  ) {
    for (const r of records) this.byKey.set(fingerprintKey(r.fingerprint), r);
  }

  records(): ReferenceRecord[] {
    return [...this.byKey.values()];
  }

  /** Adds (or replaces: one reference per fingerprint) and returns what it replaced. */
  add(record: ReferenceRecord): ReferenceRecord | undefined {
    const key = fingerprintKey(record.fingerprint);
    const old = this.byKey.get(key);
    this.byKey.set(key, record);
    return old;
  }

  /** Whether a case needs a new reference: none of the component in its cluster on the baseline version younger than refreshMs. */
  needsRefresh(want: ReferenceWant, now: number): boolean {
    for (const r of this.byKey.values()) {
      const f = r.fingerprint;
      if (
        f.component === want.component &&
        rankOf(f.cluster, f.version, want) === 0 &&
        now - r.createdAt < this.policy.refreshMs
      )
        return false;
    }
    return true;
  }

  /**
   * References to diagnose a suspect with: every host's newest reference of the component no
   * older than maxAgeMs, best first (the suspect's cluster on the baseline version, its cluster
   * on another, elsewhere on the baseline, the rest; newest first within each); at most `limit`.
   */
  choose(want: ReferenceWant, now: number, limit = 3): ChosenReferences | undefined {
    const usable = [...this.byKey.values()].filter(
      (r) =>
        r.fingerprint.component === want.component &&
        now - r.createdAt <= this.policy.maxAgeMs &&
        r.profiles.length >= 2,
    );
    const rank = (r: ReferenceRecord) => rankOf(r.fingerprint.cluster, r.fingerprint.version, want);
    const newestPerHost = new Map<string, ReferenceRecord>();
    for (const r of usable.sort(
      (a, b) => rank(a) - rank(b) || b.createdAt - a.createdAt || (a.host < b.host ? -1 : 1),
    ))
      if (!newestPerHost.has(r.host)) newestPerHost.set(r.host, r);
    const records = [...newestPerHost.values()].slice(0, limit);
    if (records.length === 0) return undefined;
    return { records, match: rank(records[0]!) <= 1 ? "cluster" : "elsewhere" };
  }

  /** Removes references older than maxAgeMs and returns them (their profiles are to be deleted). */
  removeStale(now: number): ReferenceRecord[] {
    const stale: ReferenceRecord[] = [];
    for (const [key, r] of this.byKey)
      if (now - r.createdAt > this.policy.maxAgeMs) {
        stale.push(r);
        this.byKey.delete(key);
      }
    return stale;
  }
}

/** A host that reported a component: what resin knows of it from telemetry. */
export interface KnownHost {
  host: string;
  cluster: string;
  version: string;
  vms?: number | undefined;
  /** Clock time of the last window it was in. */
  lastSeen: number;
  /** Its processes of the component: name → pid. */
  processes: Record<string, number>;
  /** Per process name, the window points of its current pid (newest last, at most `HISTORY_POINTS`). */
  history?: Record<string, { pid: number; ts: number[]; bytes: number[] }>;
}

/** Window points kept per reference candidate process: a day of hourly windows and one more. */
export const HISTORY_POINTS = 25;

/**
 * Did this process grow while it ran under its current pid? "grew" when its robust slope, per
 * clock hour like the suspect's rate, passes `maxGrowthPerHour`, "steady" when it does not
 * over at least `minPoints` windows, "unknown" with less history (a young process or a sink that
 * just started). A reference that leaks too would hide the suspect's leaking stack.
 */
export function growthVerdict(
  h: KnownHost,
  process: string,
  maxGrowthPerHour: number,
  minPoints = 3,
): "steady" | "grew" | "unknown" {
  const hist = h.history?.[process];
  if (hist === undefined || hist.pid !== h.processes[process] || hist.ts.length < minPoints) return "unknown";
  const slope = theilSenSlope(hist.ts, hist.bytes);
  if (slope === null) return "unknown";
  return slope * 3_600_000 > maxGrowthPerHour ? "grew" : "steady";
}

/** The version most of these hosts run (ties: the smallest), or undefined when none is known. */
export function baselineVersion(hosts: readonly KnownHost[]): string | undefined {
  const counts = new Map<string, number>();
  for (const h of hosts) if (h.version !== "") counts.set(h.version, (counts.get(h.version) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0];
}

/**
 * A healthy host to take a reference from: running a process of the suspect's name, no open
 * suspect (`exclude`), seen within `maxSilenceMs`, and whose process did not grow faster than
 * `maxGrowthPerHour` (bytes per hour, as the suspect's rate; see `growthVerdict`); the suspect's cluster on the
 * baseline version first, then its cluster on another version, then elsewhere on the baseline,
 * then the rest; within each, hosts known to be steady before those without enough history, then
 * the VM count nearest the suspect's (ratio), then host id.
 */
export function pickReferenceHost(
  hosts: readonly KnownHost[],
  want: ReferenceWant & { process: string; vms?: number | undefined },
  exclude: ReadonlySet<string>,
  now: number,
  maxSilenceMs: number,
  maxGrowthPerHour = Number.POSITIVE_INFINITY,
): (KnownHost & { pid: number }) | undefined {
  const vmGap = (h: KnownHost) =>
    h.vms === undefined || want.vms === undefined
      ? Number.POSITIVE_INFINITY
      : Math.abs(Math.log((h.vms + 1) / (want.vms + 1)));
  const fit = hosts
    .filter(
      (h) =>
        h.processes[want.process] !== undefined && !exclude.has(h.host) && now - h.lastSeen <= maxSilenceMs,
    )
    .map((h) => ({
      h,
      rank: rankOf(h.cluster, h.version, want),
      health: growthVerdict(h, want.process, maxGrowthPerHour),
      gap: vmGap(h),
    }))
    .filter((x) => x.health !== "grew")
    .sort(
      (a, b) =>
        a.rank - b.rank ||
        (a.health === b.health ? 0 : a.health === "steady" ? -1 : 1) ||
        (a.gap === b.gap ? 0 : a.gap < b.gap ? -1 : 1) ||
        (a.h.host < b.h.host ? -1 : a.h.host > b.h.host ? 1 : 0),
    );
  const h = fit[0]?.h;
  return h === undefined ? undefined : { ...h, pid: h.processes[want.process]! };
}
