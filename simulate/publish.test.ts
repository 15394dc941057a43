/** The publisher's pacing, in virtual time: `delay(ts, now)` takes the clock as an argument. */
import { describe, expect, it } from "vitest";
import { Pacer } from "./publish.ts";

const T0 = 1_767_571_200_000;
const MINUTE = 60_000;

describe("Pacer by event time (speed)", () => {
  it("schedules each message at (ts − first ts) / speed after the first", () => {
    const pacer = new Pacer(600, undefined); // ten simulated minutes per second
    expect(pacer.delay(T0, 0)).toBe(0);
    expect(pacer.delay(T0 + 10 * MINUTE, 0)).toBe(1000);
    expect(pacer.delay(T0 + 20 * MINUTE, 1000)).toBe(1000);
    expect(pacer.delay(T0 + 20 * MINUTE, 2000)).toBe(0); // same event time: due together
  });

  it("sends a late or repeated message at once and keeps the schedule", () => {
    const pacer = new Pacer(600, undefined);
    pacer.delay(T0, 0);
    expect(pacer.delay(T0 + 30 * MINUTE, 3000)).toBe(0);
    // Twenty minutes late, and a duplicate of the first message: both were due long ago.
    expect(pacer.delay(T0 + 10 * MINUTE, 3000)).toBeLessThanOrEqual(0);
    expect(pacer.delay(T0, 3000)).toBeLessThanOrEqual(0);
    // The next message is due where it always was: the late ones did not move the schedule.
    expect(pacer.delay(T0 + 40 * MINUTE, 3000)).toBe(1000);
  });

  it("moves the schedule on after a real stall instead of bursting to catch up", () => {
    const pacer = new Pacer(600, undefined);
    pacer.delay(T0, 0);
    // Due at 1 s, sent at 6 s (say the server was restarting): 5 s behind.
    expect(pacer.delay(T0 + 10 * MINUTE, 6000)).toBe(-5000);
    // Catch up at most one second: the next one, due at 2 s, is now due at 6 s.
    expect(pacer.delay(T0 + 20 * MINUTE, 6000)).toBe(0);
  });
});

describe("Pacer by count (rate)", () => {
  it("schedules the n-th message at n / rate after the first, whatever its event time", () => {
    const pacer = new Pacer(undefined, 100);
    expect(pacer.delay(T0, 0)).toBe(0);
    expect(pacer.delay(T0 + MINUTE, 0)).toBe(10);
    expect(pacer.delay(T0, 0)).toBe(20);
  });

  it("does not pace without speed or rate", () => {
    const pacer = new Pacer(undefined, undefined);
    expect(pacer.delay(T0, 0)).toBe(0);
    expect(pacer.delay(T0 + MINUTE, 0)).toBe(0);
  });
});
