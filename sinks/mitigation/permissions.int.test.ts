/**
 * deploy/nats/mitigation-permissions.conf on a real nats-server: resin commands an agent; an
 * agent can neither command another host nor listen on another host's subject; other users
 * cannot command at all.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MitigationClient } from "../../lib/agent/mitigate-client.ts";
import type { MitigateRequest } from "../../lib/agent/mitigate-protocol.ts";
import { MitigationResponder } from "../../lib/agent/mitigate-responder.ts";
import { freePort, requireBinary, waitFor } from "../../lib/testing/servers.ts";

const CONF = join(import.meta.dirname, "../../deploy/nats/mitigation-permissions.conf");
const T0 = 1_767_571_200_000;

let child: ChildProcess;
let dir: string;
let url: string;
const conns: NatsConnection[] = [];
const responders: MitigationResponder[] = [];

async function as(user: string, password: string, inboxPrefix?: string): Promise<NatsConnection> {
  const nc = await connect({ servers: url, user, pass: password, ...(inboxPrefix ? { inboxPrefix } : {}) });
  conns.push(nc);
  return nc;
}

beforeAll(async () => {
  const bin = requireBinary("nats-server", "nats-server");
  const port = await freePort();
  dir = mkdtempSync(join(tmpdir(), "resin-natsperm-"));
  url = `nats://127.0.0.1:${port}`;
  const conf = join(dir, "nats.conf");
  writeFileSync(conf, `listen: "127.0.0.1:${port}"\n${readFileSync(CONF, "utf8")}\n`);
  child = spawn(bin, ["-c", conf], { stdio: "ignore" });
  await waitFor(
    "nats-server",
    async () => {
      try {
        const nc = await connect({
          servers: url,
          user: "viewer",
          pass: "change-me-viewer",
          reconnect: false,
        });
        await nc.close();
        return true;
      } catch {
        return false;
      }
    },
    20_000,
    child,
  );
});

afterAll(async () => {
  for (const r of responders) await r.close();
  for (const nc of conns) await nc.close().catch(() => undefined);
  child?.kill("SIGTERM");
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const command = (host: string, id: string): MitigateRequest => ({
  v: 1,
  id,
  host,
  action: "restart-process",
  component: "api",
  process: "api",
  pid: 1,
  suspect: "s",
  reason: "permissions test",
  issuedAt: T0,
  expiresAt: T0 + 60_000,
  dryRun: true,
  at: T0,
});

describe("NATS permissions for mitigation commands", () => {
  it("only resin commands, and each agent hears only its own host", async () => {
    const resin = await as("resin", "change-me-resin");
    const h1 = await as("agent-h1", "change-me-h1", "_INBOX_h1");
    const h2 = await as("agent-h2", "change-me-h2", "_INBOX_h2");
    const viewer = await as("viewer", "change-me-viewer");
    const allowlist = { "restart-process": ["*"] };
    const execute = async () => ({});
    const agent1 = await MitigationResponder.start(h1, { host: "h1", allowlist, execute });
    const agent2 = await MitigationResponder.start(h2, { host: "h2", allowlist, execute });
    // h1's agent trying to listen on h2's subject: the server refuses the subscription.
    const spy = await MitigationResponder.start(h1, { host: "h2", allowlist, execute, queue: "spy" });
    responders.push(agent1, agent2, spy);

    const client = new MitigationClient(resin, 3000);
    expect(await client.send(command("h1", "a"))).toMatchObject({ ok: true, outcome: "dry-run" });
    expect(await client.send(command("h2", "b"))).toMatchObject({ ok: true, outcome: "dry-run" });
    expect(spy.stats.requests).toBe(0);

    // An agent commanding another host, or a viewer commanding any: never delivered.
    for (const [nc, id] of [
      [h1, "c"],
      [viewer, "d"],
    ] as const) {
      const reply = await new MitigationClient(nc, 1000).send(command("h2", id));
      expect(reply.ok).toBe(false);
    }
    expect(agent2.stats.requests).toBe(1);
    expect(agent1.stats.requests).toBe(1);
  });
});
