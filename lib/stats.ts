/**
 * Sorts numbers ascending in place, as `values.sort((a, b) => a - b)` does. Up to 32 values an
 * inline insertion sort is several times faster than `sort` with a comparator callback, and
 * allocates nothing (`sort` copies into a work array on every call: a few hundred MB of garbage
 * per replay from the detector's 5-point running medians alone). Both sorts are stable and
 * order numbers the same way, so the result is the same array.
 */
export function sortNumbers(values: number[]): number[] {
  if (values.length > 32) return values.sort((a, b) => a - b);
  for (let i = 1; i < values.length; i++) {
    const v = values[i]!;
    let j = i - 1;
    while (j >= 0 && values[j]! > v) {
      values[j + 1] = values[j]!;
      j--;
    }
    values[j + 1] = v;
  }
  return values;
}

/** Median of `values`; sorts the array in place. */
export function median(values: number[]): number {
  values.sort((a, b) => a - b);
  const n = values.length;
  const mid = n >> 1;
  return n % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
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
