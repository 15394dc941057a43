import { describe, expect, it } from "vitest";
import { type V8SamplingHeapProfileNode, V8SamplingHeapProfileSchema, v8ToHeapProfile } from "./v8.ts";

let nextId = 1;
function node(
  functionName: string,
  url: string,
  lineNumber: number,
  selfSize: number,
  children: V8SamplingHeapProfileNode[] = [],
  columnNumber = 4,
): V8SamplingHeapProfileNode {
  return { callFrame: { functionName, url, lineNumber, columnNumber }, selfSize, id: nextId++, children };
}

describe("v8ToHeapProfile", () => {
  it("gives one stack per node with live memory, leaf first, 1-based lines, samples as objects", () => {
    const leak = node("retainSessionBuffers", "file:///app/fixture.js", 9, 3000);
    const anon = node("", "file:///app/fixture.js", 20, 500);
    const handler = node("handle", "file:///app/fixture.js", 30, 0, [leak, anon]);
    const api = node("(V8 API)", "", -1, 64);
    const head = node("(root)", "", -1, 0, [handler, api]);
    const p = v8ToHeapProfile(
      {
        head,
        samples: [
          { size: 1000, nodeId: leak.id, ordinal: 1 },
          { size: 2000, nodeId: leak.id, ordinal: 3 },
          { size: 500, nodeId: anon.id, ordinal: 2 },
          { size: 64, nodeId: api.id, ordinal: 4 },
        ],
      },
      1234,
    );
    const handleFrame = { fn: "handle", file: "file:///app/fixture.js", line: 31 };
    expect(p).toEqual({
      takenAt: 1234,
      stacks: [
        {
          frames: [{ fn: "retainSessionBuffers", file: "file:///app/fixture.js", line: 10 }, handleFrame],
          bytes: 3000,
          objects: 2,
        },
        {
          frames: [{ fn: "(anonymous)", file: "file:///app/fixture.js", line: 21 }, handleFrame],
          bytes: 500,
          objects: 1,
        },
        { frames: [{ fn: "(V8 API)", file: "", line: 0 }], bytes: 64, objects: 1 },
      ],
    });
  });

  it("adds up nodes that differ only by column, and works without samples", () => {
    const a = node("alloc", "/x.js", 0, 100, [], 1);
    const b = node("alloc", "/x.js", 0, 50, [], 17);
    const p = v8ToHeapProfile({ head: node("(root)", "", -1, 0, [a, b]) }, 0);
    expect(p.stacks).toEqual([{ frames: [{ fn: "alloc", file: "/x.js", line: 1 }], bytes: 150, objects: 0 }]);
  });

  it("walks deep trees without recursion", () => {
    let leaf = node("deep", "/d.js", 0, 8);
    for (let i = 0; i < 20_000; i++) leaf = node(`f${i}`, "/d.js", i, 0, [leaf]);
    const p = v8ToHeapProfile({ head: node("(root)", "", -1, 0, [leaf]) }, 0);
    expect(p.stacks).toHaveLength(1);
    expect(p.stacks[0]!.frames).toHaveLength(20_001);
    expect(p.stacks[0]!.frames[0]!.fn).toBe("deep");
  });

  it("has a schema that accepts the inspector's answer and rejects a malformed one", () => {
    const ok = {
      head: { ...node("(root)", "", -1, 0, [node("f", "/a.js", 1, 10)]), extra: true },
      samples: [{ size: 10, nodeId: 2, ordinal: 1 }],
    };
    expect(V8SamplingHeapProfileSchema.safeParse(ok).success).toBe(true);
    expect(V8SamplingHeapProfileSchema.safeParse({ head: { callFrame: {} } }).success).toBe(false);
  });
});
