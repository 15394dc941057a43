import { afterEach, describe, expect, it } from "vitest";
import { resinInProcess } from "../lib/testing/cli.ts";
import { snapshotSettingsFromFlags, snapshotStateKey } from "./run-snapshots.ts";

const resin = resinInProcess;

afterEach(() => {
  process.exitCode = undefined;
});

describe("resin run --snapshots: settings are validated at start-up (exit 2, naming the setting and the value)", () => {
  it.each([
    [["--snapshot-interval", "soon"], /--snapshot-interval: expected a duration .*"soon"/],
    [["--snapshot-hosts", "0"], /--snapshot-hosts must be an integer from 1 to 1000000, got "0"/],
    [["--snapshot-sampling", "lots"], /--snapshot-sampling: expected a size .*"lots"/],
    [
      ["--snapshot-clock", "sundial"],
      /--snapshot-clock \(RESIN_SNAPSHOT_CLOCK\): Invalid option: expected one of "event"\|"wall" \(got "sundial"\)/,
    ],
    [
      ["--snapshot-ring", "2", "--snapshot-min-profiles", "5"],
      /--snapshot-min-profiles \(RESIN_SNAPSHOT_MIN_PROFILES\): must not exceed ringSize \(2\) \(got 5\)/,
    ],
    [
      ["--ticket-webhook", "ftp://tickets"],
      /--ticket-webhook \(RESIN_TICKET_WEBHOOK\): must be an http:\/\/ or https:\/\/ URL \(got "ftp:\/\/tickets"\)/,
    ],
    [
      ["--ticket-subject", "resin.>"],
      /--ticket-subject \(RESIN_TICKET_SUBJECT\): must be a NATS subject without wildcards/,
    ],
    [
      ["--tickets-dir", "/dev/null/tickets"],
      /--tickets-dir: cannot write to "\/dev\/null\/tickets": ENOTDIR/,
    ],
  ])("%j", async (args, message) => {
    const { code, err } = await resin(["run", "--metrics-port", "0", "--snapshots", ...args]);
    expect(err).toMatch(message);
    expect(code).toBe(2);
  });

  it("refuses snapshot and ticket flags without --snapshots", async () => {
    const { code, err } = await resin(["run", "--metrics-port", "0", "--tickets-dir", "/tmp/t"]);
    expect(err).toMatch(/--tickets-dir needs --snapshots/);
    expect(code).toBe(2);
    const env = await resin(["run", "--metrics-port", "0"], { RESIN_SNAPSHOT_INTERVAL: "10m" });
    expect(env.err).toMatch(/--snapshot-interval needs --snapshots/);
  });

  it("reads settings from flags, then the environment, over the defaults", () => {
    expect(snapshotSettingsFromFlags({})).toBeUndefined();
    const s = snapshotSettingsFromFlags({
      snapshots: true,
      snapshotInterval: "10m",
      snapshotSampling: "1MiB",
      snapshotClock: "wall",
      ticketWebhook: "https://tickets.example/hook",
    })!;
    expect(s.snapshot).toMatchObject({
      collectIntervalMs: 600_000,
      samplingIntervalBytes: 1024 * 1024,
      clock: "wall",
      tracesPerCase: 3,
      maxCollectionsPerClusterHour: 5,
    });
    expect(s.ticket).toMatchObject({ webhookUrl: "https://tickets.example/hook", subject: "resin.tickets" });
    expect(s.ticket.dir).toBeUndefined();
    expect(snapshotStateKey({ index: 0, count: 1 })).toBe("snapshots");
    expect(snapshotStateKey({ index: 2, count: 4 })).toBe("snapshots-p2of4");
  });
});

describe("resin agent-sim: settings are validated at start-up", () => {
  it.each([
    [["--hosts", "0"], /--hosts must be an integer from 1 to 1000000, got "0"/],
    [["--max-traces", "none"], /--max-traces must be an integer from 1 to 1000, got "none"/],
    [["--hosts", "3", "--only", "r00-h00001,nowhere"], /--only: no host nowhere in this simulation/],
    [["--scenario", "no-such-preset"], /--scenario: /],
    [["--nats", "http://x:4222"], /--nats must be NATS server URL\(s\)/],
  ])("%j", async (args, message) => {
    const { code, err } = await resin(["agent-sim", ...args]);
    expect(err).toMatch(message);
    expect(code).toBe(2);
  });
});
