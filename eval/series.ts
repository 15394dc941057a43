import { Decimator, median } from "./stats.ts";
import { HOUR_MS } from "./types.ts";

const MAX_IDENTITIES = 16;
const MAX_RESTARTS = 5000;
const FIRST_HOURS_MS = 6 * HOUR_MS;

/** Values of a target before one truth record's startTs (for the normal-size estimate). */
export interface TruthWatch {
  startTs: number;
  pre: Decimator;
}

/**
 * What the evaluation keeps about one target it must plot or judge (a suspect or a truth
 * record): hourly medians of its samples, its restarts, and bounded samples for the
 * normal-size estimate. Only these targets are kept, so memory follows the number of
 * suspects and truth records, not the fleet.
 *
 * A target is (host, component, process name); its process identities are (pid, startedAt).
 * A sample whose identity this target has not seen before, after the first one, is a
 * restart at its startedAt (or at the sample's ts when startedAt is absent).
 */
export class TrackedTarget {
  firstSeenTs: number | null = null;
  maxTs = Number.NEGATIVE_INFINITY;
  samples = 0;
  lateDropped = 0;
  readonly first6h = new Decimator(512);
  readonly restarts: number[] = [];
  readonly watches: TruthWatch[] = [];
  private readonly identities: string[] = [];
  private readonly open = new Map<number, number[]>();
  private readonly doneHours: number[] = [];
  private readonly doneMedians: number[] = [];
  private finalizedThrough = Number.NEGATIVE_INFINITY;

  watch(startTs: number): TruthWatch {
    const w = { startTs, pre: new Decimator(2048) };
    this.watches.push(w);
    return w;
  }

  add(ts: number, bytes: number, pid: number, startedAt: number | undefined): void {
    this.samples++;
    if (this.firstSeenTs === null) this.firstSeenTs = ts;
    if (ts < this.firstSeenTs + FIRST_HOURS_MS) this.first6h.add(bytes);
    for (const w of this.watches) if (ts < w.startTs) w.pre.add(bytes);

    const id = `${pid}:${startedAt ?? ""}`;
    if (!this.identities.includes(id)) {
      if (this.identities.length > 0 && this.restarts.length < MAX_RESTARTS) {
        this.restarts.push(startedAt ?? ts);
      }
      this.identities.push(id);
      if (this.identities.length > MAX_IDENTITIES) this.identities.shift();
    }

    const hour = Math.floor(ts / HOUR_MS);
    if (hour <= this.finalizedThrough) {
      this.lateDropped++;
    } else {
      let values = this.open.get(hour);
      if (!values) {
        values = [];
        this.open.set(hour, values);
      }
      values.push(bytes);
    }
    if (ts > this.maxTs) {
      const before = Math.floor(this.maxTs / HOUR_MS);
      this.maxTs = ts;
      // An hour is final once the target's samples are a full hour past its end.
      if (hour !== before) this.finalizeThrough(hour - 2);
    }
  }

  private finalizeThrough(lastHour: number): void {
    if (lastHour <= this.finalizedThrough) return;
    const ready = [...this.open.keys()].filter((h) => h <= lastHour).sort((a, b) => a - b);
    for (const h of ready) {
      const m = median(this.open.get(h)!);
      this.open.delete(h);
      if (m !== null) {
        this.doneHours.push(h * HOUR_MS);
        this.doneMedians.push(m);
      }
    }
    this.finalizedThrough = lastHour;
  }

  /** Closes every open hour; call once at the end of the telemetry. */
  finish(): void {
    this.finalizeThrough(Number.MAX_SAFE_INTEGER);
  }

  /** Hour starts (ms, ascending) and the median bytes of each hour. */
  series(): { hours: number[]; medians: number[] } {
    const order = this.doneHours.map((_, i) => i).sort((a, b) => this.doneHours[a]! - this.doneHours[b]!);
    return { hours: order.map((i) => this.doneHours[i]!), medians: order.map((i) => this.doneMedians[i]!) };
  }

  get lastTs(): number | null {
    return Number.isFinite(this.maxTs) ? this.maxTs : null;
  }
}
