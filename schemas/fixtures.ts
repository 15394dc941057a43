/** Table of telemetry messages and the field each must be rejected for (undefined = valid). */
export const goodTelemetry = {
  v: 1,
  ts: 1767571200000,
  host: "r00-h00042",
  component: "storage-cache",
  attrs: { region: "westeurope", cluster: "c17", version: "24.3.1", hw: "gen7" },
  hostMemory: { totalBytes: 274877906944, usedBytes: 71940702208 },
  vms: 7,
  processes: [{ pid: 4242, name: "storage-cache", startedAt: 1767400000000, bytes: 1932735283 }],
};

export const with_ = (patch: Record<string, unknown>) => ({ ...goodTelemetry, ...patch });
export const proc = (patch: Record<string, unknown>) =>
  with_({ processes: [{ ...goodTelemetry.processes[0], ...patch }] });

/** [name, message, the field path the error must name (undefined = valid)] */
export const telemetryCases: Array<[string, unknown, string | undefined]> = [
  ["contract example", goodTelemetry, undefined],
  ["only required fields", { v: 1, ts: 0, host: "h", component: "c", processes: [] }, undefined],
  ["unknown extra fields tolerated", with_({ agentVersion: "9", extra: { a: 1 } }), undefined],
  ["unknown field inside a process tolerated", proc({ workingSet: 5 }), undefined],
  [
    "kernel pseudo-process",
    with_({ component: "kernel", processes: [{ pid: 0, name: "dentry", bytes: 1 }] }),
    undefined,
  ],
  ["empty host (vms 0)", with_({ vms: 0 }), undefined],
  ["wrong version", with_({ v: 2 }), "v"],
  ["version as string", with_({ v: "1" }), "v"],
  ["missing ts", { ...goodTelemetry, ts: undefined }, "ts"],
  ["fractional ts", with_({ ts: 1.5 }), "ts"],
  ["negative ts", with_({ ts: -1 }), "ts"],
  ["host with a dot (not a subject token)", with_({ host: "a.b" }), "host"],
  ["empty host", with_({ host: "" }), "host"],
  ["host too long", with_({ host: "h".repeat(129) }), "host"],
  ["component with space", with_({ component: "a b" }), "component"],
  ["attr not a string", with_({ attrs: { region: 3 } }), "attrs.region"],
  ["used > total", with_({ hostMemory: { totalBytes: 1, usedBytes: 2 } }), "hostMemory.usedBytes"],
  ["negative vms", with_({ vms: -1 }), "vms"],
  ["processes missing", { ...goodTelemetry, processes: undefined }, "processes"],
  [
    "too many processes",
    with_({ processes: Array.from({ length: 1025 }, (_, i) => ({ pid: i, name: "p", bytes: 1 })) }),
    "processes",
  ],
  ["negative pid", proc({ pid: -3 }), "processes[0].pid"],
  ["empty name", proc({ name: "" }), "processes[0].name"],
  ["name too long", proc({ name: "n".repeat(257) }), "processes[0].name"],
  ["fractional bytes", proc({ bytes: 10.5 }), "processes[0].bytes"],
  ["negative bytes", proc({ bytes: -10 }), "processes[0].bytes"],
  ["bytes as string", proc({ bytes: "10" }), "processes[0].bytes"],
  ["startedAt after ts", proc({ startedAt: goodTelemetry.ts + 1 }), "processes[0].startedAt"],
  ["not an object", "hello", "(message)"],
  ["null", null, "(message)"],
];
