import { Subject } from "rxjs";
import { TestScheduler } from "rxjs/testing";
import { describe, expect, it } from "vitest";
import type { Telemetry } from "../../schemas/telemetry.ts";
import { type ClosedWindow, eventTimeWindows, robustCenter, WindowCore } from "./index.ts";

const H = 3_600_000;
const M = 60_000;

function sample(
  ts: number,
  bytes: number,
  opts: Partial<{ host: string; pid: number; vms: number }> = {},
): Telemetry {
  return {
    v: 1,
    ts,
    host: opts.host ?? "h1",
    component: "c",
    ...(opts.vms === undefined ? {} : { vms: opts.vms }),
    processes: [{ pid: opts.pid ?? 1, name: "p", startedAt: 0, bytes }],
  };
}

function run(messages: Telemetry[], config = {}): { windows: ClosedWindow[]; core: WindowCore } {
  const core = new WindowCore(config);
  const windows: ClosedWindow[] = [];
  for (const m of messages) core.push(m, windows);
  core.flush(windows);
  return { windows, core };
}

/** Windows with slot numbers (which follow arrival order) replaced by series identity. */
function canonical({ windows, core }: { windows: ClosedWindow[]; core: WindowCore }) {
  const names = new Map<number, string>();
  return windows.map((w) => {
    for (const s of w.newSeries) names.set(s.slot, `${s.host}/${s.name}/${s.pid}@${s.firstTs}`);
    const id = (slot: number) => names.get(slot) ?? String(core.seriesInfo(slot)?.host);
    return {
      start: w.start,
      points: w.slots.map((slot, i) => [id(slot), w.values[i], w.counts[i]]).sort(),
      streams: w.streams.map((s) => ({ ...s, stream: 0 })).sort((a, b) => a.host.localeCompare(b.host)),
      ended: w.ended.map(id).sort(),
    };
  });
}

