import { describe, expect, it } from "vitest";
import { Rand } from "../simulate/rng.ts";
import { median, sdFromFalls, sortNumbers } from "./stats.ts";

/** A small deterministic generator (no dependency on Math.random). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("sortNumbers", () => {
  it("orders like Array.prototype.sort with a numeric comparator, zeros, -0 and NaN included", () => {
    const rand = lcg(7);
    for (const n of [0, 1, 5, 32, 33, 100, 1000]) {
      for (const extra of [[], [0], [0, 0, 1], [-0, 0], [Number.NaN], [-0, Number.NaN, 0]]) {
        const values = Array.from({ length: n }, () => Math.round((rand() - 0.5) * 20) / 4);
        for (const v of extra) values.splice(Math.floor(rand() * (values.length + 1)), 0, v);
        const expected = [...values].sort((a, b) => a - b);
        const got = sortNumbers([...values]);
        expect(got.length).toBe(expected.length);
        for (let i = 0; i < got.length; i++) expect(Object.is(got[i], expected[i])).toBe(true);
      }
    }
  });

  it("takes the median of absolute deviations (a +0 among many values) as the plain sort does", () => {
    const values = Array.from({ length: 101 }, (_, i) => Math.abs(i - 50) * 0.1);
    expect(median([...values])).toBe([...values].sort((a, b) => a - b)[50]);
  });
});

describe("sdFromFalls", () => {
  it("reads a symmetric wobble's spread from its falls, and a rise on top does not change it", () => {
    const rng = new Rand(3, "falls");
    const changes = Array.from({ length: 4000 }, () => 0.05 * rng.normal());
    const falls = (xs: number[]) => xs.filter((x) => x < 0).map((x) => -x);
    expect(sdFromFalls(falls(changes))).toBeCloseTo(0.05, 2);
    // A fifth of the series leak: their changes are all rises, so only the healthy falls count.
    const leaking = changes.map((x, i) => (i % 5 === 0 ? Math.abs(x) + 0.2 : x));
    expect(sdFromFalls(falls(leaking))).toBeCloseTo(0.05, 2);
  });
});
