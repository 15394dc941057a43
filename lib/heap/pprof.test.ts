import { gunzipSync, gzipSync } from "node:zlib";
import { Location, Function as PprofFunction, Profile, StringTable, ValueType } from "pprof-format";
import { describe, expect, it } from "vitest";
import { fromPprof, MAX_PPROF_BYTES, PprofError, toPprof } from "./pprof.ts";
import type { HeapProfile } from "./profile.ts";

const profile: HeapProfile = {
  takenAt: 1_700_000_000_123,
  stacks: [
    {
      frames: [
        { fn: "retainSessionBuffers", file: "/srv/app/session.js", line: 42 },
        { fn: "handle", file: "/srv/app/server.js", line: 7 },
      ],
      bytes: 5 * 2 ** 32 + 17, // beyond 32 bits: varints of more than 4 bytes
      objects: 300,
    },
    {
      frames: [
        { fn: "(anonymous)", file: "/srv/app/server.js", line: 9 },
        { fn: "handle", file: "/srv/app/server.js", line: 7 },
      ],
      bytes: 4096,
      objects: 2,
    },
    { frames: [{ fn: '名前 with "quotes"', file: "", line: 0 }], bytes: 1, objects: 1 },
  ],
};

/** Build a profile the way Go's runtime/pprof writes one: four sample types, inlining, split samples. */
function goLikeHeapProfile(sampleTypes: [string, string][]): Uint8Array {
  const s = new StringTable();
  return new Profile({
    sampleType: sampleTypes.map(
      ([type, unit]) => new ValueType({ type: s.dedup(type), unit: s.dedup(unit) }),
    ),
    function: [
      new PprofFunction({ id: 1, name: s.dedup("main.leak"), filename: s.dedup("/src/main.go") }),
      new PprofFunction({ id: 2, name: s.dedup("main.inlinedHelper"), filename: s.dedup("/src/main.go") }),
      new PprofFunction({ id: 3, name: s.dedup("main.main"), filename: s.dedup("/src/main.go") }),
    ],
    location: [
      // Location 1 has an inlined call: lines innermost first.
      new Location({
        id: 1,
        address: 0x4a10,
        line: [
          { functionId: 2, line: 30 },
          { functionId: 1, line: 20 },
        ],
      }),
      new Location({ id: 2, address: 0x4b20, line: [{ functionId: 3, line: 10 }] }),
      new Location({ id: 3, address: 0xdeadbeef }), // not symbolized
    ],
    sample: [
      // Same stack twice (Go splits by allocation size bucket): must merge.
      { locationId: [1, 2], value: [10, 1000, 4, 400].slice(0, sampleTypes.length) },
      { locationId: [1, 2], value: [5, 2000, 1, 300].slice(0, sampleTypes.length) },
      { locationId: [3, 2], value: [1, 64, 1, 64].slice(0, sampleTypes.length) },
    ],
    stringTable: s,
    timeNanos: 1_700_000_000_000_000_000n,
  }).encode();
}

