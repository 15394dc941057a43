/**
 * The agent side of the mitigation protocol without NATS (a detached responder): what it runs,
 * and what it refuses with a typed reply naming the field and the value.
 */
import { describe, expect, it } from "vitest";
import type { MitigateRequest } from "./mitigate-protocol.ts";
import { agentAllows, MitigateExecuteError, MitigationResponder } from "./mitigate-responder.ts";

const T0 = 1_767_571_200_000;

function command(over: Partial<MitigateRequest> = {}): MitigateRequest {
  return {
    v: 1,
    id: "m:h1:api:1",
    host: "h1",
    action: "restart-process",
    component: "api",
    process: "api",
    pid: 42,
    suspect: "api/h1/api/42",
    reason: "test",
    issuedAt: T0,
    expiresAt: T0 + 60_000,
    dryRun: false,
    at: T0 + 1000,
    ...over,
  };
}

function agent(options: Partial<Parameters<typeof MitigationResponder.detached>[0]> = {}) {
  const ran: string[] = [];
  const responder = MitigationResponder.detached({
    host: "h1",
    allowlist: { "restart-process": ["api"], custom: ["api/flush"], reboot: ["*"] },
    execute: async (req, at) => {
      ran.push(`${req.action} ${req.pid ?? ""} @${at - T0}`);
      if (req.pid === 404) throw new MitigateExecuteError("no-such-process", "no process 404");
      if (req.pid === 500) throw new Error("systemctl exited with 1");
      return { detail: `restarted ${req.pid}` };
    },
    now: () => T0 + 5000,
    ...options,
  });
  const send = (body: unknown) => responder.handle(typeof body === "string" ? body : JSON.stringify(body));
  return { responder, ran, send };
}

