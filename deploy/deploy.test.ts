/**
 * The deployment files users get (docker compose): the NATS config is valid for nats-server
 * (with and without partitioning), and the Grafana dashboard asks for measurements, fields and
 * tags the InfluxDB sink writes, through the provisioned datasource.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { NatsSettings } from "../lib/nats.ts";
import { requireBinary } from "../lib/testing/servers.ts";
import { testTempDir } from "../lib/testing/temp.ts";
import type { WindowResult } from "../pipelines/detect.ts";
import { LivePipeline } from "../pipelines/live.ts";
import { Telemetry } from "../schemas/telemetry.ts";
import {
  MEASUREMENT,
  mitigationLine,
  pipelineLine,
  suspectLine,
  windowLines,
} from "../sinks/influx/points.ts";

const HERE = import.meta.dirname;

describe("deploy/nats/nats.conf", () => {
  const conf = readFileSync(join(HERE, "nats/nats.conf"), "utf8");
  const check = (text: string) => {
    const dir = testTempDir("natsconf");
    const path = join(dir, "nats.conf");
    writeFileSync(path, text.replace("store_dir: /data", `store_dir: "${join(dir, "store")}"`));
    const r = spawnSync(requireBinary("nats-server", "nats-server"), ["-c", path, "-t"], {
      encoding: "utf8",
    });
    return `${r.stdout}${r.stderr}`;
  };

  it("is valid as shipped and with the partition mapping uncommented", () => {
    expect(check(conf)).toMatch(/is valid/);
    const partitioned = conf
      .replace("# mappings = {", "mappings = {")
      .replace(/^# {3}"resin/m, '  "resin')
      .replace(/^# }/m, "}");
    expect(partitioned).toMatch(/^mappings = \{\n {2}"resin\.telemetry\.\*\.\*":.*partition\(2,1\).*\n\}/m);
    expect(check(partitioned)).toMatch(/is valid/);
  });
});

describe("deploy/agent/agent.json", () => {
  it("is a valid agent config whose one pass over this machine's /proc is valid telemetry", () => {
    const root = resolve(HERE, "..");
    const r = spawnSync(
      process.execPath,
      [join(root, "bin/resin.js"), "agent", "--config", join(HERE, "agent/agent.json"), "--once"],
      { encoding: "utf8", cwd: root, timeout: 60_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    const messages = r.stdout.split("\n").filter((l) => l.startsWith("{"));
    expect(messages.length).toBeGreaterThan(0);
    for (const line of messages) expect(Telemetry.safeParse(JSON.parse(line)).success, line).toBe(true);
    // Piped into a reader that stops early (`| head`), logs and telemetry on the same pipe, it
    // still exits (a buffered log destination used to hang it on the broken pipe).
    const piped = spawnSync(
      "bash",
      [
        "-c",
        `set -o pipefail; timeout 30 "${process.execPath}" bin/resin.js agent --config deploy/agent/agent.json --once 2>&1 | head -c 100 >/dev/null`,
      ],
      { encoding: "utf8", cwd: root, timeout: 60_000 },
    );
    expect(piped.status, piped.stderr).toBe(0);
    // The compose service mounts this file and talks to the compose NATS.
    const compose = readFileSync(join(root, "docker-compose.yml"), "utf8");
    expect(compose).toContain("./deploy/agent/agent.json:/etc/resin/agent.json:ro");
    expect(compose).toMatch(/agent:\n(.*\n)*? {4}pid: host/);
  });
});

/** Field and tag names per measurement, as the sink writes them. */
function written(): Map<string, Set<string>> {
  const T0 = 1_767_571_200_000;
  const info = {
    slot: 0,
    host: "h",
    component: "c",
    name: "p",
    pid: 1,
    startedAt: undefined,
    firstTs: T0,
    stream: 0,
    predecessor: undefined,
  };
  const result: WindowResult = {
    window: {
      start: T0,
      end: T0 + 3_600_000,
      newSeries: [info],
      slots: [0],
      values: [1e9],
      counts: [12],
      streams: [
        {
          stream: 0,
          host: "h",
          component: "c",
          region: "r",
          cluster: "k",
          version: "1",
          vms: 3,
          totalBytes: undefined,
          usedBytes: undefined,
        },
      ],
      ended: [],
    },
    counts: [],
    scores: [
      {
        start: T0,
        component: "c",
        process: "p",
        lowerBytes: 1e9,
        hosts: 3,
        baselineMean: 1,
        score: 2,
        anomalous: true,
      },
    ],
    events: [],
  };
  const counters = new LivePipeline(
    { instance: "i" },
    NatsSettings.parse({}),
    {},
    pino({ level: "silent" }),
  ).pipelineCounters();
  const lines = [
    ...windowLines(result, () => info),
    suspectLine({
      v: 1,
      id: "x",
      state: "open",
      kind: "process",
      component: "c",
      host: "h",
      process: "p",
      pid: 1,
      start: T0,
      end: T0,
      detectedAt: T0,
      severity: 1,
      pattern: "steady",
      growthBytesPerHour: 1,
      bucket: { lowerBytes: 1, hosts: 1, score: 1 },
    })!,
    pipelineLine(counters, { instance: "i", partition: "0/1" }, T0)!,
    mitigationLine({
      v: 1,
      seq: 0,
      at: T0,
      event: "succeeded",
      host: "h",
      component: "c",
      process: "p",
      kind: "process",
      rule: "r",
      rung: 0,
      action: "restart-process",
      dryRun: false,
      reason: "x",
      result: { outcome: "done", code: "c" },
      priority: { freeShare: 0.1, leakBytes: 1, growthBytesPerHour: 1, hoursToFailure: 1 },
    })!,
  ];
  const names = new Map<string, Set<string>>();
  for (const l of lines) {
    const [head, fields] = l.split(" ");
    const [measurement, ...tags] = head!.split(",");
    const set = names.get(measurement!) ?? new Set<string>();
    for (const t of tags) set.add(t.split("=")[0]!);
    for (const f of fields!.split(",")) set.add(f.split("=")[0]!);
    names.set(measurement!, set);
  }
  return names;
}

