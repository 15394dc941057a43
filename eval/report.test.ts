import { describe, expect, it } from "vitest";
import { scenarioFixture as fixture, MiB, T0 } from "./fixtures.ts";
import { evaluate, renderHtml, renderTable, toJsonReport } from "./index.ts";

describe("evaluate + reports", () => {
  it("scores resin and the baselines on one pass, and renders table, JSON and HTML", async () => {
    const f = fixture([
      "not json",
      JSON.stringify({ v: 1, ts: T0, host: "bad host!", component: "svc", processes: [] }),
    ]);
    const result = await evaluate({ telemetryPath: f.telemetry, truth: f.records, suspects: f.events });

    expect(result.telemetry.badLines).toBe(2);
    expect(result.telemetry.lines).toBe(6 * 60 * 12 + 2);
    expect(result.truth.map((t) => t.eligible)).toEqual([true, true, true, false]);

    const resin = result.detectors[0]!;
    expect(resin.name).toBe("resin");
    expect(resin.overall.tp).toBe(2);
    expect(resin.overall.fp).toBe(1);
    expect(resin.overall.fn).toBe(1);
    expect(resin.overall.precision).toBeCloseTo(2 / 3, 12);
    expect(resin.overall.recallEligible).toBeCloseTo(2 / 3, 12);
    expect(resin.overall.recallAll).toBeCloseTo(2 / 4, 12);
    expect(resin.overall.delayP50h).toBeCloseTo(3.5, 12);
    expect(result.detectors.map((d) => d.name)).toEqual(["resin", "static", "predict_linear", "precog"]);

    const table = renderTable(result);
    for (const name of ["resin", "static", "predict_linear", "precog", "By truth pattern", "By kind"]) {
      expect(table).toContain(name);
    }
    expect(table).toMatch(/resin\s+0\.667\s+0\.667\s+0\.500\s+0\.667\s+2\s+1\s+1/);

    const json = JSON.parse(JSON.stringify(toJsonReport(result)));
    expect(json.detectors[0].truePositives).toHaveLength(2);
    expect(json.detectors[0].falsePositives[0].host).toBe("h0");
    expect(json.detectors[0].misses.map((m: { target: { host: string } }) => m.target.host)).toEqual([
      "h2",
      "k1",
    ]);

    const sections = Object.fromEntries(result.plots.map((p) => [p.category, p]));
    expect(sections.tp!.cases).toHaveLength(2);
    expect(sections.fp!.cases).toHaveLength(1);
    expect(sections.miss!.cases).toHaveLength(1); // eligible misses only

    const h3 = sections.tp!.cases.find((c) => c.target.host === "h3")!;
    expect(h3.restarts).toEqual([f.restart]);
    expect(h3.hours).toHaveLength(60);
    expect(h3.trend!.slopePerHour).toBeGreaterThan(6 * MiB);
    expect(h3.trend!.slopePerHour).toBeLessThan(10 * MiB);

    const html = renderHtml(result);
    const svgs = html.match(/<svg /g) ?? [];
    expect(svgs).toHaveLength(4);
    expect((html.match(/<figure /g) ?? []).length).toBe(4);
    expect(html).toContain('class="restart"');
    expect(html).toContain('class="detected"');
    expect(html).toContain('class="truth-start"');
    expect(html).toContain('class="trend"');
    expect(html).not.toMatch(/(src|href)="http/);
    expect(html).not.toContain("<script");
  });

  it("caps the plots per category and says so", async () => {
    const f = fixture();
    const result = await evaluate({
      telemetryPath: f.telemetry,
      truth: f.records,
      suspects: f.events,
      plotCap: 1,
      baselines: false,
    });
    const tp = result.plots.find((p) => p.category === "tp")!;
    expect(tp.total).toBe(2);
    expect(tp.cases).toHaveLength(1);
    const html = renderHtml(result);
    expect(html).toContain("showing 1 of 2 (capped at 1)");
    expect(html.match(/<svg /g)).toHaveLength(3);
  });
});
