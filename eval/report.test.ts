import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { afterEach, describe, expect, it, vi } from "vitest";
import { registerEval } from "../cli/eval.ts";
import { lcg, MiB, suspect, T0, telemetryRows, tempDir, truth, writeNdjson } from "./fixtures.ts";
import { evaluate, renderHtml, renderTable, toJsonReport } from "./index.ts";
import { HOUR_MS } from "./types.ts";

const H = HOUR_MS;
const GiB = 1024 * MiB;

/** 6 hosts, 60 h: leaks on h1 (detected), h2 (missed) and h3 (restart mid-leak); resin also flags h0 (FP). */
function fixture(extraLines: string[] = []) {
  const dir = tempDir();
  const start = T0 + 30 * H;
  const restart = T0 + 45 * H;
  const procs = [0, 1, 2, 3, 4, 5].map((i) => {
    const r = lcg(10 + i);
    const leaky = i >= 1 && i <= 3;
    return {
      host: `h${i}`,
      component: "svc",
      name: "svc",
      bytes: (t: number) => {
        const base = 100 * MiB + (r() - 0.5) * 2 * MiB;
        if (!leaky || t <= start) return base;
        const from = i === 3 && t >= restart ? restart : start;
        return base + ((t - from) / H) * 8 * MiB;
      },
      pid: (t: number) => (i === 3 && t >= restart ? 200 : 100),
      startedAt: (t: number) => (i === 3 && t >= restart ? restart : T0 - H),
    };
  });
  const rows: (object | string)[] = telemetryRows(procs, { hours: 60, hostTotal: 16 * GiB });
  rows.splice(10, 0, ...extraLines);
  const telemetry = writeNdjson(dir, "telemetry.ndjson", rows);
  const records = [1, 2, 3].map((i) =>
    truth({ host: `h${i}`, startTs: start, ratePerHour: 8 * MiB, pattern: i === 2 ? "stair" : "steady" }),
  );
  records.push(
    truth({
      host: "k1",
      component: "kernel",
      process: "Pool",
      kind: "kernel",
      startTs: start,
      ratePerHour: MiB,
    }),
  );
  const truthPath = writeNdjson(dir, "truth.ndjson", records);
  const events = [
    suspect({ host: "h1", start, end: start + 4 * H, detectedAt: start + 4 * H }),
    suspect({ host: "h1", state: "update", start, end: start + 8 * H, detectedAt: start + 8 * H }),
    suspect({ host: "h3", start, end: start + 3 * H, detectedAt: start + 3 * H }),
    suspect({ host: "h0", start: T0 + 10 * H, end: T0 + 20 * H, detectedAt: T0 + 20 * H, pattern: "spike" }),
  ];
  const suspectsPath = writeNdjson(dir, "suspects.ndjson", events);
  return { dir, telemetry, truthPath, suspectsPath, records, events, start, restart };
}

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

describe("resin eval CLI", () => {
  const out: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    out.length = 0;
  });

  function program() {
    const p = new Command("resin").exitOverride();
    registerEval(p);
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    });
    return p;
  }

  it("prints the table and writes JSON and HTML", async () => {
    const f = fixture();
    const json = join(f.dir, "out.json");
    const html = join(f.dir, "out.html");
    await program().parseAsync([
      "node",
      "resin",
      "eval",
      "--telemetry",
      f.telemetry,
      "--truth",
      f.truthPath,
      "--suspects",
      f.suspectsPath,
      "--json",
      json,
      "--html",
      html,
    ]);
    expect(out.join("")).toMatch(/^resin\s+0\.667/m);
    expect(JSON.parse(readFileSync(json, "utf8")).detectors).toHaveLength(4);
    expect(readFileSync(html, "utf8")).toContain("<svg ");
  });

  it.each([
    {
      name: "bad truth line",
      file: "truth",
      line: JSON.stringify({
        host: "h1",
        component: "svc",
        process: "svc",
        kind: "process",
        pattern: "wavy",
        startTs: 1,
        ratePerHour: 1,
      }),
      want: /truth\.ndjson:2: invalid truth record: field pattern: .*"wavy"/,
    },
    {
      name: "bad suspect line",
      file: "suspects",
      line: JSON.stringify({ ...suspect({ host: "h1" }), detectedAt: -5 }),
      want: /suspects\.ndjson:2: invalid suspect event: field detectedAt: .*-5/,
    },
    {
      name: "suspect line not JSON",
      file: "suspects",
      line: "{oops",
      want: /suspects\.ndjson:2: invalid suspect event: not JSON/,
    },
  ])("exits 3 on a $name, naming line, field and value", async ({ file, line, want }) => {
    const f = fixture();
    const dir = tempDir();
    const good =
      file === "truth"
        ? JSON.stringify(f.records[0])
        : JSON.stringify(suspect({ host: "h1", detectedAt: T0 }));
    const path = writeNdjson(dir, `${file}.ndjson`, [good, line]);
    const args = [
      "node",
      "resin",
      "eval",
      "--telemetry",
      f.telemetry,
      "--truth",
      f.truthPath,
      "--suspects",
      f.suspectsPath,
    ];
    args[args.indexOf(`--${file}`) + 1] = path;
    const err = await program()
      .parseAsync(args)
      .then(
        () => null,
        (e: unknown) => e as { code: number; message: string },
      );
    expect(err).not.toBeNull();
    expect(err!.code).toBe(3);
    expect(err!.message).toMatch(want);
  });
});