describe("deploy/grafana", () => {
  const dashboard = JSON.parse(readFileSync(join(HERE, "grafana/dashboards/resin.json"), "utf8")) as {
    panels: { title: string; datasource: { uid: string }; targets: { query: string }[] }[];
    templating: { list: { query: string; datasource: { uid: string } }[] };
    annotations: { list: { target: { query: string }; datasource: { uid: string } }[] };
  };
  const provisioned = readFileSync(join(HERE, "grafana/provisioning/datasources/influxdb.yml"), "utf8");
  const uid = /uid: (\S+)/.exec(provisioned)?.[1];
  const queries = [
    ...dashboard.panels.flatMap((p) =>
      p.targets.map((t) => ({ where: p.title, query: t.query, uid: p.datasource.uid })),
    ),
    ...dashboard.templating.list.map((v) => ({
      where: `variable ${v.query}`,
      query: v.query,
      uid: v.datasource.uid,
    })),
    ...dashboard.annotations.list.map((a) => ({
      where: "annotation",
      query: a.target.query,
      uid: a.datasource.uid,
    })),
  ];

  it("uses the provisioned datasource everywhere", () => {
    expect(uid).toBe("resin-influxdb");
    for (const q of queries) expect([q.where, q.uid]).toEqual([q.where, uid]);
    expect(provisioned).toMatch(/defaultBucket: resin/);
    expect(readFileSync(resolve(HERE, "../docker-compose.yml"), "utf8")).toMatch(
      /DOCKER_INFLUXDB_INIT_BUCKET: resin/,
    );
  });

  it("asks only for measurements, fields and tags the sink writes", () => {
    const names = written();
    expect([...names.keys()].sort()).toEqual(Object.values(MEASUREMENT).sort());
    for (const { where, query } of queries) {
      const measurements = [...query.matchAll(/_measurement == "([^"]+)"/g)].map((m) => m[1]!);
      expect(measurements.length, where).toBeGreaterThan(0);
      const known = new Set(measurements.flatMap((m) => [...(names.get(m) ?? [])]));
      for (const m of measurements) expect(names.has(m), `${where}: ${m}`).toBe(true);
      const fields = [...query.matchAll(/_field == "([^"]+)"/g)].map((m) => m[1]!);
      const tags = [...query.matchAll(/\br\.([a-z_]+) (?:==|!=)/g)]
        .map((m) => m[1]!)
        .filter((t) => !t.startsWith("_"));
      for (const name of [...fields, ...tags]) expect(known.has(name), `${where}: ${name}`).toBe(true);
    }
  });
});
