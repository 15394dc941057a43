import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { buildProgram } from "./main.ts";

const H = 3_600_000;
const T0 = 1767571200000;

/** 12 healthy hosts and one that leaks steadily from hour 30, 3 days at 5-minute samples. */
function fleet(): string {
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
          processes: [{ pid: 7, name: "svc", startedAt: 0, bytes }],
        }),
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

describe("resin explain", () => {
  it("tells the rejected tests and the events of one target", async () => {
    const dir = mkdtempSync(join(tmpdir(), "resin-explain-"));
    const input = join(dir, "t.ndjson");
    writeFileSync(input, fleet());
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
      ]);
    } finally {
      spy.mockRestore();
    }
    const text = out.join("");
    expect(text).toMatch(/svc\/7: EVENT open steady/);
    expect(text).toMatch(/svc\/7: (short or small growth|young and short|not above yesterday)/);
  });
});
