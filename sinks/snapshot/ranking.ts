/**
 * Which hosts of a leaking component to profile (DESIGN.md, "Heap snapshots"): RESIN ranks the
 * suspects by severity, then by how clearly they grow (noise hides the leak in the profiles
 * too), then by customer impact (fewer VMs first: profiling costs the host a little). Severity
 * is a continuous score, so ranking on it strictly would leave the other two criteria nothing
 * to decide; severities within one band count as equal, and clarities likewise. Pure.
 */
import { linearFit } from "./completion.ts";

export interface RankedCandidate {
  host: string;
  severity: number;
  /** How clearly the memory grows: R² of a line through its recent points, 0..1; undefined: unknown. */
  clarity?: number | undefined;
  /** Customer VMs on the host; undefined: unknown. */
  vms?: number | undefined;
}

export interface RankingBands {
  severityBand: number;
  clarityBand: number;
}

/** An unknown clarity ranks as a middling one: neither preferred nor held back. */
const UNKNOWN_CLARITY = 0.5;

/** Best first. Stable for equal candidates (host id decides last). */
export function rankCandidates<C extends RankedCandidate>(
  candidates: readonly C[],
  bands: RankingBands,
): C[] {
  const key = (c: C) => ({
    severity: Math.floor(c.severity / bands.severityBand),
    clarity: Math.floor((c.clarity ?? UNKNOWN_CLARITY) / bands.clarityBand + 1e-9),
    vms: c.vms ?? Number.POSITIVE_INFINITY,
  });
  return [...candidates].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    return (
      kb.severity - ka.severity ||
      kb.clarity - ka.clarity ||
      (ka.vms === kb.vms ? 0 : ka.vms < kb.vms ? -1 : 1) ||
      b.severity - a.severity ||
      (a.host < b.host ? -1 : a.host > b.host ? 1 : 0)
    );
  });
}

/**
 * Clarity of growth from memory points (ts, bytes): R² of a least-squares line through those at
 * or after `from`, if they rise; 0 if they do not; undefined with fewer than 3 points.
 */
export function clarityOf(ts: readonly number[], bytes: readonly number[], from: number): number | undefined {
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < ts.length; i++) {
    if (ts[i]! < from) continue;
    xs.push((ts[i]! - from) / 3_600_000);
    ys.push(bytes[i]!);
  }
  if (xs.length < 3) return undefined;
  const fit = linearFit(xs, ys);
  return fit.slope > 0 ? fit.r2 : 0;
}
