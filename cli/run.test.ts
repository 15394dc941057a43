import { afterEach, describe, expect, it } from "vitest";
import { resinInProcess } from "../lib/testing/cli.ts";

/** Runs `resin run …` in this process; settings are checked before anything connects. */
const run = (args: string[], env: Record<string, string> = {}) =>
  resinInProcess(["run", "--metrics-port", "0", ...args], env);

afterEach(() => {
  process.exitCode = undefined;
});

describe("resin run: settings are validated at start-up (exit 2, naming the setting and the value)", () => {
  it.each([
    [["--partition", "3/2"], /--partition: index must be below the count .*"3\/2"/],
    [["--partition", "half"], /--partition: expected INDEX\/COUNT .*"half"/],
    [["--batch", "0"], /--batch must be an integer from 1 to 100000, got "0"/],
    [["--checkpoint-interval", "soon"], /--checkpoint-interval: expected a duration .*"soon"/],
    [["--max-message-bytes", "big"], /--max-message-bytes: expected a size .*"big"/],
    [["--gate", "all"], /--gate: expected "none" or "bucket" \(got "all"\)/],
    [["--log-level", "loud"], /--log-level: expected one of .*"loud"/],
    [["--nats", "http://x:4222"], /--nats must be NATS server URL\(s\).*"http:\/\/x:4222"/],
    [["--nats-pass", "secret"], /--nats-pass needs a user/],
    [["--nats-tls-ca", "/nonexistent/ca.pem"], /--nats-tls-ca: cannot read "\/nonexistent\/ca.pem": ENOENT/],
    [
      ["--influx-url", "ftp://x"],
      /--influx-url \(RESIN_INFLUX_URL\): must be an http:\/\/ or https:\/\/ URL \(got "ftp:\/\/x"\)/,
    ],
    [["--influx-url", "http://x:8086", "--influx-db", "d"], /--influx-org .*did you mean api "v1"/],
    [
      ["--influx-url", "http://x:8086", "--influx-api", "v1"],
      /--influx-db \(RESIN_INFLUX_DB\): database is required/,
    ],
    [
      ["--influx-url", "http://x:8086", "--influx-api", "v1", "--influx-db", "d", "--influx-series", "some"],
      /--influx-series \(RESIN_INFLUX_SERIES\): .*"some"/,
    ],
  ])("%j", async (args, message) => {
    const { code, err } = await run(args);
    expect(err).toMatch(message);
    expect(code).toBe(2);
  });

  it("reads settings from the environment and names the variable", async () => {
    const { code, err } = await run([], { RESIN_NATS_URL: "ftp://nats" });
    expect(err).toMatch(/RESIN_NATS_URL must be NATS server URL\(s\).*"ftp:\/\/nats"/);
    expect(code).toBe(2);
    const influx = await run([], { RESIN_INFLUX_URL: "http://x:8086", RESIN_INFLUX_API: "v3" });
    expect(influx.err).toMatch(/--influx-api \(RESIN_INFLUX_API\): .*"v3"/);
  });

  it("hides secrets in its messages", async () => {
    const { err } = await run(["--nats-token", "s3cret", "--nats-user", "u"]);
    expect(err).toMatch(/token cannot be combined with user or creds \(value hidden\)/);
    expect(err).not.toContain("s3cret");
  });
});
