import { describe, expect, it } from "vitest";
import { clarityOf, rankCandidates } from "./ranking.ts";

const bands = { severityBand: 1, clarityBand: 0.2 };
const hosts = (cs: { host: string }[]) => cs.map((c) => c.host);

describe("rankCandidates", () => {
  it("ranks by severity first", () => {
    const ranked = rankCandidates(
      [
        { host: "a", severity: 3.2, clarity: 1, vms: 0 },
        { host: "b", severity: 7.9 },
        { host: "c", severity: 5.1, clarity: 0.1, vms: 40 },
      ],
      bands,
    );
    expect(hosts(ranked)).toEqual(["b", "c", "a"]);
  });

  it("within a severity band, prefers clear growth, then fewer VMs", () => {
    const ranked = rankCandidates(
      [
        { host: "noisy", severity: 7.9, clarity: 0.3, vms: 0 },
        { host: "clear-busy", severity: 7.1, clarity: 0.95, vms: 12 },
        { host: "clear-empty", severity: 7.2, clarity: 0.9, vms: 1 },
        { host: "unknown", severity: 7.5 },
      ],
      bands,
    );
    // 0.95 and 0.9 share the top clarity band: VMs decide; unknown clarity ranks as middling.
    expect(hosts(ranked)).toEqual(["clear-empty", "clear-busy", "unknown", "noisy"]);
  });

  it("puts unknown VM counts after known ones and breaks full ties by host id", () => {
    const ranked = rankCandidates(
      [
        { host: "z", severity: 2, clarity: 0.5 },
        { host: "y", severity: 2, clarity: 0.5 },
        { host: "x", severity: 2, clarity: 0.5, vms: 30 },
      ],
      bands,
    );
    expect(hosts(ranked)).toEqual(["x", "y", "z"]);
  });
});

describe("clarityOf", () => {
  const H = 3_600_000;
  it("is the R² of the growth since the interval start", () => {
    const ts = [0, 1, 2, 3, 4, 5].map((h) => h * H);
    expect(clarityOf(ts, [9, 1, 10, 20, 30, 40], 2 * H)).toBeCloseTo(1);
    expect(clarityOf(ts, [0, 0, 10, 30, 15, 40], 2 * H)).toBeLessThan(0.8);
  });
  it("is 0 for memory that does not rise and unknown with fewer than 3 points", () => {
    expect(clarityOf([0, H, 2 * H], [30, 20, 10], 0)).toBe(0);
    expect(clarityOf([0, H], [1, 2], 0)).toBeUndefined();
  });
});