describe("pprof", () => {
  it("round-trips a heap profile through gzip-compressed pprof", () => {
    const bytes = toPprof(profile);
    expect([bytes[0], bytes[1]]).toEqual([0x1f, 0x8b]);
    expect(fromPprof(bytes)).toEqual(profile);
  });

  it("writes Go's in-use sample types, with functions and locations shared between samples", () => {
    const decoded = Profile.decode(gunzipSync(toPprof(profile)));
    const str = (i: number | bigint) => decoded.stringTable.strings[Number(i)];
    expect(decoded.sampleType.map((t) => `${str(t.type)}/${str(t.unit)}`)).toEqual([
      "inuse_objects/count",
      "inuse_space/bytes",
    ]);
    expect(decoded.function.map((f) => str(f.name))).toEqual([
      "retainSessionBuffers",
      "handle",
      "(anonymous)",
      '名前 with "quotes"',
    ]);
    expect(decoded.location).toHaveLength(4);
    expect(decoded.sample[1]!.locationId.map(Number)).toEqual([3, 2]);
  });

  it("decodes raw (not gzipped) pprof too", () => {
    const raw = gunzipSync(toPprof(profile));
    expect(fromPprof(new Uint8Array(raw))).toEqual(profile);
  });

  it("round-trips an empty profile", () => {
    expect(fromPprof(toPprof({ takenAt: 0, stacks: [] }))).toEqual({ takenAt: 0, stacks: [] });
  });

  it("picks inuse_space and inuse_objects by name among Go's four sample types", () => {
    const p = fromPprof(
      goLikeHeapProfile([
        ["alloc_objects", "count"],
        ["alloc_space", "bytes"],
        ["inuse_objects", "count"],
        ["inuse_space", "bytes"],
      ]),
    );
    expect(p.takenAt).toBe(1_700_000_000_000);
    expect(p.stacks).toEqual([
      {
        frames: [
          { fn: "main.inlinedHelper", file: "/src/main.go", line: 30 },
          { fn: "main.leak", file: "/src/main.go", line: 20 },
          { fn: "main.main", file: "/src/main.go", line: 10 },
        ],
        bytes: 700,
        objects: 5,
      },
      {
        frames: [
          { fn: "0xdeadbeef", file: "", line: 0 },
          { fn: "main.main", file: "/src/main.go", line: 10 },
        ],
        bytes: 64,
        objects: 1,
      },
    ]);
  });

  it("reads Node pprof tooling's space/objects and tolerates a profile without object counts", () => {
    const p = fromPprof(
      goLikeHeapProfile([
        ["objects", "count"],
        ["space", "bytes"],
      ]),
    );
    expect(p.stacks.map((s) => [s.bytes, s.objects])).toEqual([
      [3000, 15],
      [64, 1],
    ]);
    const spaceOnly = fromPprof(goLikeHeapProfile([["inuse_space", "bytes"]]));
    expect(spaceOnly.stacks.map((s) => [s.bytes, s.objects])).toEqual([
      [15, 0],
      [1, 0],
    ]);
  });

  it("says what is missing when the profile has no in-use bytes", () => {
    const cpu = goLikeHeapProfile([
      ["alloc_objects", "count"],
      ["alloc_space", "bytes"],
    ]);
    expect(() => fromPprof(cpu)).toThrow(PprofError);
    expect(() => fromPprof(cpu)).toThrow(
      /no in-use bytes \(sample type inuse_space or space\); it has: alloc_objects\/count, alloc_space\/bytes/,
    );
  });

  it("refuses gzip that decompresses to more than the cap, 256 MiB by default", () => {
    expect(MAX_PPROF_BYTES).toBe(256 * 2 ** 20);
    const bomb = new Uint8Array(gzipSync(Buffer.alloc(2 * 2 ** 20)));
    expect(() => fromPprof(bomb, { maxBytes: 2 ** 20 })).toThrow(PprofError);
    expect(() => fromPprof(bomb, { maxBytes: 2 ** 20 })).toThrow(
      `gzip-compressed pprof decompresses to more than ${2 ** 20} bytes: refused`,
    );
    const small = toPprof(profile);
    expect(fromPprof(small, { maxBytes: 2 ** 20 })).toEqual(profile);
  });

  it("writes period and period_type together: the sampling interval when known, else neither", () => {
    const decode = (bytes: Uint8Array) => {
      const d = Profile.decode(gunzipSync(bytes));
      const str = (i: number | bigint) => d.stringTable.strings[Number(i)];
      return {
        period: Number(d.period),
        periodType: d.periodType && `${str(d.periodType.type)}/${str(d.periodType.unit)}`,
      };
    };
    expect(decode(toPprof(profile, { samplingIntervalBytes: 32768 }))).toEqual({
      period: 32768,
      periodType: "space/bytes",
    });
    const unknown = decode(toPprof(profile));
    expect(unknown.period).toBe(0);
    expect(unknown.periodType === undefined || unknown.periodType === "/").toBe(true);
    expect(() => toPprof(profile, { samplingIntervalBytes: 0 })).toThrow(RangeError);
  });

  it("rejects bytes that are not pprof", () => {
    expect(() => fromPprof(new TextEncoder().encode("not a profile at all"))).toThrow(/not a pprof profile/);
    const truncated = toPprof(profile).subarray(0, 20);
    expect(() => fromPprof(truncated)).toThrow(/gzip-compressed pprof that does not decompress/);
  });
});
