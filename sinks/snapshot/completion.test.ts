import { describe, expect, it } from "vitest";
import { type CompletionRules, linearFit, type TracedLeak, traceCompletion } from "./completion.ts";

const H = 3_600_000;
const MiB = 1024 * 1024;
const rules: CompletionRules = {
  minProfiles: 3,
  completionWindowMs: 6 * H,
  steadyMinR2: 0.8,
  stairSlopeTolerance: 0.1,
  stairMaxR2: 0.1,
  spikeMinShare: 0.5,
};
/** Profiles every 30 min with these totals, in MiB. */
const ring = (mib: number[]) => mib.map((m, i) => ({ takenAt: i * H * 0.5, bytes: m * MiB }));
const leak = (pattern: TracedLeak["pattern"], mibPerHour: number, hours = 10): TracedLeak => ({
  pattern,
  growthBytesPerHour: mibPerHour * MiB,
  start: 0,
  end: hours * H,
});

describe("traceCompletion", () => {
  it("never completes with fewer than minProfiles", () => {
    const c = traceCompletion(ring([1, 2]), leak("steady", 2), rules);
    expect(c.complete).toBe(false);
    expect(c.reason).toMatch(/2 of at least 3/);
  });

  it("steady: completes once the totals grow linearly (R² > 0.8)", () => {
    expect(traceCompletion(ring([10, 11, 12, 13]), leak("steady", 2), rules).complete).toBe(true);
    const noisy = traceCompletion(ring([10, 14, 9, 13, 10]), leak("steady", 2), rules);
    expect(noisy.complete).toBe(false);
    expect(noisy.reason).toMatch(/R²/);
    expect(traceCompletion(ring([13, 12, 11, 10]), leak("steady", 2), rules).complete).toBe(false);
  });

  it("steady: looks only at the last completion window", () => {
    // Noise first, then 6 h of clean growth.
    const profiles = ring([30, 5, 40, 0, ...Array.from({ length: 13 }, (_, i) => 50 + i)]);
    expect(traceCompletion(profiles, leak("steady", 2), rules).complete).toBe(true);
  });

  it("stair: completes when the average slope matches the detected one and the trace ends on a flat", () => {
    // A step of 12 MiB and flats around it.
    const stair = ring([0, 0, 0, 0, 0, 0, 12, 12, 12, 12, 12, 12, 12]);
    const rate =
      linearFit(
        stair.map((p) => p.takenAt / H),
        stair.map((p) => p.bytes),
      ).slope / MiB;
    expect(traceCompletion(stair, leak("stair", rate), rules).complete).toBe(true);
    expect(traceCompletion(stair, leak("stair", rate * 0.95), rules).complete).toBe(true);
    const tooFast = traceCompletion(stair, leak("stair", rate * 3), rules);
    expect(tooFast.complete).toBe(false);
    expect(tooFast.reason).toMatch(/67% off/);
    // Still climbing: the step is not seen through.
    const climbing = ring([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 8, 12]);
    const climbRate =
      linearFit(
        climbing.map((p) => p.takenAt / H),
        climbing.map((p) => p.bytes),
      ).slope / MiB;
    expect(traceCompletion(climbing, leak("stair", climbRate), rules).complete).toBe(false);
    // A straight line has a slope but no flat.
    expect(traceCompletion(ring([0, 1, 2, 3, 4, 5, 6]), leak("stair", 2), rules).complete).toBe(false);
  });

  it("spike: completes when the profiles saw more than half the detected rise", () => {
    // Detected: 10 MiB/h over 2 h = 20 MiB.
    expect(traceCompletion(ring([5, 5, 6, 5]), leak("spike", 10, 2), rules).complete).toBe(false);
    const seen = traceCompletion(ring([5, 5, 17, 16]), leak("spike", 10, 2), rules);
    expect(seen.complete).toBe(true);
    expect(seen.reason).toMatch(/60%/);
    // A fall is no rise.
    expect(traceCompletion(ring([30, 5, 5]), leak("spike", 10, 2), rules).complete).toBe(false);
  });
});
