import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { testTempDir } from "../lib/testing/temp.ts";
import { detectOptions, readDetectConfig } from "./detect-config.ts";

function file(content: string): string {
  const path = join(testTempDir("detect-config"), "detect.json");
  writeFileSync(path, content);
  return path;
}

describe("--detect-config", () => {
  it("reads a scaled-down window and lifecycle, and the file's lateness wins over the flag", () => {
    const path = file(
      JSON.stringify({
        window: { windowMs: 2000, allowedLatenessMs: 500 },
        lifecycle: { quietHoursToResolve: 6 },
      }),
    );
    const options = detectOptions(readDetectConfig(path), { allowedLatenessMs: 600_000, gate: "none" });
    expect(options.window).toMatchObject({ windowMs: 2000, allowedLatenessMs: 500 });
    expect(options.lifecycle).toMatchObject({ quietHoursToResolve: 6 });
    expect(options.gate).toBe("none");
  });

  it("without a file, the flags decide", () => {
    expect(detectOptions(undefined, { allowedLatenessMs: 1234, gate: "bucket" })).toEqual({
      window: { allowedLatenessMs: 1234 },
      gate: "bucket",
    });
  });

  it("names the field and the value of a bad setting, and rejects unknown keys", () => {
    expect(() => readDetectConfig(file(JSON.stringify({ window: { windowMs: -5 } })))).toThrow(
      /window\.windowMs.*-5/,
    );
    expect(() => readDetectConfig(file(JSON.stringify({ detect: { sigmaz: 3 } })))).toThrow(/sigmaz/);
    // A detector setting at the top level, not in its section: the key is named with its value.
    expect(() => readDetectConfig(file(JSON.stringify({ sigmas: 3 })))).toThrow(
      /sigmas: unknown key \(got 3\)/,
    );
    expect(() => readDetectConfig(file("{ not json"))).toThrow(/--detect-config .*detect\.json/);
  });
});
