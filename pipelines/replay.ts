import { from, lastValueFrom } from "rxjs";
import { tap, toArray } from "rxjs/operators";
import { openInput, readLineBatches } from "../lib/ndjson.ts";
import type { DeadLetter } from "../operators/decode/index.ts";
import type { SuspectEvent } from "../schemas/suspect.ts";
import { type DetectOptions, detectGraph, type PipelineStats } from "./detect.ts";

export interface ReplayResult {
  events: SuspectEvent[];
  stats: PipelineStats;
}

/**
 * Runs the detection graph over telemetry NDJSON in event time only: the same input gives the
 * same events. `onEvent` / `onDeadLetter` see each output as it is produced.
 */
export async function replayLines(
  batches: AsyncIterable<readonly string[]> | Iterable<readonly string[]>,
  options: DetectOptions & {
    onEvent?: (e: SuspectEvent) => void;
    onDeadLetter?: (d: DeadLetter) => void;
  } = {},
): Promise<ReplayResult> {
  const graph = detectGraph(from(batches), options);
  const dlSub = options.onDeadLetter ? graph.deadLetters.subscribe(options.onDeadLetter) : undefined;
  const events = await lastValueFrom(
    graph.suspects.pipe(
      tap((e) => options.onEvent?.(e)),
      toArray(),
    ),
  );
  dlSub?.unsubscribe();
  return { events, stats: graph.stats };
}

/** Runs the detector over a telemetry NDJSON file (or "-") in event time; returns the suspect events in order. */
export async function detectFromFile(path: string, options: DetectOptions = {}): Promise<SuspectEvent[]> {
  return (await replayLines(readLineBatches(openInput(path)), options)).events;
}
