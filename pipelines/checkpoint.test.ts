import { Subject } from "rxjs";
import { describe, expect, it } from "vitest";
import { StateError } from "../lib/state.ts";
import type { SuspectEvent } from "../schemas/suspect.ts";
import { createSimulation, resolveScenario } from "../simulate/index.ts";
import { detectGraph, type PipelineStats } from "./detect.ts";

/**
 * Checkpoints: the detector state captured between batches, restored into a new graph after a
 * simulated crash (the old graph's later output is thrown away), must continue exactly as if
 * nothing had happened.
 */

const lines = [...createSimulation(resolveScenario("mixed", { hosts: 30, days: 3, seed: 11 })).lines()];
const BATCH = 1500;
const batches: string[][] = [];
for (let i = 0; i < lines.length; i += BATCH) batches.push(lines.slice(i, i + BATCH));

interface Run {
  events: string[];
  dead: number;
  stats: PipelineStats;
}

function straight(): Run {
  const input = new Subject<readonly string[]>();
  const g = detectGraph(input);
  const events: string[] = [];
  let dead = 0;
  g.suspects.subscribe((e) => events.push(JSON.stringify(e)));
  g.deadLetters.subscribe(() => dead++);
  for (const b of batches) input.next(b);
  input.complete();
  return { events, dead, stats: structuredClone(g.stats) };
}

/** Runs with a crash after each checkpoint batch index: work after the checkpoint is lost and redone. */
function crashing(checkpointsAt: number[], lostBatches: number): Run {
  const events: string[] = [];
  let dead = 0;
  let state: Uint8Array | undefined;
  let next = 0;
  for (const at of [...checkpointsAt, Number.POSITIVE_INFINITY]) {
    const input = new Subject<readonly string[]>();
    const g = detectGraph(input, { restore: state });
    const pending: string[] = [];
    let pendingDead = 0;
    const sub = g.suspects.subscribe((e: SuspectEvent) => pending.push(JSON.stringify(e)));
    g.deadLetters.subscribe(() => pendingDead++);
    for (; next < Math.min(at, batches.length); next++) input.next(batches[next]!);
    if (at === Number.POSITIVE_INFINITY) {
      input.complete();
      events.push(...pending);
      return { events, dead: dead + pendingDead, stats: structuredClone(g.stats) };
    }
    state = g.capture();
    events.push(...pending);
    dead += pendingDead;
    // Work done after the checkpoint and lost in the crash.
    for (let k = next; k < Math.min(next + lostBatches, batches.length); k++) input.next(batches[k]!);
    sub.unsubscribe();
  }
  throw new Error("unreachable");
}

describe("detector checkpoints (mixed fleet, 30 hosts × 3 days)", () => {
  const reference = straight();

  it("the reference run finds suspects", () => {
    expect(reference.events.length).toBeGreaterThan(0);
  });

  it("restoring after crashes gives the same events and counters as an uninterrupted run", () => {
    const n = batches.length;
    const run = crashing(
      [Math.floor(n * 0.2), Math.floor(n * 0.5), Math.floor(n * 0.51), Math.floor(n * 0.9)],
      7,
    );
    expect(run.events).toEqual(reference.events);
    expect(run.stats).toEqual(reference.stats);
    expect(run.dead).toBe(reference.dead);
  });

  it("refuses a checkpoint made with other detector settings, naming the way out", () => {
    const input = new Subject<readonly string[]>();
    const g = detectGraph(input);
    g.suspects.subscribe();
    input.next(batches[0]!);
    const state = g.capture();
    expect(() => detectGraph(new Subject(), { restore: state, detect: { confirmWindows: 3 } })).toThrow(
      StateError,
    );
    expect(() => detectGraph(new Subject(), { restore: state, detect: { confirmWindows: 3 } })).toThrow(
      /--reset-state/,
    );
    expect(() => detectGraph(new Subject(), { restore: new Uint8Array([1, 2, 3]) })).toThrow(/not readable/);
  });
});
