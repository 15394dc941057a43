import { describe, expect, it } from "vitest";
import { CollectionLimiter } from "./limits.ts";

const H = 3_600_000;

describe("CollectionLimiter", () => {
  it("allows at most N collections per cluster in any hour", () => {
    const l = new CollectionLimiter(5);
    for (let i = 0; i < 5; i++) {
      expect(l.allows("c1", i * 60_000)).toBe(true);
      l.take("c1", i * 60_000);
    }
    expect(l.allows("c1", 10 * 60_000)).toBe(false);
    expect(l.allows("c2", 10 * 60_000)).toBe(true); // other clusters have their own budget
    expect(l.nextAllowedAt("c1", 10 * 60_000)).toBe(H);
    expect(l.allows("c1", H - 1)).toBe(false);
    expect(l.allows("c1", H)).toBe(true); // the first one left the hour
  });

  it("counts collections charged out of order (event-time catch-up) on both sides of a time", () => {
    const l = new CollectionLimiter(2);
    l.take("c1", 5 * H);
    l.take("c1", 3 * H);
    expect(l.allows("c1", 4 * H)).toBe(true); // an hour apart from each: neither counts
    l.take("c1", 4 * H - 1);
    expect(l.allows("c1", 4 * H + 30 * 60_000)).toBe(false); // 4 h and 5 h are within the hour
    // 5 h − 1 ms: the collection at 4 h − 1 ms is an hour before it, the one at 5 h is the only one near.
    expect(l.nextAllowedAt("c1", 4 * H + 30 * 60_000)).toBe(5 * H - 1);
  });

  it("keeps its state as plain data and forgets idle clusters", () => {
    const l = new CollectionLimiter(2);
    l.take("c1", 0);
    l.take("c1", 1000);
    const copy = new CollectionLimiter(2, JSON.parse(JSON.stringify(l.state)));
    expect(copy.allows("c1", 2000)).toBe(false);
    copy.prune(2 * H);
    expect(copy.allows("c1", 2000)).toBe(false); // kept for a day, for traces catching up
    copy.prune(25 * H);
    expect(copy.state).toEqual({});
  });
});
