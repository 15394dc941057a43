import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { testTempDir } from "../lib/testing/temp.ts";

const ROOT = resolve(import.meta.dirname, "..");

describe("the agent bundle (npm run build)", () => {
  it("runs resin agent as plain JavaScript, without the TypeScript loader or the rest of the CLI", () => {
    const out = testTempDir("agent-bundle");
    execFileSync(process.execPath, [join(ROOT, "scripts/build-agent.mjs"), out], { stdio: "pipe" });
    const bundle = join(out, "resin-agent.mjs");
    const source = readFileSync(bundle, "utf8");
    expect(source).not.toMatch(/from "tsx|require\("tsx/);
    // The detector, the simulator and the sinks stay out of the agent.
    const inputs = JSON.parse(readFileSync(join(out, "resin-agent.inputs.json"), "utf8")) as string[];
    expect(inputs).toContain("agent/sampler.ts");
    expect(inputs.filter((f) => /^(operators|simulate|sinks|pipelines|eval)\//.test(f))).toEqual([]);

    const help = spawnSync(process.execPath, [bundle, "agent", "--help"], { encoding: "utf8" });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Usage: resin agent/);
    const bad = spawnSync(process.execPath, [bundle, "agent", "--interval", "soon"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--interval/);
  });
});
