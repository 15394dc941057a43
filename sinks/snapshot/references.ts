/**
 * Reference profiles (DESIGN.md, "Reference snapshots"): short series of heap profiles of healthy
 * hosts running the same thing as a suspect, so the diagnosis can drop stacks that grow there
 * too (warm-up, fleet-wide growth). Keyed by a fingerprint (component, cluster, OS, component
 * version, date); a reference is fresh for `refreshMs` (then taken again when a case needs it)
 * and removed, profiles included, after `maxAgeMs`. The catalog is plain data, saved with the
 * sink's state; the profiles live in the Object Store. Pure.
 */

export interface Fingerprint {
  component: string;
  cluster: string;
  /** As the agent reports it; "" when it does not. */
  os: string;
  version: string;
  /** UTC day the reference was taken, YYYY-MM-DD. */
  date: string;
}

/** What a reference must match: a fingerprint without its date. */
export type Lineage = Omit<Fingerprint, "date">;

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

const sameLineage = (a: Lineage, b: Lineage) =>
  a.component === b.component && a.cluster === b.cluster && a.os === b.os && a.version === b.version;

export interface ChosenReferences {
  records: ReferenceRecord[];
  /** "exact": same cluster, OS and version; "version": same component version elsewhere. */
  match: "exact" | "version";
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

  /** Whether a case of this lineage should have a new reference taken: none younger than refreshMs. */
  needsRefresh(want: Lineage, now: number): boolean {
    for (const r of this.byKey.values())
      if (sameLineage(r.fingerprint, want) && now - r.createdAt < this.policy.refreshMs) return false;
    return true;
  }

  /**
   * References to diagnose a suspect of this lineage with: every host's newest reference of the
   * same lineage, else of the same component and version anywhere, no older than maxAgeMs;
   * at most `limit` hosts, newest first.
   */
  choose(want: Lineage, now: number, limit = 3): ChosenReferences | undefined {
    const usable = [...this.byKey.values()].filter(
      (r) => now - r.createdAt <= this.policy.maxAgeMs && r.profiles.length >= 2,
    );
    const pick = (rs: ReferenceRecord[]) => {
      const newestPerHost = new Map<string, ReferenceRecord>();
      for (const r of rs.sort((a, b) => b.createdAt - a.createdAt || (a.host < b.host ? -1 : 1)))
        if (!newestPerHost.has(r.host)) newestPerHost.set(r.host, r);
      return [...newestPerHost.values()].slice(0, limit);
    };
    const exact = pick(usable.filter((r) => sameLineage(r.fingerprint, want)));
    if (exact.length > 0) return { records: exact, match: "exact" };
    const version = pick(
      usable.filter(
        (r) => r.fingerprint.component === want.component && r.fingerprint.version === want.version,
      ),
    );
    return version.length > 0 ? { records: version, match: "version" } : undefined;
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
}

/**
 * A healthy host to take a reference from: same component, cluster and version as the suspect,
 * running a process of the same name, no open suspect, seen within `maxSilenceMs`, not failed
 * recently; fewer VMs first (less customer impact), then host id.
 */
export function pickReferenceHost(
  hosts: readonly KnownHost[],
  want: { cluster: string; version: string; process: string },
  exclude: ReadonlySet<string>,
  now: number,
  maxSilenceMs: number,
): (KnownHost & { pid: number }) | undefined {
  const fit = hosts
    .filter(
      (h) =>
        h.cluster === want.cluster &&
        h.version === want.version &&
        h.processes[want.process] !== undefined &&
        !exclude.has(h.host) &&
        now - h.lastSeen <= maxSilenceMs,
    )
    .sort(
      (a, b) =>
        (a.vms ?? Number.POSITIVE_INFINITY) - (b.vms ?? Number.POSITIVE_INFINITY) ||
        (a.host < b.host ? -1 : a.host > b.host ? 1 : 0),
    );
  const h = fit[0];
  return h === undefined ? undefined : { ...h, pid: h.processes[want.process]! };
}
