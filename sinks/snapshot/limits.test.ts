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

  it("counts collections charged out of order (event-time catch-up) in every hour around a time", () => {
    const l = new CollectionLimiter(2);
    l.take("c1", 5 * H);
    l.take("c1", 3 * H);
    expect(l.allows("c1", 4 * H)).toBe(true); // [3 h, 4 h] and [4 h, 5 h] hold one each
    l.take("c1", 4 * H - 1);
    expect(l.allows("c1", 4.5 * H)).toBe(true); // every hour around it holds one other
    l.take("c1", 4.5 * H);
    // [4 h − 1 ms, 5 h − 1 ms) would hold 3; so would every hour until the one from 4.5 h + 1 ms.
    expect(l.allows("c1", 4.25 * H)).toBe(false);
    expect(l.nextAllowedAt("c1", 4.25 * H)).toBe(5.5 * H);
    // Two traces collecting every 30 min in one cluster: 4 per hour, within a budget of 5.
    const two = new CollectionLimiter(5);
    for (const start of [0, 10 * 60_000])
      for (let t = start; t < 3 * H; t += 30 * 60_000) {
        expect(two.allows("c1", t)).toBe(true);
        two.take("c1", t);
      }
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
