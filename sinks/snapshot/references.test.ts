import { describe, expect, it } from "vitest";
import {
  baselineVersion,
  dateOf,
  fingerprintKey,
  growthVerdict,
  type KnownHost,
  pickReferenceHost,
  ReferenceCatalog,
  type ReferenceRecord,
} from "./references.ts";

const H = 3_600_000;
const D = 24 * H;
const T0 = Date.UTC(2026, 0, 5, 12);
const lineage = { component: "api", cluster: "c1", os: "linux-6.1", version: "1.2.0" };

function record(host: string, createdAt: number, over: Partial<typeof lineage> = {}): ReferenceRecord {
  const fp = { ...lineage, ...over, date: dateOf(createdAt) };
  return {
    fingerprint: fp,
    host,
    pid: 7,
    process: "api",
    profiles: [0, 1, 2].map((i) => ({
      id: `${host}/${createdAt}/${i}`,
      takenAt: createdAt - (2 - i) * H,
      bytes: 1,
    })),
    createdAt,
  };
}

describe("ReferenceCatalog", () => {
  const policy = { refreshMs: D, maxAgeMs: 7 * D };
  const want = { component: "api", cluster: "c1", version: "1.2.0" };

  it("is fresh for refreshMs, then a case asks for a new one", () => {
    const cat = new ReferenceCatalog(policy, [record("h1", T0)]);
    expect(cat.needsRefresh(want, T0 + D - 1)).toBe(false);
    expect(cat.needsRefresh(want, T0 + D)).toBe(true);
    expect(cat.needsRefresh({ ...want, version: "1.3.0" }, T0)).toBe(true); // the baseline moved on
    expect(cat.needsRefresh({ ...want, cluster: "c2" }, T0)).toBe(true);
    // The OS is in the key, not in the choice.
    expect(
      new ReferenceCatalog(policy, [record("h1", T0, { os: "linux-5.15" })]).needsRefresh(want, T0),
    ).toBe(false);
  });

  it("keys by fingerprint, date included: one reference per fingerprint, a new day adds one", () => {
    const cat = new ReferenceCatalog(policy);
    expect(cat.add(record("h1", T0))).toBeUndefined();
    const replaced = cat.add(record("h2", T0 + H));
    expect(replaced?.host).toBe("h1"); // same day: replaced, its profiles to be deleted
    expect(cat.add(record("h3", T0 + D))).toBeUndefined();
    expect(cat.add(record("h4", T0 + D, { os: "linux-5.15" }))).toBeUndefined();
    expect(cat.records().map((r) => r.host)).toEqual(["h2", "h3", "h4"]);
    expect(fingerprintKey(record("h1", T0).fingerprint)).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it("chooses the suspect's cluster on the baseline version first, then its cluster, then elsewhere", () => {
    const cat = new ReferenceCatalog(policy, [
      record("h1", T0 - 2 * D),
      record("h1", T0 - D, { os: "linux-5.15" }),
      record("canary", T0, { version: "1.3.0" }),
      record("far", T0, { cluster: "c9" }),
      record("other", T0, { component: "db" }),
    ]);
    const best = cat.choose(want, T0);
    expect(best?.match).toBe("cluster");
    expect(best?.records.map((r) => [r.host, r.createdAt])).toEqual([
      ["h1", T0 - D],
      ["canary", T0],
      ["far", T0],
    ]);
    const elsewhere = cat.choose({ ...want, cluster: "c3" }, T0, 2);
    expect(elsewhere?.match).toBe("elsewhere");
    expect(elsewhere?.records.map((r) => r.host)).toEqual(["far", "h1"]);
    expect(cat.choose({ ...want, component: "web" }, T0)).toBeUndefined();
  });

  it("removes references older than maxAgeMs and never chooses them", () => {
    const cat = new ReferenceCatalog(policy, [record("old", T0 - 8 * D), record("new", T0 - D)]);
    expect(cat.choose(want, T0)?.records.map((r) => r.host)).toEqual(["new"]);
    const stale = cat.removeStale(T0);
    expect(stale.map((r) => r.host)).toEqual(["old"]);
    expect(cat.records().map((r) => r.host)).toEqual(["new"]);
    expect(cat.removeStale(T0 + 7 * D).map((r) => r.host)).toEqual(["new"]);
    expect(cat.records()).toEqual([]);
  });
});

describe("pickReferenceHost", () => {
  const host = (h: string, over: Partial<KnownHost> = {}): KnownHost => ({
    host: h,
    cluster: "c1",
    version: "1.2.0",
    lastSeen: T0,
    processes: { api: 100 },
    ...over,
  });
  const want = { component: "api", cluster: "c1", version: "1.2.0", process: "api", vms: 8 };

  it("takes a healthy host of the suspect's cluster on the baseline version, with about as many VMs", () => {
    const hosts = [
      host("sick", { vms: 8 }),
      host("empty", { vms: 0 }),
      host("alike", { vms: 6, processes: { api: 4242 } }),
      host("canary", { version: "1.3.0", vms: 8 }),
      host("far", { cluster: "c2", vms: 8 }),
      host("no-api", { processes: { worker: 1 }, vms: 8 }),
      host("silent", { lastSeen: T0 - 5 * H, vms: 8 }),
    ];
    expect(pickReferenceHost(hosts, want, new Set(["sick"]), T0, 3 * H)).toMatchObject({
      host: "alike",
      pid: 4242,
    });
    // Without one there: the cluster's other version, then the baseline elsewhere.
    expect(pickReferenceHost(hosts.slice(3), want, new Set(), T0, 3 * H)?.host).toBe("canary");
    expect(pickReferenceHost(hosts.slice(4), want, new Set(), T0, 3 * H)?.host).toBe("far");
    expect(pickReferenceHost([host("sick")], want, new Set(["sick"]), T0, 3 * H)).toBeUndefined();
  });

  it("skips a host whose process grew faster than a quarter of the suspect's rate, and prefers a known steady one", () => {
    const MiB = 2 ** 20;
    const points = (perWindow: number, pid = 100) => ({
      pid,
      ts: [0, 1, 2, 3, 4, 5].map((i) => T0 - (5 - i) * H),
      // A burst in one window does not make a steady process look like it grows.
      bytes: [0, 1, 2, 3, 4, 5].map((i) => 500 * MiB + i * perWindow + (i === 3 ? 80 * MiB : 0)),
    });
    const leaking = host("leaking", { vms: 8, history: { api: points(10 * MiB) } });
    const steady = host("steady", { vms: 1, history: { api: points(0.5 * MiB) } });
    const young = host("young", { vms: 8 });
    const restarted = host("restarted", {
      vms: 8,
      processes: { api: 200 },
      history: { api: points(10 * MiB) },
    });
    const limit = 0.25 * 20 * MiB; // the suspect grows 20 MiB per hour
    const pick = (hosts: KnownHost[]) => pickReferenceHost(hosts, want, new Set(), T0, 3 * H, limit)?.host;
    expect(pick([leaking, steady, young])).toBe("steady");
    expect(pick([leaking, young])).toBe("young");
    expect(pick([leaking])).toBeUndefined();
    // The growth was its former pid's: the new one is not known to grow.
    expect(pick([restarted])).toBe("restarted");
    expect(growthVerdict(leaking, "api", limit)).toBe("grew");
    expect(growthVerdict(steady, "api", limit)).toBe("steady");
    expect(growthVerdict(young, "api", limit)).toBe("unknown");
  });

  it("names the version most hosts run as the baseline", () => {
    const hosts = ["1.2.0", "1.3.0", "1.2.0", "", "1.3.0", "1.2.0"].map((v, i) =>
      host(`h${i}`, { version: v }),
    );
    expect(baselineVersion(hosts)).toBe("1.2.0");
    expect(baselineVersion([])).toBeUndefined();
  });
});
