/**
 * Sorts numbers ascending in place, with the same result as `values.sort((a, b) => a - b)`.
 * That sort calls its comparator for every comparison (boxing each difference) and copies into
 * a work array on every call: a few hundred MB of garbage per replay of 1M messages, mostly from
 * the detector's many small sorts. Up to 32 values an insertion sort (stable, like `sort`) is
 * several times faster, NaN aside. Longer arrays go through a Float64Array's native numeric
 * sort unless they hold a -0 or NaN: without those, numerically equal values are the same
 * value, so every ascending order is the same array; -0 and +0, or NaN, could come out in
 * another order. (+0 alone is fine, and common: absolute deviations from a median hold one.)
 */
export function sortNumbers(values: number[]): number[] {
  const n = values.length;
  if (n <= 32) {
    // NaN makes the comparator inconsistent, and `sort`'s order then depends on its algorithm.
    for (let i = 0; i < n; i++) if (Number.isNaN(values[i])) return values.sort((a, b) => a - b);
    for (let i = 1; i < n; i++) {
      const v = values[i]!;
      let j = i - 1;
      for (; j >= 0 && values[j]! > v; j--) values[j + 1] = values[j]!;
      values[j + 1] = v;
    }
    return values;
  }
  const typed = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (Object.is(v, -0) || Number.isNaN(v)) return values.sort((a, b) => a - b);
    typed[i] = v;
  }
  typed.sort();
  for (let i = 0; i < n; i++) values[i] = typed[i]!;
  return values;
}

/** Median of `values`; sorts the array in place. */
export function median(values: number[]): number {
  sortNumbers(values);
  const n = values.length;
  const mid = n >> 1;
  return n % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}

/**
 * Standard deviation of a wobble symmetric about zero, read from its falls alone (their sizes,
 * positive): the median of a half-normal is 0.6745 of it. A leak only rises, so the falls of a
 * series, or of a group, measure its healthy wobble however much of it leaks. Sorts `falls`.
 */
export function sdFromFalls(falls: number[]): number {
  return median(falls) / 0.6745;
}

/**
 * Theil–Sen slope of (xs, ys): the median of the pairwise slopes, so a burst or a few noisy
 * points cannot make a trend look flat or a flat series look trending. Null below 3 points.
 */
export function theilSenSlope(xs: readonly number[], ys: readonly number[]): number | null {
  const n = Math.min(xs.length, ys.length);
  if (n < 3) return null;
  const slopes: number[] = [];
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) if (xs[j] !== xs[i]) slopes.push((ys[j]! - ys[i]!) / (xs[j]! - xs[i]!));
  return slopes.length === 0 ? null : median(slopes);
}