describe("WindowCore", () => {
  it("aggregates each hour's samples per process with the median", () => {
    const msgs = [0, 5, 10, 15].map((m, i) => sample(m * M, [100, 102, 5000, 101][i]!));
    const { windows } = run(msgs);
    expect(windows).toHaveLength(1);
    expect(windows[0]!.values).toEqual([101.5]);
    expect(windows[0]!.counts).toEqual([4]);
    expect(windows[0]!.newSeries.map((s) => s.name)).toEqual(["p"]);
  });

  it("closes a window only when the watermark passes its end", () => {
    const core = new WindowCore({ allowedLatenessMs: 10 * M });
    const out: ClosedWindow[] = [];
    core.push(sample(55 * M, 1), out);
    core.push(sample(H + 5 * M, 1), out);
    expect(out).toHaveLength(0);
    core.push(sample(H + 10 * M, 1), out);
    expect(out.map((w) => w.start)).toEqual([0]);
  });

  it("accepts samples up to the allowed lateness and counts later ones as late", () => {
    const core = new WindowCore({ allowedLatenessMs: 10 * M });
    const out: ClosedWindow[] = [];
    core.push(sample(H + 5 * M, 10), out);
    core.push(sample(58 * M, 20), out); // 7 min behind the newest: still counts
    core.push(sample(H + 11 * M, 10), out); // closes hour 0
    core.push(sample(59 * M, 30), out); // hour 0 is closed: late
    core.flush(out);
    expect(out[0]!.values).toEqual([20]);
    expect(core.stats.late).toBe(1);
  });

  it("drops duplicates of the same (host, component, ts)", () => {
    const { windows, core } = run([sample(0, 10), sample(0, 10), sample(5 * M, 20), sample(0, 10)]);
    expect(windows[0]!.counts).toEqual([2]);
    expect(core.stats.duplicates).toBe(2);
  });

  it("gives the same windows whatever the order within the allowed lateness", () => {
    const msgs: Telemetry[] = [];
    for (let t = 0; t < 6 * H; t += 5 * M) {
      msgs.push(
        sample(t, 1000 + (t / M) * 3, { host: "a" }),
        sample(t + 7, 500, { host: "b", vms: t > 3 * H ? 3 : 2 }),
      );
    }
    const base = run(msgs).windows;
    // Swap neighbours a few positions apart: all displacements stay within 10 minutes.
    const shuffled = [...msgs];
    for (let i = 0; i + 3 < shuffled.length; i += 5) {
      const tmp = shuffled[i]!;
      shuffled[i] = shuffled[i + 3]!;
      shuffled[i + 3] = tmp;
    }
    expect(canonical(run(shuffled))).toEqual(canonical(run(msgs)));
    expect(base).toHaveLength(6);
  });

  it("ends a series that stays silent past idleEndMs and reuses its slot", () => {
    const msgs = [sample(0, 1, { pid: 1 })];
    for (let t = 5 * M; t < 6 * H; t += 5 * M) msgs.push(sample(t, 1, { pid: 2 }));
    const { windows, core } = run(msgs, { idleEndMs: 2 * H });
    const endedAt = windows.find((w) => w.ended.length > 0);
    expect(endedAt?.start).toBe(2 * H);
    expect(core.trackedSeries).toBe(1);
  });

  it("keeps an ended series resolvable until releaseEnded, then gives its slot to a new series", () => {
    const core = new WindowCore({ idleEndMs: 2 * H, allowedLatenessMs: 0 });
    const out: ClosedWindow[] = [];
    core.push(sample(0, 1, { pid: 1 }), out);
    for (let t = H; t <= 3 * H; t += H) core.push(sample(t, 1, { pid: 2 }), out);
    const ended = out.find((w) => w.ended.length > 0)!;
    const slot = ended.ended[0]!;
    core.push(sample(3 * H + M, 1, { pid: 3 }), out); // a new series before the windows are passed on
    expect(core.seriesInfo(slot)?.pid).toBe(1);
    core.releaseEnded();
    expect(core.seriesInfo(slot)).toBeUndefined();
    core.push(sample(3 * H + 2 * M, 1, { pid: 4 }), out);
    expect(core.seriesInfo(slot)?.pid).toBe(4);
  });

  it("forgets a successor's predecessor once the predecessor's slot is released", () => {
    const core = new WindowCore({ idleEndMs: 2 * H, allowedLatenessMs: 0 });
    const out: ClosedWindow[] = [];
    const msg = (ts: number, host: string, pid: number, startedAt: number): Telemetry => ({
      v: 1,
      ts,
      host,
      component: "c",
      processes: [{ pid, name: "p", startedAt, bytes: 1 }],
    });
    core.push(msg(0, "h1", 1, 0), out);
    core.push(msg(H, "h1", 1, 0), out);
    // pid 1 goes silent; pid 2 (restarted at 3 h) is read while pid 1 is still live.
    core.push(msg(3 * H + M, "h1", 2, 3 * H), out);
    // Slots are given in arrival order: pid 1 has 0, pid 2 has 1.
    const successor = core.seriesInfo(1)!;
    expect([successor.host, successor.pid]).toEqual(["h1", 2]);
    const first = successor.predecessor!;
    expect(core.seriesInfo(first)?.pid).toBe(1);
    core.push(msg(5 * H, "h1", 2, 3 * H), out);
    expect(out.flatMap((w) => w.ended)).toEqual([first]);
    core.releaseEnded();
    // Another host's series takes the freed slot: it is no predecessor of h1's pid 2.
    core.push(msg(5 * H + M, "h2", 9, 0), out);
    expect(core.seriesInfo(first)?.host).toBe("h2");
    expect(core.seriesInfo(successor.slot)!.predecessor).toBeUndefined();
  });

  it("tells series apart by name, pid and start time, pids beyond 32 bits included", () => {
    const big = 2 ** 40 + 1;
    // One process per message, each message at its own ts (not a duplicate).
    let ts = 0;
    const msg = (startedAt: number | undefined, pid: number): Telemetry => ({
      v: 1,
      ts: ts++,
      host: "h",
      component: "c",
      processes: [{ pid, name: "p", ...(startedAt === undefined ? {} : { startedAt }), bytes: 1 }],
    });
    const core = new WindowCore();
    const out: ClosedWindow[] = [];
    for (const m of [msg(undefined, 1), msg(0, 1), msg(undefined, big), msg(0, big), msg(0, big - 2 ** 32)])
      core.push(m, out);
    core.flush(out);
    const seen = out[0]!.newSeries.map((s) => [s.pid, s.startedAt]);
    expect(seen).toEqual([
      [1, undefined],
      [1, 0],
      [big, undefined],
      [big, 0],
      [big - 2 ** 32, 0],
    ]);
  });

  it("finds the streams of many hosts again (host table growth)", () => {
    const core = new WindowCore();
    const out: ClosedWindow[] = [];
    for (let round = 0; round < 2; round++)
      for (let h = 0; h < 3000; h++)
        for (const component of ["a", "b"])
          core.push({ ...sample(0, 1, { host: `host-${h}` }), component }, out);
    core.flush(out);
    expect(core.trackedSeries).toBe(6000);
    expect(core.stats.duplicates).toBe(6000);
    expect(out[0]!.streams).toHaveLength(6000);
    expect(core.seriesInfo(out[0]!.slots[5999]!)).toMatchObject({ host: "host-2999", component: "b" });
  });

  it("reports the stream's median VM count within each window", () => {
    const msgs = [sample(0, 1, { vms: 2 }), sample(20 * M, 1, { vms: 5 }), sample(30 * M, 1, { vms: 5 })];
    const { windows } = run([...msgs, sample(H, 1, { vms: 1 })]);
    expect(windows.map((w) => w.streams[0]!.vms)).toEqual([5, 1]);
  });
});

