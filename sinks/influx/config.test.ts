import { describe, expect, it } from "vitest";
import { ValidationError } from "../../schemas/common.ts";
import { INFLUX_ENV, influxSettingsFrom, parseInfluxSinkConfig } from "./config.ts";

describe("InfluxSinkConfig", () => {
  it("fills defaults for v2", () => {
    const c = parseInfluxSinkConfig({ url: "http://127.0.0.1:8086", org: "resin", bucket: "resin" });
    expect(c).toMatchObject({
      api: "v2",
      createDatabase: true,
      batchSize: 5000,
      flushIntervalMs: 1000,
      maxRetries: 8,
      maxBufferLines: 100_000,
      processSeries: "all",
    });
    expect(c.token).toBeUndefined();
  });

  it("needs org and bucket for v2, database for v1, naming the field", () => {
    expect(() => parseInfluxSinkConfig({ url: "http://h:8086", org: "o" })).toThrow(
      /bucket: bucket is required when api is "v2" \(got missing\)/,
    );
    expect(() => parseInfluxSinkConfig({ url: "http://h:8086", database: "resin" })).toThrow(
      /did you mean api "v1"/,
    );
    expect(() => parseInfluxSinkConfig({ url: "http://h:8086", api: "v1" })).toThrow(
      /database: database is required when api is "v1"/,
    );
    expect(parseInfluxSinkConfig({ url: "http://h:8086", api: "v1", database: "resin" }).api).toBe("v1");
  });

  it("rejects unknown keys and bad values with the value", () => {
    expect(() => parseInfluxSinkConfig({ url: "http://h", org: "o", bucket: "b", bukcet: "x" })).toThrow(
      ValidationError,
    );
    expect(() => parseInfluxSinkConfig({ url: "http://h", org: "o", bucket: "b", bukcet: "x" })).toThrow(
      /bukcet: unknown key \(got "x"\)/,
    );
    expect(() => parseInfluxSinkConfig({ url: "ftp://h", org: "o", bucket: "b" })).toThrow(
      /url: must be an http:\/\/ or https:\/\/ URL \(got "ftp:\/\/h"\)/,
    );
    expect(() => parseInfluxSinkConfig({ url: "http://h", api: "v3", org: "o", bucket: "b" })).toThrow(
      /api: .*\(got "v3"\)/,
    );
    expect(() =>
      parseInfluxSinkConfig({ url: "http://h", org: "o", bucket: "b", batchSize: "lots" }),
    ).toThrow(/batchSize: .*\(got "lots"\)/);
  });

  it("parses numbers and booleans given as strings, explicitly", () => {
    const base = { url: "http://h", api: "v1", database: "d" };
    expect(parseInfluxSinkConfig({ ...base, createDatabase: "false", batchSize: "200" })).toMatchObject({
      createDatabase: false,
      batchSize: 200,
    });
    expect(parseInfluxSinkConfig({ ...base, createDatabase: "yes" }).createDatabase).toBe(true);
    expect(() => parseInfluxSinkConfig({ ...base, createDatabase: "maybe" })).toThrow(/createDatabase/);
    expect(() => parseInfluxSinkConfig({ ...base, minRetryDelayMs: 5000, maxRetryDelayMs: 100 })).toThrow(
      /minRetryDelayMs: must not exceed maxRetryDelayMs/,
    );
  });
});

describe("influxSettingsFrom", () => {
  it("takes flags first, then RESIN_INFLUX_* variables, and skips empty values", () => {
    const env = {
      RESIN_INFLUX_URL: "http://env:8086",
      RESIN_INFLUX_TOKEN: "t",
      RESIN_INFLUX_ORG: "",
      RESIN_INFLUX_BUCKET: "b",
      RESIN_INFLUX_DB: "d",
      RESIN_INFLUX_USER: "u",
      RESIN_INFLUX_PASSWORD: "p",
      RESIN_INFLUX_API: "v1",
    };
    expect(influxSettingsFrom({ url: "http://flag:8086", batchSize: "10", org: undefined }, env)).toEqual({
      url: "http://flag:8086",
      batchSize: "10",
      token: "t",
      bucket: "b",
      api: "v1",
      database: "d",
      username: "u",
      password: "p",
    });
    expect(influxSettingsFrom({}, {})).toEqual({});
    expect(Object.values(INFLUX_ENV).every((name) => name.startsWith("RESIN_INFLUX_"))).toBe(true);
  });
});
