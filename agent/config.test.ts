import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { resinInProcess } from "../lib/testing/cli.ts";
import { loadAgentConfig, parseAgentConfig } from "./config.ts";

const dir = mkdtempSync(join(tmpdir(), "resin-agent-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("agent config", () => {
  it("fills defaults and reads durations and sizes", () => {
    const c = parseAgentConfig({
      interval: "1m",
      minProcessBytes: "4MiB",
      components: [{ component: "api", name: "^api$" }],
    });
    expect(c).toMatchObject({
      interval: 60_000,
      minProcessBytes: 4 * 1024 * 1024,
      memory: "rss-anon",
      unmatched: "unit",
      kernel: { enabled: true, slab: true, minSlabBytes: 8 * 1024 * 1024 },
      snapshots: { enabled: true, maxTraces: 4 },
      mitigation: { dryRun: false, allow: [] },
      bufferMessages: 10_000,
    });
  });

  it("rejects unknown keys and bad values, naming the field and the value", () => {
    expect(() => parseAgentConfig({ intervall: "1m" })).toThrow(/intervall: unknown key \(got "1m"\)/);
    expect(() => parseAgentConfig([])).toThrow(/\(top level\): .*got \[\]/);
    expect(() => parseAgentConfig({ interval: "soon" })).toThrow(/interval: .*got "soon"/);
    expect(() => parseAgentConfig({ memory: "rss" })).toThrow(/memory: .*got "rss"/);
    expect(() => parseAgentConfig({ components: [{ component: "a b", name: "x" }] })).toThrow(
      /components\[0\]\.component: .*got "a b"/,
    );
    expect(() => parseAgentConfig({ components: [{ component: "a", cmdline: "(" }] })).toThrow(
      /components\[0\]\.cmdline: is not a valid regular expression \(got "\("\)/,
    );
    expect(() => parseAgentConfig({ components: [{ component: "a" }] })).toThrow(
      /needs at least one of name/,
    );
    expect(() =>
      parseAgentConfig({
        mitigation: { allow: [{ action: "restart-process", component: "a", sigal: "x" }] },
      }),
    ).toThrow(/mitigation\.allow\[0\]\.sigal: unknown key/);
    expect(() => parseAgentConfig({ kernel: { slab: "yes" } })).toThrow(/kernel\.slab: .*got "yes"/);
  });

  it("loads a file, and resin agent exits 3 naming the file, field and value", async () => {
    const good = join(dir, "good.json");
    writeFileSync(good, JSON.stringify({ host: "h1", attrs: { region: "r1" } }));
    expect(loadAgentConfig(good)).toMatchObject({ host: "h1", attrs: { region: "r1" } });
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ host: "h 1" }));
    const r = await resinInProcess(["agent", "--config", bad, "--once"]);
    expect(r.code).toBe(3);
    expect(r.err).toContain(`invalid agent config ${bad}: host: must match [A-Za-z0-9_-]{1,128} (got "h 1")`);
    const usage = await resinInProcess(["agent", "--interval", "often", "--once"]);
    expect(usage.code).toBe(2);
    expect(usage.err).toContain('--interval: expected a duration like 30s, 5m, 1h or 2d (got "often")');
  });
});
