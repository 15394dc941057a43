import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { evalProgram, scenarioFixture as fixture, suspect, T0, tempDir, writeNdjson } from "./fixtures.ts";

describe("resin eval CLI", () => {
  const out: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    out.length = 0;
  });

  const program = () => evalProgram(out);

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
