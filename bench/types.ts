/** One line of `npm run bench` output. Ratios compare against a baseline measured in the same run. */
export interface BenchRow {
  /** What was measured, e.g. "simulate: messages written". */
  name: string;
  value: number;
  unit: string;
  /** The baseline measured in the same run, when the row is a ratio. */
  baseline?: { name: string; value: number };
  /** value / baseline.value (or the ratio defined by the row). */
  ratio?: number;
  /** The target from DESIGN.md or the issue, as text, e.g. ">= 0.5". */
  target?: string;
  /** Whether the target was met (undefined when there is no target). */
  met?: boolean;
}

export interface BenchSuite {
  name: string;
  run(options: { quick: boolean }): Promise<BenchRow[]>;
}
