import type { BucketCounts } from "../bucketize/core.ts";
import { DEFAULT_BUCKETS } from "../bucketize/core.ts";
import { BucketAnomalyConfig, type BucketAnomalyConfigInput } from "./config.ts";

/** Score of one bucket of one component in one window. */
export interface BucketScore {
  start: number;
  component: string;
  process: string;
  lowerBytes: number;
  hosts: number;
  baselineMean: number;
  score: number;
  anomalous: boolean;
}

interface History {
  /**
   * The bucket's host counts, a ring of `historyWindows`; undefined while every one was 0 (the
   * upper buckets of most components stay empty: no array for them).
   */
  counts: Int32Array | undefined;
  len: number;
  pos: number;
}

/**
 * Tests each bucket's newest host count against a baseline made of the older two thirds of its
 * history (RESIN: mean + 3σ), with a σ floor so empty buckets need a real rise. The severity
 * score grows with the deviation and with the number of extra hosts. Reports, per component,
 * every bucket it scored and marks the anomalous ones.
 */
export class BucketAnomalyCore {
  readonly config: BucketAnomalyConfig;
  private readonly history = new Map<string, History[]>();

  constructor(
    config: BucketAnomalyConfigInput = {},
    private readonly bounds: readonly number[] = DEFAULT_BUCKETS,
  ) {
    this.config = BucketAnomalyConfig.parse(config);
  }

  score(counts: readonly BucketCounts[]): BucketScore[] {
    const cfg = this.config;
    const out: BucketScore[] = [];
    for (const c of counts) {
      const key = `${c.component}\u0001${c.process}`;
      let hist = this.history.get(key);
      if (hist === undefined) {
        hist = this.bounds.map(() => ({ counts: undefined, len: 0, pos: 0 }));
        this.history.set(key, hist);
      }
      for (let b = 0; b < this.bounds.length; b++) {
        const h = hist[b]!;
        const hosts = c.hosts[b]!;
        const baselineLen = Math.floor((h.len * 2) / 3);
        let score = 0;
        let mean = 0;
        const history = h.counts;
        if (baselineLen >= cfg.minBaseline && (hosts > 0 || h.len > 0)) {
          // Oldest two thirds of the history: indexes len-1 … len-baselineLen back from the newest.
          let sum = 0;
          let sq = 0;
          // No history array: every count so far was 0.
          if (history !== undefined)
            for (let k = h.len - baselineLen; k < h.len; k++) {
              const v = history[(h.pos - 1 - k + cfg.historyWindows * 2) % cfg.historyWindows]!;
              sum += v;
              sq += v * v;
            }
          mean = sum / baselineLen;
          const sigma = Math.max(Math.sqrt(Math.max(0, sq / baselineLen - mean * mean)), cfg.minSigma);
          const excess = hosts - mean;
          const z = excess / sigma;
          if (z >= cfg.sigmas && excess >= 1) score = z * (1 + Math.log2(excess));
        }
        const lowerBytes = this.bounds[b]!;
        if (hosts > 0 || score > 0) {
          out.push({
            start: c.start,
            component: c.component,
            process: c.process,
            lowerBytes,
            hosts,
            baselineMean: Math.round(mean * 100) / 100,
            score: Math.round(score * 100) / 100,
            anomalous: score >= cfg.minScore && lowerBytes >= cfg.minBucketBytes,
          });
        }
        if (hosts !== 0) h.counts ??= new Int32Array(cfg.historyWindows);
        if (h.counts !== undefined) h.counts[h.pos] = hosts;
        h.pos = (h.pos + 1) % cfg.historyWindows;
        if (h.len < cfg.historyWindows) h.len++;
      }
    }
    return out;
  }
}