describe("MitigationResponder", () => {
  it("runs an allowlisted command at the command's event time", async () => {
    const { send, ran, responder } = agent();
    const reply = await send(command());
    expect(reply).toMatchObject({ ok: true, id: "m:h1:api:1", outcome: "done", startedAt: T0 + 1000 });
    expect(reply.ok && reply.detail).toBe("restarted 42");
    expect(ran).toEqual(["restart-process 42 @1000"]);
    expect(responder.stats.executed).toBe(1);
  });

  it("checks a dry run but executes nothing", async () => {
    const { send, ran } = agent();
    expect(await send(command({ dryRun: true }))).toMatchObject({ ok: true, outcome: "dry-run" });
    expect(ran).toEqual([]);
  });

  it("answers a repeat of a finished id with the first result, once executed", async () => {
    const { send, ran } = agent();
    const first = await send(command());
    const again = await send(command({ at: T0 + 2000 }));
    expect(again).toMatchObject({
      ok: true,
      outcome: "duplicate",
      startedAt: first.ok ? first.startedAt : -1,
    });
    expect(ran).toHaveLength(1);
  });

  it("a repeat while the first still runs waits for it and is not run twice", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { send, ran } = agent({
      execute: async (req) => {
        ran.push(req.id);
        await gate;
        return {};
      },
    });
    const a = send(command());
    const b = send(command());
    release();
    expect((await a).ok && (await b).ok).toBe(true);
    expect(await b).toMatchObject({ outcome: "duplicate" });
    expect(ran).toEqual(["m:h1:api:1"]);
  });

  it("refuses expired commands, by `at` or by the clock", async () => {
    const { send, ran } = agent();
    expect(await send(command({ id: "a", at: T0 + 61_000 }))).toMatchObject({
      ok: false,
      id: "a",
      error: { code: "expired", field: "expiresAt", value: T0 + 60_000 },
    });
    const { at: _, ...withoutAt } = command({ id: "b", expiresAt: T0 + 4000 });
    expect(await send(withoutAt)).toMatchObject({ ok: false, error: { code: "expired" } });
    expect(ran).toEqual([]);
  });

  it("refuses an id replayed with other content", async () => {
    const { send, ran } = agent();
    await send(command());
    expect(await send(command({ pid: 43 }))).toMatchObject({
      ok: false,
      error: { code: "replayed", field: "id", value: "m:h1:api:1" },
    });
    expect(ran).toHaveLength(1);
  });

  it("refuses commands issued before the ids it forgot (the bound never reopens replays)", async () => {
    const { send, ran } = agent({ rememberIds: 2 });
    for (let i = 0; i < 3; i++) await send(command({ id: `c${i}`, issuedAt: T0 + i }));
    // c0 is forgotten: sent again it could be a replay.
    expect(await send(command({ id: "c0", issuedAt: T0 }))).toMatchObject({
      ok: false,
      error: { code: "replayed", field: "issuedAt", value: T0 },
    });
    expect(await send(command({ id: "c3", issuedAt: T0 + 10 }))).toMatchObject({ ok: true });
    expect(ran).toHaveLength(4);
  });

  it("refuses actions, components and scripts that are not allowlisted", async () => {
    const { send, ran } = agent();
    expect(await send(command({ id: "s", action: "restart-service" }))).toMatchObject({
      ok: false,
      error: { code: "not-allowed", field: "action", value: "restart-service" },
    });
    expect(await send(command({ id: "db", component: "db" }))).toMatchObject({
      ok: false,
      error: { code: "not-allowed" },
    });
    expect(await send(command({ id: "x", action: "custom", script: "wipe" }))).toMatchObject({
      ok: false,
      error: { code: "not-allowed", message: expect.stringMatching(/api\/wipe/) },
    });
    expect(await send(command({ id: "f", action: "custom", script: "flush" }))).toMatchObject({ ok: true });
    expect(ran).toEqual(["custom 42 @1000"]);
  });

  it("refuses bad commands naming the field and the value", async () => {
    const { send } = agent();
    expect(await send("not json")).toMatchObject({
      ok: false,
      error: { code: "bad-request", field: "(message)" },
    });
    expect(await send({ ...command(), v: 2 })).toMatchObject({
      ok: false,
      error: { code: "unsupported-version", field: "v", value: 2 },
    });
    expect(await send(command({ action: "explode" as never }))).toMatchObject({
      ok: false,
      error: { code: "bad-request", field: "action", value: "explode" },
    });
    expect(await send(command({ host: "h2" }))).toMatchObject({
      ok: false,
      error: { code: "bad-request", field: "host", value: "h2" },
    });
    expect(await send(command({ pid: undefined }))).toMatchObject({
      ok: false,
      error: { code: "bad-request", field: "pid" },
    });
    expect(await send(command({ expiresAt: T0 }))).toMatchObject({
      ok: false,
      error: { code: "bad-request", field: "expiresAt", value: T0 },
    });
  });

  it("reports what the action said: a process that is gone, a failure", async () => {
    const { send } = agent();
    expect(await send(command({ id: "g", pid: 404 }))).toMatchObject({
      ok: false,
      error: { code: "no-such-process" },
    });
    expect(await send(command({ id: "f", pid: 500 }))).toMatchObject({
      ok: false,
      error: { code: "failed", message: "systemctl exited with 1" },
    });
    // A failed id stays failed: asked again, the same answer, not a second run.
    expect(await send(command({ id: "f", pid: 500 }))).toMatchObject({
      ok: false,
      error: { code: "failed" },
    });
  });

  it("refuses a second command while one runs on the host", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { send } = agent({
      execute: async () => {
        await gate;
        return {};
      },
    });
    const first = send(command({ id: "r1", action: "reboot" }));
    expect(await send(command({ id: "r2", action: "reboot" }))).toMatchObject({
      ok: false,
      error: { code: "busy" },
    });
    release();
    expect(await first).toMatchObject({ ok: true });
    // busy is not remembered: the same id later runs.
    expect(await send(command({ id: "r2", action: "reboot" }))).toMatchObject({ ok: true, outcome: "done" });
  });

  it("agentAllows reads wildcards", () => {
    expect(agentAllows({ reboot: ["*"] }, "reboot", "kernel")).toBe(true);
    expect(agentAllows({ custom: ["api/*"] }, "custom", "api", "any")).toBe(true);
    expect(agentAllows({ custom: ["api/*"] }, "custom", "db", "any")).toBe(false);
    expect(agentAllows({}, "restart-process", "api")).toBe(false);
  });
});
