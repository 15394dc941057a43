import { Counter, Gauge, type Registry } from "prom-client";

/**
 * Metrics whose values live elsewhere (pipeline and sink counters): read when /metrics is
 * scraped, never pushed. `counter` re-states a monotonic count, `gauge` a current value.
 */
export function pulledMetrics(registry: Registry) {
  return {
    counter: (name: string, help: string, value: () => number) =>
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(value());
        },
      }),
    gauge: (name: string, help: string, value: () => number) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(value());
        },
      }),
  };
}
