import { describe, expect, it } from "vitest";
import { classifyGrowth } from "./core.ts";

function series(n: number, f: (h: number) => number, noise = 0, seed = 1): number[] {
  let s = seed;
  const rnd = () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647 - 0.5;
  };
  return Array.from({ length: n }, (_, h) => f(h) + noise * rnd());
}

describe("classifyGrowth", () => {
  it("steady: continuous growth", () => {
    const r = classifyGrowth(
      series(24, (h) => 0.01 * h, 0.002),
      0.002,
    );
    expect(r.pattern).toBe("steady");
    expect(r.slopePerHour).toBeCloseTo(0.01, 2);
  });

  it("stair: growth, flat, growth", () => {
    const f = (h: number) => (h < 6 ? 0.02 * h : h < 14 ? 0.12 : 0.12 + 0.02 * (h - 14));
    const r = classifyGrowth(series(22, f, 0.002), 0.002);
    expect(r.pattern).toBe("stair");
    expect(r.slopePerHour).toBeCloseTo(0.02, 2);
  });

  it("spike: most of the rise in one or two hours", () => {
    const f = (h: number) => (h < 8 ? 0 : h < 16 ? 0.1 : 0.2) + 0.0005 * h;
    expect(classifyGrowth(series(24, f, 0.002), 0.002).pattern).toBe("spike");
  });

  it("does not call a noisy steady leak a spike", () => {
    const r = classifyGrowth(
      series(30, (h) => 0.004 * h, 0.006, 7),
      0.004,
    );
    expect(r.pattern).not.toBe("spike");
  });
});