describe("WindowCore memory at the window's VM count", () => {
  // A VM arrives at minute 20: 4 samples at 2 VMs (about 100), 8 at 3 VMs (about 200).
  const arrival = Array.from({ length: 12 }, (_, i) =>
    sample(i * 5 * M, i < 4 ? 100 + i : 200 + i, { vms: i < 4 ? 2 : 3 }),
  );

  it("gives the center of the samples at the window's VM count when the count moved within it", () => {
    const { windows } = run(arrival);
    expect(windows[0]!.streams[0]!.vms).toBe(3);
    // All samples: the 6th and 7th of 12 sorted, pulled down by the samples before the arrival.
    expect(windows[0]!.values).toEqual([205.5]);
    // Only the 8 at 3 VMs: 204..211.
    expect(windows[0]!.atVms).toEqual(new Map([[0, 207.5]]));
  });

  it("gives the same whatever the arrival order within the allowed lateness", () => {
    const shuffled = [...arrival].reverse();
    const { windows } = run(shuffled, { allowedLatenessMs: H });
    expect(windows[0]!.atVms).toEqual(new Map([[0, 207.5]]));
  });

  it("adds nothing when the VM count held, or when no sample has the median count", () => {
    const held = Array.from({ length: 12 }, (_, i) => sample(i * 5 * M, 100 + i, { vms: 2 }));
    expect(run(held).windows[0]!.atVms).toBeUndefined();
    // Six samples at 2 VMs, six at 3: the median count is 2.5.
    const split = Array.from({ length: 12 }, (_, i) => sample(i * 5 * M, 100 + i, { vms: i < 6 ? 2 : 3 }));
    expect(run(split).windows[0]!.atVms).toBeUndefined();
  });
});

describe("robustCenter", () => {
  it.each([
    [[5], 5],
    [[1, 3], 2],
    [[9, 1, 5], 5],
    [[4, 1, 3, 100], 3.5],
  ])("%j → %d", (vals, expected) => {
    expect(robustCenter([...vals])).toBe(expected);
  });
});

describe("eventTimeWindows operator", () => {
  it("emits windows in virtual time and flushes on complete", () => {
    new TestScheduler((a, b) => expect(a).toEqual(b)).run(({ cold, expectObservable }) => {
      const input = cold("a-b-|", { a: [sample(0, 1)], b: [sample(H + 20 * M, 2)] });
      const starts = input.pipe(eventTimeWindows());
      const mapped = new Subject<number>();
      starts.subscribe((w) => mapped.next(w.start));
      expectObservable(input.pipe(eventTimeWindows()), "^").toBe("--a-(b|)", {
        a: expect.objectContaining({ start: 0 }),
        b: expect.objectContaining({ start: H }),
      });
    });
  });

  it("releases state on unsubscribe", () => {
    const input = new Subject<Telemetry[]>();
    const seen: number[] = [];
    const sub = input.pipe(eventTimeWindows()).subscribe((w) => seen.push(w.start));
    input.next([sample(0, 1)]);
    sub.unsubscribe();
    expect(input.observed).toBe(false);
    expect(seen).toEqual([]);
  });
});
