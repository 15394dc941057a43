/**
 * V8's sampling heap profile (the inspector's `HeapProfiler.getSamplingProfile`) as a
 * HeapProfile. V8 samples one allocation every ~samplingInterval bytes and keeps a sample
 * only while its object is alive, so the tree holds live memory per allocation stack: what
 * the diagnosis compares across profiles. Node's bundled inspector types predate the node
 * ids and `samples`, hence the schema here.
 */
import { z } from "zod";
import { type Frame, type HeapProfile, type HeapStack, stackKey } from "./profile.ts";

export interface V8CallFrame {
  functionName: string;
  url: string;
  /** 0-based; -1 when V8 has no position (e.g. the root and VM-state nodes). */
  lineNumber: number;
  columnNumber: number;
}

export interface V8SamplingHeapProfileNode {
  callFrame: V8CallFrame;
  /** Live sampled bytes allocated by exactly this stack (scaled to estimate all allocations). */
  selfSize: number;
  id: number;
  children: V8SamplingHeapProfileNode[];
}

export interface V8SamplingHeapProfile {
  head: V8SamplingHeapProfileNode;
  /** One entry per live sampled object (absent from V8 before 7.x). */
  samples?: { size: number; nodeId: number; ordinal: number }[];
}

const V8CallFrameSchema = z.object({
  functionName: z.string(),
  url: z.string(),
  lineNumber: z.number(),
  columnNumber: z.number(),
});

const V8NodeSchema: z.ZodType<V8SamplingHeapProfileNode> = z.lazy(() =>
  z.object({
    callFrame: V8CallFrameSchema,
    selfSize: z.number().nonnegative(),
    id: z.number(),
    children: z.array(V8NodeSchema),
  }),
);

/** The inspector's answer checked before use: it comes from another process. */
export const V8SamplingHeapProfileSchema: z.ZodType<V8SamplingHeapProfile> = z.object({
  head: V8NodeSchema,
  samples: z.array(z.object({ size: z.number(), nodeId: z.number(), ordinal: z.number() })).optional(),
});

/** Name V8 gives nameless functions in DevTools, so our reports read the same. */
export const ANONYMOUS = "(anonymous)";

/**
 * One stack per node that holds live memory: frames from the node (the allocating function)
 * up to, not including, V8's synthetic `(root)`; bytes = the node's selfSize; objects = the
 * number of live samples attributed to the node (sampled objects, not an estimate of all).
 * Nodes that differ only by column collapse to one stack and add up. VM-state nodes such as
 * `(V8 API)` stay as frames: memory allocated outside JavaScript is still memory.
 */
export function v8ToHeapProfile(profile: V8SamplingHeapProfile, takenAt: number): HeapProfile {
  const samplesPerNode = new Map<number, number>();
  for (const s of profile.samples ?? []) {
    samplesPerNode.set(s.nodeId, (samplesPerNode.get(s.nodeId) ?? 0) + 1);
  }

  const stacks = new Map<string, HeapStack>();
  // Iterative pre-order walk (stacks can be deeper than recursion allows comfortably); callers
  // are a shared linked chain, materialized only for nodes that hold memory.
  const pending: { node: V8SamplingHeapProfileNode; callers: Chain | undefined }[] = [];
  const pushChildren = (node: V8SamplingHeapProfileNode, callers: Chain | undefined) => {
    for (let i = node.children.length - 1; i >= 0; i--) pending.push({ node: node.children[i]!, callers });
  };
  pushChildren(profile.head, undefined);
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    const { node, callers } = item;
    const chain: Chain = { frame: toFrame(node.callFrame), callers };
    const objects = samplesPerNode.get(node.id) ?? 0;
    if (node.selfSize > 0 || objects > 0) {
      const frames: Frame[] = [];
      for (let c: Chain | undefined = chain; c !== undefined; c = c.callers) frames.push(c.frame);
      const key = stackKey(frames);
      const seen = stacks.get(key);
      if (seen) {
        seen.bytes += node.selfSize;
        seen.objects += objects;
      } else {
        stacks.set(key, { frames, bytes: node.selfSize, objects });
      }
    }
    pushChildren(node, chain);
  }
  return { takenAt, stacks: [...stacks.values()] };
}

/** A frame and, through `callers`, every frame above it. */
interface Chain {
  frame: Frame;
  callers: Chain | undefined;
}

function toFrame(cf: V8CallFrame): Frame {
  return { fn: cf.functionName || ANONYMOUS, file: cf.url, line: cf.lineNumber >= 0 ? cf.lineNumber + 1 : 0 };
}
