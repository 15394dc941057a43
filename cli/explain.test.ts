import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { testTempDir } from "../lib/testing/temp.ts";
import { fold, windowWord } from "./explain.ts";
import { buildProgram } from "./main.ts";

const H = 3_600_000;
const T0 = 1767571200000;

/**
 * 12 healthy hosts and one that leaks steadily from hour 30, 3 days at 5-minute samples; with
 * `helper`, each host's component runs a second, healthy process.
 */
function fleet(helper = false): string {
  const lines: string[] = [];
  for (let t = T0; t < T0 + 72 * H; t += 300_000) {
    for (let h = 0; h < 12; h++) {
      const hour = (t - T0) / H;
      const wobble = 1 + 0.004 * Math.sin(h * 7 + t / 600_000);
      const bytes = Math.round(5e8 * (1 + h / 50) * wobble + (h === 3 && hour > 30 ? 4e6 * (hour - 30) : 0));
      lines.push(
        JSON.stringify({
          v: 1,
          ts: t,
          host: `h${h}`,
          component: "svc",
          processes: [
            { pid: 7, name: "svc", startedAt: 0, bytes },
            ...(helper ? [{ pid: 8, name: "helper", startedAt: 0, bytes: Math.round(2e8 * wobble) }] : []),
          ],
        }),
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

async function explain(input: string, ...extra: string[]): Promise<string> {
  const out: string[] = [];
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  try {
    await buildProgram().parseAsync([
      "node",
      "resin",
      "explain",
      "--input",
      input,
      "--host",
      "h3",
      "--component",
      "svc",
      ...extra,
    ]);
  } finally {
    spy.mockRestore();
  }
  return out.join("");
}

describe("resin explain", () => {
  it("tells the rejected tests and the events of one target", async () => {
    const input = join(testTempDir("explain"), "t.ndjson");
    writeFileSync(input, fleet());
    const text = await explain(input);
    expect(text).toMatch(/svc\/7: EVENT open steady/);
    // The windows that passed say so, up to the one that opened the suspect.
    expect(text).toMatch(/svc\/7: passes \(1 of 2 windows\)/);
    expect(text).toMatch(/svc\/7: passes \(2 of 2 windows\)/);
    expect(text).toMatch(/svc\/7: (short or small growth|young and short|not above yesterday)/);
  });

  it("keeps each process's word in a window when the component runs several", async () => {
    const input = join(testTempDir("explain"), "t.ndjson");
    writeFileSync(input, fleet(true));
    const lines = (await explain(input)).trim().split("\n");
    const helper = lines.filter((l) => l.includes("helper/8:"));
    const svc = lines.filter((l) => l.includes("svc/7:"));
    expect(helper.length).toBeGreaterThan(0);
    expect(svc.some((l) => /EVENT open/.test(l))).toBe(true);
    // The helper's words did not take the place of the leak's in the windows both were judged.
    expect(svc.filter((l) => !/EVENT/.test(l))).toEqual(
      (await explain(input, "--process", "svc"))
        .trim()
        .split("\n")
        .filter((l) => !/EVENT/.test(l)),
    );
    // Folded per process: no two lines of one process in a row with the same word.
    for (const list of [helper, svc]) {
      const words = list.map((l) => l.slice(l.indexOf("  ")).trim());
      for (let i = 1; i < words.length; i++) expect(words[i]).not.toBe(words[i - 1]);
    }
  });

  it("dates the end of a run of windows that ends on another day", () => {
    const run = (from: number, to: number, what: string) =>
      Array.from({ length: to - from + 1 }, (_, k) => ({ at: T0 + (from + k) * H, what, series: "svc/7" }));
    expect(
      fold([...run(0, 23, "svc/7: short or small growth"), ...run(24, 71, "svc/7: not above yesterday")]),
    ).toEqual([
      "2026-01-05 00:00–23:00  svc/7: short or small growth",
      "2026-01-06 00:00–2026-01-07 23:00  svc/7: not above yesterday",
    ]);
  });

  it("keeps the interval's word next to the long climb's in a window", () => {
    let word = windowWord(undefined, "short or small growth");
    word = windowWord(word, "not above yesterday");
    word = windowWord(word, "no long climb: restarted or reset in four days");
    expect(word).toBe("not above yesterday; no long climb: restarted or reset in four days");
    // A verdict after them (a pass, a cohort's) is the window's word.
    expect(windowWord(word, "passes (1 of 2 windows)")).toBe("passes (1 of 2 windows)");
    expect(windowWord(word, "cohort leaks; too soon")).toBe("cohort leaks; too soon");
    expect(windowWord(undefined, "long climb too small")).toBe("long climb too small");
  });
});
