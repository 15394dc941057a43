import type { Observable, OperatorFunction, Subject } from "rxjs";
import { map } from "rxjs/operators";
import type { Telemetry } from "../../schemas/telemetry.ts";
import { type DeadLetter, decodeParsed, looksValidTelemetry, parseLine } from "./core.ts";

export * from "./core.ts";

export interface DecodeStats {
  decoded: number;
  invalid: number;
}

/**
 * Decodes batches of NDJSON lines into telemetry; invalid lines go to `deadLetters` with the
 * reason and are counted, never thrown.
 *
 * @example
 * const dead = new Subject<DeadLetter>();
 * lines$.pipe(decodeTelemetry(dead)).subscribe((batch) => console.log(batch.length));
 */
export function decodeTelemetry(
  deadLetters: Subject<DeadLetter>,
  stats: DecodeStats = { decoded: 0, invalid: 0 },
): OperatorFunction<readonly string[], Telemetry[]> {
  return (source: Observable<readonly string[]>) =>
    source.pipe(
      map((lines) => {
        const out: Telemetry[] = [];
        for (const line of lines) {
          // The common case first: a line that passes the fast check, without a result object.
          const value = parseLine(line);
          if (looksValidTelemetry(value)) {
            out.push(value);
            continue;
          }
          const d = decodeParsed(value, line);
          if (d.ok) out.push(d.value);
          else {
            stats.invalid++;
            deadLetters.next(d.dead);
          }
        }
        stats.decoded += out.length;
        return out;
      }),
    );
}
