import { describe, expect, it } from "vitest";
import type { MitigateRequest } from "../lib/agent/mitigate-protocol.ts";
import { MitigationResponder } from "../lib/agent/mitigate-responder.ts";
import { parseAgentConfig } from "./config.ts";
import { allowlistOf, type CommandResult, LinuxMitigationExecutor } from "./mitigate.ts";
import type { ProcessIdentity } from "./sampler.ts";

const config = parseAgentConfig({
  mitigation: {
    allow: [
      { action: "restart-process", component: "orders", process: "^orders$", command: ["node", "orders.js"] },
      { action: "restart-service", component: "checkout" },
      { action: "custom", component: "cache", script: "flush", command: ["/usr/local/bin/flush-cache"] },
      { action: "soft-reboot" },
    ],
  },
});

const ORDERS: ProcessIdentity = {
  pid: 42,
  process: "orders",
  comm: "node",
  component: "orders",
  startedAt: 1000,
};
const CHECKOUT: ProcessIdentity = {
  pid: 7,
  process: "checkout",
  comm: "checkout",
  component: "checkout",
  startedAt: 500,
  unit: "checkout-blue.service",
};

function harness(dryRun = false) {
  const running = new Map<number, ProcessIdentity>([
    [42, ORDERS],
    [7, CHECKOUT],
    [1, { pid: 1, process: "systemd", comm: "systemd", component: "init", startedAt: 0 }],
  ]);
  const calls: string[] = [];
  const executor = new LinuxMitigationExecutor({
    rules: config.mitigation.allow,
    dryRun,
    identify: (pid) => running.get(pid),
    run: async (argv, _timeout, env): Promise<CommandResult> => {
      calls.push(`run ${argv.join(" ")}${env?.RESIN_PID ? ` pid=${env.RESIN_PID}` : ""}`);
      return { code: 0, signal: null, output: "" };
    },
    launch: async (argv) => {
      calls.push(`launch ${argv.join(" ")}`);
      running.set(43, { ...ORDERS, pid: 43, startedAt: 2000 });
      return 43;
    },
    signal: (pid, signal) => {
      calls.push(`kill ${pid} ${signal}`);
      running.delete(pid);
    },
    pollMs: 1,
  });
  const responder = MitigationResponder.detached({
    host: "h1",
    allowlist: allowlistOf(config.mitigation.allow),
    execute: executor.execute,
    now: () => 10_000,
  });
  let n = 0;
  const send = (req: Partial<MitigateRequest>) =>
    responder.handle(
      JSON.stringify({
        v: 1,
        id: `cmd-${++n}`,
        host: "h1",
        suspect: "s1",
        reason: "leak",
        issuedAt: 9000,
        expiresAt: 20_000,
        dryRun: false,
        component: "orders",
        ...req,
      }),
    );
  return { send, calls, running };
}

describe("the Linux agent's mitigation", () => {
  it("derives the responder's allowlist from its own rules", () => {
    expect(allowlistOf(config.mitigation.allow)).toEqual({
      "restart-process": ["orders"],
      "restart-service": ["checkout"],
      custom: ["cache/flush"],
      "soft-reboot": ["kernel"],
    });
  });

  it("restarts an allowed process: signal, wait for the exit, start the configured command", async () => {
    const h = harness();
    const reply = await h.send({ action: "restart-process", pid: 42, process: "orders" });
    expect(reply).toMatchObject({ ok: true, outcome: "done" });
    expect(reply.ok && reply.detail).toBe("stopped orders (pid 42, SIGTERM); started pid 43: node orders.js");
    expect(h.calls).toEqual(["kill 42 SIGTERM", "launch node orders.js"]);
  });

  it("refuses a pid that is not the component's, whatever the command names", async () => {
    const h = harness();
    const reply = await h.send({ action: "restart-process", pid: 1, process: "orders" });
    expect(reply).toMatchObject({ ok: false, error: { code: "no-such-process" } });
    expect(reply.ok ? "" : reply.error.message).toContain("process 1 is systemd of component init");
    expect((await h.send({ action: "restart-process", pid: 999 })).ok).toBe(false);
    expect(h.calls).toEqual([]);
  });

  it("refuses what its config does not allow, before anything runs", async () => {
    const h = harness();
    expect(await h.send({ action: "restart-process", component: "checkout", pid: 7 })).toMatchObject({
      ok: false,
      error: { code: "not-allowed" },
    });
    expect(await h.send({ action: "reboot", component: "kernel" })).toMatchObject({
      ok: false,
      error: { code: "not-allowed" },
    });
    expect(await h.send({ action: "custom", component: "cache", script: "drop-all" })).toMatchObject({
      ok: false,
      error: { code: "not-allowed" },
    });
    expect(h.calls).toEqual([]);
  });

  it("restarts the unit the process runs in, runs registered scripts and kexecs for a kernel leak", async () => {
    const h = harness();
    expect(await h.send({ action: "restart-service", component: "checkout", pid: 7 })).toMatchObject({
      ok: true,
    });
    expect(await h.send({ action: "restart-service", component: "checkout" })).toMatchObject({ ok: true });
    expect(await h.send({ action: "custom", component: "cache", script: "flush", pid: 9 })).toMatchObject({
      ok: true,
    });
    expect(await h.send({ action: "soft-reboot", component: "kernel" })).toMatchObject({ ok: true });
    expect(h.calls).toEqual([
      "run systemctl restart checkout-blue.service",
      "run systemctl restart checkout.service",
      "run /usr/local/bin/flush-cache pid=9",
      "run systemctl kexec",
    ]);
  });

  it("in dry-run mode refuses every command, saying what it would have done", async () => {
    const h = harness(true);
    const reply = await h.send({ action: "restart-process", pid: 42, process: "orders" });
    expect(reply).toMatchObject({ ok: false, error: { code: "not-allowed" } });
    expect(reply.ok ? "" : reply.error.message).toBe(
      "agent runs in dry-run mode: would stop orders (pid 42) with SIGTERM and start node orders.js",
    );
    expect(h.calls).toEqual([]);
  });
});
