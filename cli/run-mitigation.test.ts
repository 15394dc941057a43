/** `resin run --mitigate` flags: dry run unless --mitigation-live, rules files checked with field and value. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { testTempDir } from "../lib/testing/temp.ts";
import { CliError, EXIT } from "./main.ts";
import { mitigationSettingsFromFlags, mitigationStateKey } from "./run-mitigation.ts";

const dir = testTempDir("mitigation-cli");
const file = (name: string, body: unknown) => {
  const path = join(dir, name);
  writeFileSync(path, typeof body === "string" ? body : JSON.stringify(body));
  return path;
};
const error = (f: () => unknown): CliError => {
  try {
    f();
  } catch (err) {
    if (err instanceof CliError) return err;
    throw err;
  }
  throw new Error("no CliError");
};

describe("mitigationSettingsFromFlags", () => {
  it("is off without --mitigate, and its flags then are a usage error", () => {
    expect(mitigationSettingsFromFlags({})).toBeUndefined();
    expect(error(() => mitigationSettingsFromFlags({ mitigationLive: true })).message).toMatch(
      /--mitigation-live needs --mitigate/,
    );
  });

  it("is a dry run with the built-in tree unless --mitigation-live", () => {
    const dry = mitigationSettingsFromFlags({ mitigate: true })!;
    expect(dry.engine.dryRun).toBe(true);
    expect(dry.engine.rules.map((r) => r.name)).toEqual(["kernel-with-vms", "kernel-empty-host", "process"]);
    expect(dry.engine.allow).toEqual({});
    expect(mitigationSettingsFromFlags({ mitigate: "1", mitigationLive: true })!.engine.dryRun).toBe(false);
  });

  it("reads a rules file; live only with the flag as well", () => {
    const rules = file("rules.json", {
      allow: { "restart-process": { components: ["api"] } },
      customActions: { api: { script: "flush" } },
    });
    const s = mitigationSettingsFromFlags({
      mitigate: true,
      mitigationRules: rules,
      mitigationAuditDir: dir,
    })!;
    expect(s.engine.allow["restart-process"]).toEqual({ components: ["api"] });
    expect(s.auditDir).toBe(dir);
    const live = file("live.json", { dryRun: false });
    expect(
      error(() => mitigationSettingsFromFlags({ mitigate: true, mitigationRules: live })).message,
    ).toMatch(/needs --mitigation-live/);
    expect(
      mitigationSettingsFromFlags({ mitigate: true, mitigationRules: live, mitigationLive: true })!.engine
        .dryRun,
    ).toBe(false);
  });

  it("a bad rules file exits 3 naming the field and the value", () => {
    const bad = file("bad.json", { rules: [{ name: "x", ladder: [{ action: "format-disk" }] }] });
    const err = error(() => mitigationSettingsFromFlags({ mitigate: true, mitigationRules: bad }));
    expect(err.code).toBe(EXIT.invalidInput);
    expect(err.message).toMatch(/rules\[0\]\.ladder\[0\]\.action.*"format-disk"/);
    const notJson = file("bad.txt", "{ nope");
    expect(error(() => mitigationSettingsFromFlags({ mitigate: true, mitigationRules: notJson })).code).toBe(
      EXIT.invalidInput,
    );
    expect(
      error(() => mitigationSettingsFromFlags({ mitigate: true, mitigationRules: join(dir, "missing") }))
        .code,
    ).toBe(EXIT.usage);
  });

  it("checks the clock and the timeout", () => {
    expect(
      error(() => mitigationSettingsFromFlags({ mitigate: true, mitigationClock: "sundial" })).message,
    ).toMatch(/--mitigation-clock.*"sundial"/);
    expect(
      mitigationSettingsFromFlags({ mitigate: true, mitigationClock: "wall", mitigationTimeout: "30s" }),
    ).toMatchObject({ clock: "wall", requestTimeoutMs: 30_000 });
  });

  it("keeps one state per partition", () => {
    expect(mitigationStateKey({ index: 0, count: 1 })).toBe("mitigation");
    expect(mitigationStateKey({ index: 1, count: 3 })).toBe("mitigation-p1of3");
  });
});
