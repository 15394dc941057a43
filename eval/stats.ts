import { SimpleLinearRegression } from "ml-regression";

/**
 * Percentile by linear interpolation between closest ranks (numpy's default, R type 7):
 * rank = p × (n − 1) over the sorted values. Returns null for no values.
 */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(Math.max(p, 0), 1) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (rank - lo);
}

export function median(values: readonly number[]): number | null {
  return percentile(values, 0.5);
}

/**
 * Bounded, deterministic sample of a stream of numbers: keeps every `stride`-th value and,
 * when full, drops every other kept value and doubles the stride. Its median approximates
 * the stream's median while memory stays at `capacity` numbers.
 */
export class Decimator {
  private values: number[] = [];
  private stride = 1;
  private seen = 0;

  constructor(private readonly capacity = 2048) {}

  add(value: number): void {
    if (this.seen++ % this.stride !== 0) return;
    this.values.push(value);
    if (this.values.length >= this.capacity) {
      this.values = this.values.filter((_, i) => i % 2 === 0);
      this.stride *= 2;
    }
  }

  get count(): number {
    return this.seen;
  }

  median(): number | null {
    return median(this.values);
  }
}

export interface LineFit {
  slope: number;
  intercept: number;
  r2: number;
}

/**
 * Ordinary least squares y = intercept + slope·x with ml-regression's SimpleLinearRegression.
 * x and y are shifted by their first/mean values before fitting so that epoch-scale x and
 * byte-scale y do not lose precision in the library's sums; the result is in the original units.
 * r2 is 0 when y is constant (the library would give NaN). Returns null for < 2 distinct x.
 */
export function fitLine(xs: readonly number[], ys: readonly number[]): LineFit | null {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return null;
  const x0 = xs[0]!;
  let yMean = 0;
  for (let i = 0; i < n; i++) yMean += ys[i]!;
  yMean /= n;
  const x = new Array<number>(n);
  const y = new Array<number>(n);
  let distinct = false;
  for (let i = 0; i < n; i++) {
    x[i] = xs[i]! - x0;
    y[i] = ys[i]! - yMean;
    if (x[i] !== 0) distinct = true;
  }
  if (!distinct) return null;
  const reg = new SimpleLinearRegression(x, y);
  if (!Number.isFinite(reg.slope)) return null;
  const r2raw = reg.score(x, y).r2;
  const r2 = Number.isFinite(r2raw) ? r2raw : 0;
  return { slope: reg.slope, intercept: reg.intercept + yMean - reg.slope * x0, r2 };
}
