import { describe, expect, it } from "vitest";
import {
  dateOf,
  fingerprintKey,
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

  it("is fresh for refreshMs, then a case asks for a new one", () => {
    const cat = new ReferenceCatalog(policy, [record("h1", T0)]);
    expect(cat.needsRefresh(lineage, T0 + D - 1)).toBe(false);
    expect(cat.needsRefresh(lineage, T0 + D)).toBe(true);
    expect(cat.needsRefresh({ ...lineage, version: "1.3.0" }, T0)).toBe(true);
    expect(cat.needsRefresh({ ...lineage, os: "linux-5.15" }, T0)).toBe(true);
  });

  it("keys by fingerprint, date included: one reference per fingerprint, a new day adds one", () => {
    const cat = new ReferenceCatalog(policy);
    expect(cat.add(record("h1", T0))).toBeUndefined();
    const replaced = cat.add(record("h2", T0 + H));
    expect(replaced?.host).toBe("h1"); // same day: replaced, its profiles to be deleted
    expect(cat.add(record("h3", T0 + D))).toBeUndefined();
    expect(cat.records().map((r) => r.host)).toEqual(["h2", "h3"]);
    expect(fingerprintKey(record("h1", T0).fingerprint)).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it("chooses the newest reference per host of the same lineage, else of the same version", () => {
    const cat = new ReferenceCatalog(policy, [
      record("h1", T0 - 2 * D),
      record("h1", T0 - D),
      record("h2", T0 - 3 * D),
      record("h9", T0, { cluster: "c2" }),
      record("h8", T0, { version: "0.9.0" }),
    ]);
    const exact = cat.choose(lineage, T0);
    expect(exact?.match).toBe("exact");
    expect(exact?.records.map((r) => [r.host, r.createdAt])).toEqual([
      ["h1", T0 - D],
      ["h2", T0 - 3 * D],
    ]);
    const elsewhere = cat.choose({ ...lineage, cluster: "c3" }, T0);
    expect(elsewhere?.match).toBe("version");
    expect(elsewhere?.records.map((r) => r.host)).toEqual(["h9", "h1", "h2"]);
    expect(cat.choose({ ...lineage, version: "2.0.0" }, T0)).toBeUndefined();
  });

  it("removes references older than maxAgeMs and never chooses them", () => {
    const cat = new ReferenceCatalog(policy, [record("old", T0 - 8 * D), record("new", T0 - D)]);
    expect(cat.choose(lineage, T0)?.records.map((r) => r.host)).toEqual(["new"]);
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
  const want = { cluster: "c1", version: "1.2.0", process: "api" };

  it("takes a healthy host of the same cluster, version and process, fewest VMs first", () => {
    const hosts = [
      host("sick", { vms: 0 }),
      host("busy", { vms: 9 }),
      host("quiet", { vms: 2, processes: { api: 4242 } }),
      host("other-cluster", { cluster: "c2", vms: 0 }),
      host("other-version", { version: "1.1.0", vms: 0 }),
      host("no-api", { processes: { worker: 1 }, vms: 0 }),
      host("silent", { lastSeen: T0 - 5 * H, vms: 0 }),
    ];
    expect(pickReferenceHost(hosts, want, new Set(["sick"]), T0, 3 * H)).toMatchObject({
      host: "quiet",
      pid: 4242,
    });
    expect(pickReferenceHost([host("sick")], want, new Set(["sick"]), T0, 3 * H)).toBeUndefined();
  });
});
