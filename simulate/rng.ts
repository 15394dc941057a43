import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { xoroshiro128plusFromState } from "pure-rand/generator/xoroshiro128plus";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";

/** An inclusive [min, max] pair. */
export type Range = readonly [number, number];

/** 32-bit hash of a string (FNV-1a over UTF-16 code units, finished with a murmur3 avalanche). */
export function hash32(text: string, salt: number): number {
  let h = (0x811c9dc5 ^ Math.imul(salt | 0, 0x9e3779b1)) | 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A deterministic random stream for one entity. The state is derived by hashing (seed, key), so
 * each entity's values depend only on the seed and its own key, never on the order in which
 * other entities are created or consumed.
 */
export class Rand {
  private readonly g: RandomGenerator;
  private spare = Number.NaN;

  constructor(seed: number, key: string) {
    const text = `${seed}\u0000${key}`;
    const s = [hash32(text, 1), hash32(text, 2), hash32(text, 3), hash32(text, 4)];
    if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1;
    this.g = xoroshiro128plusFromState(s.map((w) => w | 0));
    for (let i = 0; i < 8; i++) this.g.next();
  }

  /** Uniform in [0, 1). */
  float(): number {
    return uniformFloat64(this.g);
  }

  /** Uniform in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + (hi - lo) * uniformFloat64(this.g);
  }

  /** Uniform in a [min, max] range. */
  range(r: Range): number {
    return r[0] + (r[1] - r[0]) * uniformFloat64(this.g);
  }

  /** Log-uniform in a [min, max] range of positive numbers. */
  logRange(r: Range): number {
    if (r[0] <= 0 || r[0] === r[1]) return this.range(r);
    return Math.exp(this.between(Math.log(r[0]), Math.log(r[1])));
  }

  /** Uniform integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(uniformFloat64(this.g) * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return uniformFloat64(this.g) < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty list");
    return items[Math.floor(uniformFloat64(this.g) * items.length)] as T;
  }

  /** Picks a key with probability proportional to its weight (weights ≥ 0, not all 0). */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const keys = Object.keys(weights) as K[];
    let total = 0;
    for (const k of keys) total += weights[k];
    let u = uniformFloat64(this.g) * total;
    for (const k of keys) {
      u -= weights[k];
      if (u < 0) return k;
    }
    return keys[keys.length - 1] as K;
  }

  /** Exponential with the given mean. */
  exp(mean: number): number {
    return -mean * Math.log(1 - uniformFloat64(this.g));
  }

  /** Poisson count with mean lambda. */
  poisson(lambda: number): number {
    if (lambda <= 0) return 0;
    if (lambda > 50) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * this.normal()));
    const limit = Math.exp(-lambda);
    let k = 0;
    let p = uniformFloat64(this.g);
    while (p > limit) {
      k++;
      p *= uniformFloat64(this.g);
    }
    return k;
  }

  /** Standard normal (Box–Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const v = this.spare;
      this.spare = Number.NaN;
      return v;
    }
    const u1 = 1 - uniformFloat64(this.g);
    const u2 = uniformFloat64(this.g);
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** Fisher–Yates shuffle, in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(uniformFloat64(this.g) * (i + 1));
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }
}
