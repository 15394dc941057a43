import { describe, expect, it } from "vitest";
import type { Finding } from "../process-detect/core.ts";
import type { SeriesInfo } from "../window/core.ts";
import { SuspectLifecycle } from "./index.ts";

const H = 3_600_000;
const info: SeriesInfo = {
  slot: 3,
  host: "h1",
  component: "svc",
  name: "svc",
  pid: 42,
  startedAt: 0,
  firstTs: 0,
  stream: 0,
  predecessor: undefined,
};

function finding(
  hour: number,
  flagged: boolean,
  severity = 5,
  pattern: Finding["pattern"] = "steady",
): Finding {
  return {
    slot: 3,
    info,
    at: hour * H,
    start: 0,
    severity,
    pattern,
    growthBytesPerHour: 1e6,
    bytes: 1e9,
    flagged,
  };
}

function harness(config = {}) {
  const lc = new SuspectLifecycle(config);
  const suspected = new Set<number>();
  let health = { quietHours: 0, fallback: 0 };
  const step = (hour: number, findings: Finding[], ended: number[] = []) =>
    lc
      .step(
        hour * H,
        findings,
        ended,
        (slot) => (suspected.has(slot) ? health : undefined),
        (slot, on) => (on ? suspected.add(slot) : suspected.delete(slot)),
      )
      .map((e) => e.state);
  return { lc, step, suspected, setHealth: (h: typeof health) => (health = h) };
}

describe("suspect lifecycle", () => {
  it("opens on a confirmed finding, updates on a material change, resolves when growth stops", () => {
    const t = harness({ updateEveryHours: 6, quietHoursToResolve: 48 });
    expect(t.step(1, [finding(1, false)])).toEqual([]);
    expect(t.step(2, [finding(2, true)])).toEqual(["open"]);
    expect(t.suspected.has(3)).toBe(true);
    expect(t.step(3, [finding(3, true, 9)])).toEqual([]); // too soon for an update
    expect(t.step(9, [finding(9, true, 9)])).toEqual(["update"]);
    expect(t.step(10, [finding(10, false, 9.5)])).toEqual([]); // small change
    t.setHealth({ quietHours: 48, fallback: 0 });
    expect(t.step(60, [finding(60, false, 9)])).toEqual(["resolved"]);
    expect(t.suspected.has(3)).toBe(false);
  });

  it("resolves when the memory is given back", () => {
    const t = harness();
    t.step(2, [finding(2, true)]);
    t.setHealth({ quietHours: 1, fallback: 0.9 });
    expect(t.step(3, [finding(3, false)])).toEqual(["resolved"]);
  });

  it("resolves when the series ends (restart, host gone)", () => {
    const t = harness();
    t.step(2, [finding(2, true)]);
    expect(t.step(5, [], [3])).toEqual(["resolved"]);
  });

  it("does not flap: a resolved target cannot reopen within reopenAfterHours", () => {
    const t = harness({ reopenAfterHours: 24 });
    t.step(2, [finding(2, true)]);
    t.step(3, [], [3]);
    expect(t.step(10, [finding(10, true)])).toEqual([]);
    expect(t.step(30, [finding(30, true)])).toEqual(["open"]);
  });

  it("keeps suspects open when the input simply ends", () => {
    const t = harness();
    t.step(2, [finding(2, true)]);
    expect(t.lc.open).toBe(1);
  });
});
