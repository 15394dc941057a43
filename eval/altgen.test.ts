import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkTelemetry } from "../schemas/telemetry.ts";
import { checkTruth } from "../schemas/truth.ts";

const dir = mkdtempSync(join(tmpdir(), "altgen-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function generate(scenario: string, seed: number): { lines: string[]; truth: string[] } {
  const out = join(dir, `${scenario}-${seed}.t`);
  const truth = join(dir, `${scenario}-${seed}.g`);
  execFileSync(
    process.execPath,
    [
      "--import",
      "tsx",
      "eval/altgen.ts",
      "--seed",
      String(seed),
      "--hosts",
      "40",
      "--days",
      "1",
      "--scenario",
      scenario,
      "--out",
      out,
      "--truth",
      truth,
    ],
    { stdio: "pipe" },
  );
  const read = (f: string) =>
    readFileSync(f, "utf8")
      .split("\n")
      .filter((l) => l !== "");
  return { lines: read(out), truth: read(truth) };
}

describe("altgen, the independent fleet generator", () => {
  it("writes contract telemetry (but for a few invalid lines it means to) and truth that names leaking series it sampled", () => {
    const { lines, truth } = generate("mixed", 11);
    let invalid = 0;
    const targets = new Set<string>();
    for (const line of lines) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        invalid++;
        continue;
      }
      const checked = checkTelemetry(parsed);
      if (!checked.ok) {
        invalid++;
        continue;
      }
      for (const p of checked.value.processes)
        targets.add(`${checked.value.host}/${checked.value.component}/${p.name}`);
    }
    expect(invalid).toBeGreaterThan(0);
    expect(invalid).toBeLessThan(10);
    expect(truth.length).toBeGreaterThan(0);
    for (const line of truth) {
      const record = checkTruth(JSON.parse(line));
      expect(record.ok).toBe(true);
      if (record.ok)
        expect(targets).toContain(`${record.value.host}/${record.value.component}/${record.value.process}`);
    }
  });

  it("is deterministic per seed, and its quiet fleet has no leaks", () => {
    const a = generate("quiet", 5);
    const b = generate("quiet", 5);
    expect(a.lines).toEqual(b.lines);
    expect(a.truth).toEqual([]);
  });
});
