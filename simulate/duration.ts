/** Durations as text: "500ms", "30s", "5m", "1h", "2d", compounds such as "1h30m", decimals such as "1.5h". */

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

const UNIT_MS: Record<string, number> = { ms: 1, s: SECOND, m: MINUTE, h: HOUR, d: DAY };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/**
 * Parses a duration such as "30s", "5m", "1h", "2d", "1h30m" or "1.5h" into integer milliseconds.
 * Throws a RangeError naming the text when it is not a duration.
 */
export function parseDuration(text: string): number {
  const src = text.trim();
  if (src === "") throw new RangeError(`invalid duration "${text}" (use e.g. 30s, 5m, 1h, 2d)`);
  let total = 0;
  PART.lastIndex = 0;
  let pos = 0;
  while (pos < src.length) {
    PART.lastIndex = pos;
    const m = PART.exec(src);
    if (m === null) throw new RangeError(`invalid duration "${text}" (use e.g. 30s, 5m, 1h, 2d)`);
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    pos = PART.lastIndex;
  }
  return Math.round(total);
}

/** Formats milliseconds compactly with the largest units first: 300000 → "5m", 5400000 → "1h30m". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  let rest = Math.round(Math.abs(ms));
  if (rest === 0) return "0s";
  let out = ms < 0 ? "-" : "";
  for (const [unit, size] of [
    ["d", DAY],
    ["h", HOUR],
    ["m", MINUTE],
    ["s", SECOND],
    ["ms", 1],
  ] as const) {
    if (rest >= size) {
      const n = Math.floor(rest / size);
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$/i;
const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Parses a byte size: a number, or text such as "200MiB", "1.5GiB", "3GB" (SI units are powers of 10). */
export function parseBytes(text: string): number {
  const m = SIZE.exec(text.trim());
  if (m === null) throw new RangeError(`invalid size "${text}" (use e.g. 200MiB, 1.5GiB, 3GB)`);
  const unit = (m[2] ?? "b").toLowerCase();
  return Math.round(Number(m[1]) * (SIZE_UNITS[unit] as number));
}
