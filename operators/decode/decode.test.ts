import { Subject } from "rxjs";
import { describe, expect, it } from "vitest";
import { telemetryCases } from "../../schemas/fixtures.ts";
import { checkTelemetry } from "../../schemas/telemetry.ts";
import { type DeadLetter, decodeLine, decodeTelemetry, looksValidTelemetry } from "./index.ts";

describe("fast telemetry check", () => {
  it.each(telemetryCases)("agrees with the zod schema: %s", (_name, message) => {
    expect(looksValidTelemetry(message)).toBe(checkTelemetry(message).ok);
  });
});

describe("decodeLine", () => {
  it("decodes a valid line", () => {
    const d = decodeLine('{"v":1,"ts":5,"host":"h","component":"c","processes":[]}');
    expect(d.ok).toBe(true);
  });

  it.each([
    ["not JSON", "{oops", /not JSON/],
    [
      "wrong version",
      '{"v":2,"ts":5,"host":"h","component":"c","processes":[]}',
      /^v: unsupported contract version \(got 2\)/,
    ],
    ["bad field", '{"v":1,"ts":5,"host":"h.x","component":"c","processes":[]}', /^host: .*\(got "h\.x"\)/],
    ["oversized", `{"v":1,"pad":"${"x".repeat(1 << 20)}"}`, /exceeds/],
  ])("dead-letters %s with the reason", (_name, line, reason) => {
    const d = decodeLine(line);
    expect(d.ok).toBe(false);
    if (!d.ok) {
      expect(d.dead.reason).toMatch(reason);
      expect(d.dead.raw.length).toBeLessThanOrEqual(4200);
    }
  });
});

describe("decodeTelemetry operator", () => {
  it("passes valid messages, dead-letters and counts the rest, and keeps going", () => {
    const dead: DeadLetter[] = [];
    const deadLetters = new Subject<DeadLetter>();
    deadLetters.subscribe((d) => dead.push(d));
    const stats = { decoded: 0, invalid: 0 };
    const out: number[] = [];
    const input = new Subject<string[]>();
    input.pipe(decodeTelemetry(deadLetters, stats)).subscribe((batch) => out.push(batch.length));
    input.next(['{"v":1,"ts":5,"host":"h","component":"c","processes":[]}', "garbage"]);
    input.next(['{"v":1,"ts":6,"host":"h","component":"c","processes":[]}']);
    input.complete();
    expect(out).toEqual([1, 1]);
    expect(stats).toEqual({ decoded: 2, invalid: 1 });
    expect(dead).toHaveLength(1);
    expect(dead[0]?.reason).toMatch(/not JSON/);
  });
});
